package replication

import (
	"sort"
	"sync"
	"time"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// ReportEvery is how often a member sends its links to the leader, and
// ReportFresh how old a member's report may be before the leader leaves it
// out of the view (the member is down or cut off from the leader).
const (
	ReportEvery = time.Second
	ReportFresh = 5 * time.Second
)

// LinkStates returns this member's links to the nodes, for its report.
func (s *HubServer) LinkStates() []*rondav1.LinkState {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]*rondav1.LinkState, 0, len(s.links))
	for id, l := range s.links {
		out = append(out, &rondav1.LinkState{NodeId: id, Connected: l.tunnels > 0, SinceUnixNano: unixNano(l.since),
			LastSeenUnixNano: unixNano(l.lastSeen), DownSinceUnixNano: unixNano(l.downAt), LastSeq: l.lastSeq,
			Reconnects: uint32(len(pruneBefore(append([]time.Time(nil), l.opens...), now.Add(-FlapWindow)))), Storage: l.storage})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeId < out[j].NodeId })
	return out
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// LinkBook is the leader's memory of every member's links (heartbeats, not
// Raft: it is rebuilt within a second by a new leader).
type LinkBook struct {
	now func() time.Time
	mu  sync.Mutex
	got map[string]reported
}

type reported struct {
	at     time.Time
	report *rondav1.LinksReport
}

// NewLinkBook returns an empty book.
func NewLinkBook(now func() time.Time) *LinkBook {
	if now == nil {
		now = time.Now
	}
	return &LinkBook{now: now, got: map[string]reported{}}
}

// Put records a member's report and returns the view of all fresh reports.
func (b *LinkBook) Put(leaderID string, r *rondav1.LinksReport) *rondav1.LinksView {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.got[r.GetMemberId()] = reported{at: now, report: r}
	v := &rondav1.LinksView{LeaderId: leaderID}
	for id, x := range b.got {
		if now.Sub(x.at) > ReportFresh {
			delete(b.got, id)
			continue
		}
		v.Members = append(v.Members, x.report)
	}
	sort.Slice(v.Members, func(i, j int) bool { return v.Members[i].GetMemberId() < v.Members[j].GetMemberId() })
	return v
}

// NodeLink is a node's link to the hub as a whole: merged over the members.
type NodeLink struct {
	LinkStatus
	Members []string // members holding a tunnel to the node now
}

// MergeLinks merges the members' views of one node: connected if any member
// has a tunnel (since the earliest of those), down since the latest close if
// none has, the newest outbox seq any member heard, and the reconnects of
// the member that saw most (a flapping link breaks every member's tunnel).
func MergeLinks(v *rondav1.LinksView, nodeID string) NodeLink {
	var out NodeLink
	for _, m := range v.GetMembers() {
		for _, l := range m.GetLinks() {
			if l.GetNodeId() != nodeID {
				continue
			}
			since, down, seen := fromUnixNano(l.GetSinceUnixNano()), fromUnixNano(l.GetDownSinceUnixNano()), fromUnixNano(l.GetLastSeenUnixNano())
			if l.GetConnected() {
				out.Members = append(out.Members, m.GetMemberId())
				if !out.Connected || since.Before(out.Since) {
					out.Since = since
				}
				out.Connected = true
			}
			if down.After(out.DownSince) {
				out.DownSince = down
			}
			if seen.After(out.LastSeen) {
				out.LastSeen = seen
			}
			out.LastSeq = max(out.LastSeq, l.GetLastSeq())
			if st := l.GetStorage(); st != nil && (out.Storage == nil || st.GetAtUnixNano() > out.Storage.GetAtUnixNano()) {
				out.Storage = st
			}
			out.Reconnects = max(out.Reconnects, int(l.GetReconnects()))
		}
	}
	return out
}
