package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/certs"
	"github.com/ronda-jakarta/ronda/hub/store"
	"github.com/ronda-jakarta/ronda/internal/auditchain"
	"github.com/ronda-jakarta/ronda/kelurahan"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
	"github.com/ronda-jakarta/ronda/replication"
)

// recordingFresh: a camera whose coverage reached the hub within this long
// counts as recording (node sync + outbox flush + push + Raft commit).
const recordingFresh = 30 * time.Second

// backend serves the HTTP API for every camera of every node.
type backend struct{ h *Hub }

func (b *backend) Identity() (string, string) { return "hub", "Hub Kota Jakarta" }

func (b *backend) online(nodeID string) (bool, time.Time) {
	l, _ := b.h.nodeLink(nodeID)
	if l.Connected {
		return true, time.Now().UTC()
	}
	return false, l.LastSeen.UTC()
}

func (b *backend) Nodes(ctx context.Context) ([]api.Node, error) {
	count := map[string]int{}
	for _, c := range b.h.store.Cameras() {
		count[c.NodeId]++
	}
	var out []api.Node
	for _, n := range b.h.store.Nodes() {
		info := n.GetInfo()
		k, _ := kelurahan.ByCode(info.GetKelurahanCode())
		online, seen := b.online(info.GetNodeId())
		if seen.IsZero() && n.UpdatedUnixNano > 0 {
			seen = time.Unix(0, n.UpdatedUnixNano).UTC()
		}
		an := api.Node{NodeID: info.GetNodeId(), KelurahanCode: k.Code, Kelurahan: k.Name, Kecamatan: k.Kecamatan,
			Kota: k.Kota, Online: online, LastSeen: seen, Cameras: count[info.GetNodeId()], AckedSeq: n.GetAppliedSeq()}
		l, from := b.h.nodeLink(info.GetNodeId())
		nodeStatus(&an, l.LinkStatus)
		an.LinkedMembers, an.StatusFrom = l.Members, from
		id := certs.Identity{City: b.h.bundle.Identity.City, Kind: certs.KindNode, Kelurahan: info.GetKelurahanCode(), NodeID: info.GetNodeId()}
		if r, ok := b.h.store.Revoked(id.URI()); ok && !an.Online {
			an.Status = "revoked"
			an.StatusDetail = fmt.Sprintf("its certificate was revoked by %s at %s: %s; the hub refuses it (lift with DELETE /api/v1/revocations, or enroll the node again)",
				r.GetBy(), time.Unix(0, r.GetAtUnixNano()).UTC().Format(time.RFC3339), r.GetReason())
		}
		out = append(out, an)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].KelurahanCode < out[j].KelurahanCode })
	return out, nil
}

// DegradedBehind: a connected node more records behind than this shows degraded.
const DegradedBehind = 1000

// nodeStatus fills a node's status from this member's view of its link.
func nodeStatus(n *api.Node, l replication.LinkStatus) {
	if l.LastSeq > n.AckedSeq {
		n.Behind = l.LastSeq - n.AckedSeq
	}
	if st := l.Storage; st != nil {
		n.Storage = &api.NodeStorage{FreeBytes: st.GetFreeBytes(), WriteBytesPerSec: st.GetWriteBytesPerSecond(),
			ReserveBytes: st.GetReserveBytes(), At: time.Unix(0, st.GetAtUnixNano()).UTC()}
		if rate := st.GetWriteBytesPerSecond(); rate > 0 {
			days := float64(st.GetFreeBytes()-min(st.GetFreeBytes(), st.GetReserveBytes())) / (rate * 86400)
			n.Storage.DaysUntilFull = &days
		}
	}
	n.Reconnects = l.Reconnects
	switch {
	case !l.Connected:
		n.Status = "offline"
		since := l.DownSince
		if since.IsZero() {
			since = n.LastSeen
		}
		if !since.IsZero() {
			s := since.UTC()
			n.OfflineSince = &s
			n.StatusDetail = "no connection from the node since " + s.Format(time.RFC3339) + "; it keeps recording and sends its backlog when the link returns"
		} else {
			n.StatusDetail = "the node has not connected to this hub member since it started"
		}
	case l.Flapping():
		n.Status = "degraded"
		n.StatusDetail = fmt.Sprintf("link flapping: reconnected %d times in %s", l.Reconnects, replication.FlapWindow)
	case n.Behind > DegradedBehind:
		n.Status = "degraded"
		n.StatusDetail = fmt.Sprintf("behind by %d records (draining its backlog)", n.Behind)
	case n.Storage != nil && n.Storage.DaysUntilFull != nil && *n.Storage.DaysUntilFull < api.StorageLowDays:
		n.Status = "degraded"
		n.StatusDetail = fmt.Sprintf("disk nearly full: %.1f days of recording left at %.1f Mbit/s; retention will delete the oldest unheld footage",
			*n.Storage.DaysUntilFull, n.Storage.WriteBytesPerSec*8/1e6)
	default:
		n.Status = "online"
	}
}

func (b *backend) toAPI(c *rondav1.StoredCamera, now time.Time) api.Camera {
	cam := c.GetCamera()
	k, _ := kelurahan.ByCode(c.KelurahanCode)
	out := api.Camera{ID: cam.GetId(), Name: cam.GetName(), KelurahanCode: c.KelurahanCode, Kelurahan: k.Name, NodeID: c.NodeId,
		State: cam.GetState(), Reason: cam.GetReason(), Codec: cam.GetCodec(), Width: int(cam.GetWidth()), Height: int(cam.GetHeight())}
	if online, _ := b.online(c.NodeId); !online {
		out.State, out.Reason = "unknown", "node offline; last reported state: "+cam.GetState()
	}
	if spans := b.h.store.Coverage(cam.GetId(), now.Add(-time.Hour), now.Add(time.Minute)); len(spans) > 0 {
		end := time.Unix(0, spans[len(spans)-1].EndUnixNano).UTC()
		out.RecordedUntil = &end
		out.Recording = now.Sub(end) < recordingFresh
	}
	return out
}

func (b *backend) Cameras(ctx context.Context) ([]api.Camera, error) {
	now := time.Now()
	var out []api.Camera
	for _, c := range b.h.store.Cameras() {
		out = append(out, b.toAPI(c, now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (b *backend) camera(id string) (*rondav1.StoredCamera, error) {
	c, ok := b.h.store.Camera(id)
	if !ok {
		return nil, fmt.Errorf("%w: no camera %q in the city catalog; GET /api/v1/cameras lists them", api.ErrNotFound, id)
	}
	return c, nil
}

// Recordings answers from the hub's coverage index, so it works while the
// node is offline; gaps there carry no reason yet (the node's ledger has them).
func (b *backend) Recordings(ctx context.Context, id string, from, to time.Time) (api.Recordings, error) {
	if _, err := b.camera(id); err != nil {
		return api.Recordings{}, err
	}
	rec := api.Recordings{CameraID: id, From: from.UTC(), To: to.UTC(), Source: "hub"}
	days, events := b.h.store.CoverageDetail(id, from.Add(-gapEventSlack), to)
	for _, d := range days {
		rec.Manifests = append(rec.Manifests, api.DayManifest{Day: d.Day.Format(time.DateOnly), Segments: int(d.Segments), SHA256: hex.EncodeToString(d.SHA256)})
	}
	cursor := from
	for _, s := range b.h.store.Coverage(id, from, to) {
		start, end := time.Unix(0, s.StartUnixNano).UTC(), time.Unix(0, s.EndUnixNano).UTC()
		if start.After(cursor) {
			rec.Gaps = explainGap(rec.Gaps, cursor.UTC(), start, events)
		}
		rec.Spans = append(rec.Spans, api.Span{Start: start, End: end})
		rec.RecordedSeconds += end.Sub(start).Seconds()
		cursor = end
	}
	if now := time.Now(); cursor.Before(to) && cursor.Before(now) {
		rec.Gaps = explainGap(rec.Gaps, cursor.UTC(), minTime(to, now).UTC(), events)
	}
	return rec, nil
}

// gapEventSlack: an event this long before a gap's start still explains it
// (the node records the stop when it notices, the last footage is earlier).
const gapEventSlack = 5 * time.Second

// explainGap splits the hole [a,b) at the node's gap events in it (sorted by
// time): each part takes the reason of the event that started it; the first
// part that of an event at or just before a, else not_recorded.
func explainGap(out []api.Gap, a, b time.Time, events []*rondav1.GapEvent) []api.Gap {
	cur := api.Gap{Start: a, Reason: "not_recorded", Detail: "the node reported no footage and no reason for this time (it may have been off, or its reports have not reached the hub yet)"}
	add := func(g api.Gap) {
		if !g.End.After(g.Start) {
			return
		}
		if n := len(out); n > 0 && out[n-1].End.Equal(g.Start) && out[n-1].Reason == g.Reason {
			out[n-1].End = g.End
			return
		}
		out = append(out, g)
	}
	for _, e := range events {
		at := time.Unix(0, e.GetAtUnixNano()).UTC()
		switch {
		case at.Before(a.Add(-gapEventSlack)):
			continue
		case !at.After(a):
			cur.Reason, cur.Detail = e.GetReason(), e.GetDetail()
		case at.Before(b):
			cur.End = at
			add(cur)
			cur = api.Gap{Start: at, Reason: e.GetReason(), Detail: e.GetDetail()}
		}
	}
	cur.End = b
	add(cur)
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// nodeControl finds a way to the node that owns a camera: its tunnel to
// this member, else a member that has one relays the call over its own.
func (b *backend) nodeControl(nodeID string) (rpcv1.NodeControlClient, error) {
	if ctl, ok := b.h.repl.NodeControl(nodeID); ok {
		return ctl, nil
	}
	l, _ := b.h.nodeLink(nodeID)
	for _, m := range l.Members {
		if m == b.h.cfg.MemberID {
			continue
		}
		conn, err := b.h.forwarder.Member(m)
		if err != nil {
			continue
		}
		b.h.log.Debug("relaying a call to a node through another member", "node", nodeID, "via", m)
		return rpcv1.NewNodeControlClient(replication.RelayConn(conn, nodeID)), nil
	}
	_, seen := b.online(nodeID)
	return nil, fmt.Errorf("%w: node %s is not connected to any hub member (last seen %s); it keeps recording, try again when it is back online",
		api.ErrUnavailable, nodeID, seen.Format(time.RFC3339))
}

func (b *backend) Playback(ctx context.Context, w io.Writer, id string, from, to time.Time, user string) error {
	c, err := b.camera(id)
	if err != nil {
		return err
	}
	ctl, err := b.nodeControl(c.NodeId)
	if err != nil {
		return err
	}
	stream, err := ctl.Playback(ctx, &rondav1.PlaybackRequest{CameraId: id, FromUnixNano: from.UnixNano(), ToUnixNano: to.UnixNano(), User: user})
	if err != nil {
		return replication.FromStatus(err)
	}
	// The node says what the file covers ahead of its bytes: pass it on as
	// the node's own API does (X-Ronda-From is the file's time 0).
	if md, err := stream.Header(); err == nil {
		if hw, ok := w.(interface{ Header() http.Header }); ok {
			if info, ok := replication.PlaybackInfoFromMD(md); ok {
				api.SetPlaybackHeaders(hw.Header(), info)
			}
		}
	}
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return replication.FromStatus(err)
		}
		if _, err := w.Write(chunk.Data); err != nil {
			return err
		}
	}
}

// Session ids at the hub carry the node id so PATCH, GET and DELETE reach
// the right node.
func (b *backend) Whep(ctx context.Context, o api.WhepOffer) (api.WhepAnswer, error) {
	c, err := b.camera(o.CameraID)
	if err != nil {
		return api.WhepAnswer{}, err
	}
	ctl, err := b.nodeControl(c.NodeId)
	if err != nil {
		return api.WhepAnswer{}, err
	}
	req := &rondav1.WhepRequest{CameraId: o.CameraID, OfferSdp: o.SDP, User: o.User, NoGopCache: o.NoGOPCache, Stream: o.Stream}
	// A node behind NAT (live.relay_via_hub) allocates a relay candidate on
	// this member's TURN server with these credentials.
	if b.h.turn != nil {
		if s, err := b.h.turn.iceServer("node-" + c.NodeId); err == nil {
			req.IceServers = []*rondav1.IceServer{{Urls: s.URLs, Username: s.Username, Credential: s.Credential}}
		}
	}
	resp, err := ctl.Whep(ctx, req)
	if err != nil {
		return api.WhepAnswer{}, replication.FromStatus(err)
	}
	return api.WhepAnswer{SDP: resp.AnswerSdp, Session: c.NodeId + "~" + resp.SessionId, Warning: resp.Warning, Stream: resp.Stream}, nil
}

// sessionControl finds the node of a hub session id.
func (b *backend) sessionControl(session string) (rpcv1.NodeControlClient, string, string, error) {
	nodeID, sid, ok := strings.Cut(session, "~")
	if !ok {
		return nil, "", "", fmt.Errorf("%w: unknown WHEP session %q", api.ErrNotFound, session)
	}
	ctl, err := b.nodeControl(nodeID)
	return ctl, nodeID, sid, err
}

func (b *backend) WhepPatch(ctx context.Context, session, frag string) error {
	ctl, _, sid, err := b.sessionControl(session)
	if err != nil {
		return err
	}
	_, err = ctl.WhepPatch(ctx, &rondav1.WhepPatchRequest{SessionId: sid, Fragment: frag})
	return replication.FromStatus(err)
}

func (b *backend) WhepSession(ctx context.Context, session string) (api.LiveSession, error) {
	ctl, nodeID, sid, err := b.sessionControl(session)
	if err != nil {
		return api.LiveSession{}, err
	}
	r, err := ctl.WhepSession(ctx, &rondav1.WhepSessionRequest{SessionId: sid})
	if err != nil {
		return api.LiveSession{}, replication.FromStatus(err)
	}
	return api.LiveSession{Session: session, CameraID: r.CameraId, Stream: r.Stream, State: r.State, Path: r.Path, Offered: time.Unix(0, r.OfferedUnixNano).UTC(),
		ConnectMS: r.ConnectMs, FirstFrame: r.FirstFrameMs, StartedFrom: r.StartedFrom, Packets: r.Packets, Bytes: r.Bytes,
		Dropped: r.DroppedFrames, PLIs: r.Pli, GOPReplays: r.GopReplays, NodeID: nodeID, NodeCandidates: r.NodeCandidates}, nil
}

func (b *backend) WhepDelete(ctx context.Context, session string) error {
	ctl, _, sid, err := b.sessionControl(session)
	if err != nil {
		return err
	}
	_, err = ctl.WhepDelete(ctx, &rondav1.WhepDeleteRequest{SessionId: sid})
	return replication.FromStatus(err)
}

// ClusterView is the answer of GET /api/v1/cluster.
type ClusterView struct {
	Member       string         `json:"member"`
	State        string         `json:"state"`
	Leader       string         `json:"leader"`
	Term         uint64         `json:"term"`
	AppliedIndex uint64         `json:"applied_index"`
	CommitIndex  uint64         `json:"commit_index"`
	Members      []MemberView   `json:"members"`
	Nodes        map[string]any `json:"nodes_connected_here"`
}

// MemberView is one member in ClusterView.
type MemberView struct {
	ID       string `json:"id"`
	Address  string `json:"raft_address"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

func (b *backend) Cluster(ctx context.Context) (any, error) {
	ci := b.h.store.Cluster()
	v := ClusterView{Member: b.h.cfg.MemberID, State: ci.State, Leader: ci.Leader, Term: ci.Term,
		AppliedIndex: ci.AppliedIndex, CommitIndex: ci.CommitIndex, Nodes: map[string]any{}}
	for _, m := range ci.Members {
		v.Members = append(v.Members, MemberView{ID: m.ID, Address: m.Address, Suffrage: m.Suffrage, Leader: m.Leader})
	}
	for _, n := range b.h.store.Nodes() {
		id := n.GetInfo().GetNodeId()
		v.Nodes[id] = b.h.repl.Link(id).Connected
	}
	return v, nil
}

// Exports are made by the node that owns the camera; pulling them through
// the hub (resumable, with holds and case bundles) comes with evidence cases.
func (b *backend) CreateExport(ctx context.Context, req api.ExportRequest, user string) (api.Export, error) {
	c, err := b.camera(req.Camera)
	if err != nil {
		return api.Export{}, err
	}
	url := ""
	if n, ok := b.h.store.Node(c.NodeId); ok {
		url = n.GetInfo().GetApiUrl()
	}
	return api.Export{}, fmt.Errorf("%w: exports are made by the node that owns the camera; POST /api/v1/exports at node %s (%s)", api.ErrNotImpl, c.NodeId, url)
}

// ReadBarrier makes a catalog read as fresh as asked (see store.ReadBarrier).
func (b *backend) ReadBarrier(ctx context.Context, consistency string) (string, error) {
	level, err := store.ParseConsistency(consistency)
	if err != nil {
		return "", fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := b.h.store.ReadBarrier(ctx, level)
	if err != nil {
		return "", fmt.Errorf("%w: %v; retry, or ask with consistency=stale for this member's own (possibly older) view", api.ErrUnavailable, err)
	}
	return string(info.Consistency), nil
}

// OpenBackup pins this member's state for an online backup, after a
// default read barrier so it holds every write acknowledged before the call.
func (b *backend) OpenBackup(ctx context.Context) (api.Backup, string, error) {
	if _, err := b.ReadBarrier(ctx, "default"); err != nil {
		return nil, "", err
	}
	bs, err := b.h.store.OpenBackup()
	if err != nil {
		return nil, "", err
	}
	return bs, b.h.cfg.MemberID, nil
}

// Areas lists the seeded areas with the nodes and cameras in each.
func (b *backend) Areas(ctx context.Context, level, parent string) (api.Areas, error) {
	version, source := b.h.store.AreasVersion()
	nodes, cams := map[string]int{}, map[string]int{}
	count := func(m map[string]int, kel string) {
		if k, ok := kelurahan.ByCode(kel); ok {
			m[k.Code]++
			m[k.KecamatanCode]++
			m[k.KotaCode]++
		}
	}
	for _, n := range b.h.store.Nodes() {
		count(nodes, n.GetInfo().GetKelurahanCode())
	}
	for _, c := range b.h.store.Cameras() {
		count(cams, c.GetKelurahanCode())
	}
	out := api.Areas{Version: version, Source: source, Areas: []api.Area{}}
	for _, a := range b.h.store.Areas() {
		if (level != "" && a.GetLevel() != level) || (parent != "" && a.GetParent() != parent) {
			continue
		}
		out.Areas = append(out.Areas, api.Area{Code: a.GetCode(), Name: a.GetName(), Level: a.GetLevel(), Parent: a.GetParent(),
			Lat: a.GetLat(), Lon: a.GetLon(), Nodes: nodes[a.GetCode()], Cameras: cams[a.GetCode()]})
	}
	return out, nil
}

// Members lists the members with their raft state (store.Members).
func (b *backend) Members(ctx context.Context) (any, error) {
	ms, err := b.h.store.Members(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	ci := b.h.store.Cluster()
	return map[string]any{"member": b.h.cfg.MemberID, "leader": ci.Leader, "term": ci.Term, "members": ms}, nil
}

func membershipErr(err error) error {
	switch {
	case errors.Is(err, store.ErrMembership):
		return fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	case errors.Is(err, store.ErrNoLeader), errors.Is(err, store.ErrLeaderUnreachable), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	return err
}

func (b *backend) Join(ctx context.Context, req api.JoinRequest, user string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return membershipErr(b.h.store.Join(ctx, store.MemberInfo{ID: req.ID, RaftAddr: req.Raft, GRPCAddr: req.GRPC, HTTPURL: req.HTTP}, user))
}

func (b *backend) RemoveMember(ctx context.Context, id, user string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return membershipErr(b.h.store.Remove(ctx, id, user))
}

func (b *backend) TransferLeader(ctx context.Context, to, user string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	l, err := b.h.store.TransferLeadership(ctx, to)
	return l, membershipErr(err)
}

// Search answers from this member's catalog index, after the read barrier
// the server ran for the request's consistency level.
func (b *backend) Search(ctx context.Context, req api.SearchRequest) (api.SearchResult, error) {
	res, err := b.h.store.Query(store.Query{From: req.From, To: req.To, Kota: req.Kota, Kecamatan: req.Kecamatan,
		Kelurahan: req.Kelurahan, Node: req.Node, Tags: req.Tags, Lat: req.Lat, Lon: req.Lon, RadiusM: req.RadiusM, Limit: req.Limit})
	if errors.Is(err, store.ErrBadQuery) {
		return api.SearchResult{}, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	if err != nil {
		return api.SearchResult{}, err
	}
	out := api.SearchResult{Total: res.Total, Scanned: res.Scanned, Consistency: string(store.Stale), Member: b.h.cfg.MemberID,
		AppliedIndex: b.h.store.Cluster().AppliedIndex, Cameras: make([]api.SearchCamera, 0, len(res.Cameras))}
	for _, c := range res.Cameras {
		k, _ := kelurahan.ByCode(c.Kelurahan)
		out.Cameras = append(out.Cameras, api.SearchCamera{ID: c.ID, Name: c.Name, NodeID: c.NodeID, KelurahanCode: c.Kelurahan,
			Kelurahan: k.Name, Kecamatan: k.Kecamatan, Kota: k.Kota, Lat: c.Lat, Lon: c.Lon, RT: c.RT, RW: c.RW, Tags: c.Tags,
			State: c.State, Reason: c.Reason, RecordedSeconds: c.RecordedSeconds, FirstRecorded: c.FirstRecorded,
			LastRecorded: c.LastRecorded, DistanceM: c.DistanceM})
	}
	return out, nil
}

// Audit lists the audit events nodes uploaded (api.AuditLog).
func (b *backend) Audit(ctx context.Context, q api.AuditQuery) ([]api.AuditRecord, error) {
	evs, err := b.h.store.AuditEntries(q.NodeID, q.After, q.Limit)
	if errors.Is(err, store.ErrBadCommand) {
		return nil, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	if err != nil {
		return nil, err
	}
	out := make([]api.AuditRecord, 0, len(evs))
	for _, e := range evs {
		r := auditRecord(e.Event)
		r.Leaf = e.Leaf
		out = append(out, r)
	}
	return out, nil
}

// auditRecord is a stored audit event as the API lists it.
func auditRecord(e *rondav1.StoredAuditEvent) api.AuditRecord {
	r := auditchain.Record(e.GetNodeId(), e.GetEvent())
	committed := time.Unix(0, e.GetCommittedUnixNano()).UTC()
	r.Committed, r.ChainError = &committed, e.GetChainError()
	return r
}

// AuditNewest lists the audit log newest first in the order the cluster
// committed it (by leaf index), with the query's filters (api.AuditSearcher).
func (b *backend) AuditNewest(ctx context.Context, q api.AuditQuery) (api.AuditPage, error) {
	q = q.Bounded()
	var page api.AuditPage
	scanned, next, more, err := b.h.store.AuditNewest(q.NodeID, q.Before, q.MaxScan, func(leaf uint64, e *rondav1.StoredAuditEvent) bool {
		ev := e.GetEvent()
		if !q.Match(e.GetNodeId(), ev.GetUser(), ev.GetAction(), ev.GetCameraId(), ev.GetOutcome()) {
			return false
		}
		r := auditRecord(e)
		r.Leaf = &leaf
		page.Events = append(page.Events, r)
		return len(page.Events) >= q.Limit
	})
	if err != nil {
		return api.AuditPage{}, storeErr(err)
	}
	page.Scanned = scanned
	if more {
		page.NextBefore = &next
	}
	return page, nil
}

// PutHold places a hold at the hub (api.HoldStore): it reaches the camera's
// node as a directive — at once when the node is connected, else when it
// reconnects — and shows pending until the node has applied it.
func (b *backend) PutHold(ctx context.Context, cameraID string, req api.HoldRequest, user string) (api.Hold, error) {
	if _, err := b.camera(cameraID); err != nil {
		return api.Hold{}, err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	info := &rondav1.HoldInfo{HoldId: "hub-" + hex.EncodeToString(rnd[:]), CameraId: cameraID, FromUnixNano: req.From.UnixNano(),
		ToUnixNano: req.To.UnixNano(), Reason: req.Reason, CreatedBy: user}
	if !req.Expires.IsZero() {
		info.ExpiresUnixNano = req.Expires.UnixNano()
	}
	sh, err := b.h.store.PlaceHold(ctx, info)
	if err != nil {
		return api.Hold{}, holdErr(err)
	}
	return holdOut(sh, time.Now()), nil
}

// Holds lists a camera's holds as the hub knows them (api.HoldStore).
func (b *backend) Holds(ctx context.Context, cameraID string) ([]api.Hold, error) {
	if _, err := b.camera(cameraID); err != nil {
		return nil, err
	}
	now := time.Now()
	var out []api.Hold
	for _, sh := range b.h.store.Holds(cameraID) {
		out = append(out, holdOut(sh, now))
	}
	return out, nil
}

// AllHolds lists every camera's holds as the hub knows them, with the
// node keeping each and where it stands (api.HoldLister).
func (b *backend) AllHolds(ctx context.Context) ([]api.Hold, error) {
	now := time.Now()
	var out []api.Hold
	for _, sh := range b.h.store.AllHolds() {
		out = append(out, holdOut(sh, now))
	}
	return out, nil
}

// DeleteHold releases a hold, at the hub and then at the node (api.HoldStore).
func (b *backend) DeleteHold(ctx context.Context, cameraID, holdID string) error {
	if _, err := b.camera(cameraID); err != nil {
		return err
	}
	_, err := b.h.store.ReleaseHold(ctx, cameraID, holdID, "")
	return holdErr(err)
}

func holdErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	case errors.Is(err, store.ErrBadCommand):
		return fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	return err
}

func holdOut(sh *rondav1.StoredHold, now time.Time) api.Hold {
	h := sh.GetHold()
	t := func(ns int64) time.Time {
		if ns == 0 {
			return time.Time{}
		}
		return time.Unix(0, ns).UTC()
	}
	out := api.Hold{ID: h.GetHoldId(), CameraID: h.GetCameraId(), From: t(h.GetFromUnixNano()), To: t(h.GetToUnixNano()), Reason: h.GetReason(),
		Expires: t(h.GetExpiresUnixNano()), Created: t(h.GetCreatedUnixNano()), CreatedBy: h.GetCreatedBy(),
		NodeID: sh.GetNodeId(), State: sh.GetState(), Error: sh.GetError()}
	out.Active = sh.GetState() != store.HoldReleased && (out.Expires.IsZero() || out.Expires.After(now))
	return out
}
