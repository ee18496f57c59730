package store

// Membership: members join and leave through replicated intent, which the
// leader reconciles with raft's configuration; raft-autopilot promotes a
// joined non-voter once it has caught up and stayed healthy, and removes
// members that have been unreachable for DeadMemberAfter (never below
// MinQuorum voters). See DESIGN.md, "Membership".

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"
	"google.golang.org/protobuf/proto"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// Membership defaults.
const (
	DefaultStabilizationTime = 10 * time.Second
	DefaultDeadMemberAfter   = time.Hour
	DefaultMinQuorum         = 3
	membershipInterval       = 500 * time.Millisecond
)

// MemberForwarder is implemented by Forwarders that can reach other members
// for their raft stats and hand leadership over (hub/peer's does).
type MemberForwarder interface {
	MemberStats(ctx context.Context, memberID, raftAddr string) (*rondav1.MemberStatsResponse, error)
	TransferLeadership(ctx context.Context, leaderID, leaderRaftAddr, to string) (string, error)
}

// ErrMembership is wrapped by errors of membership changes a caller got
// wrong (unknown member, address clash, removing the last voter).
var ErrMembership = errors.New("membership change refused")

// MemberInfo names a member joining the cluster.
type MemberInfo struct {
	ID, RaftAddr, GRPCAddr, HTTPURL string
}

func decodeMember(payload []byte) (*rondav1.HubMember, error) {
	m := new(rondav1.HubMember)
	if err := proto.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("%w: Member: %v", ErrBadCommand, err)
	}
	if err := validID("member", m.GetId()); err != nil {
		return nil, fmt.Errorf("%w: Member: %v", ErrBadCommand, err)
	}
	if !m.GetRemoved() && m.GetRaftAddr() == "" {
		return nil, fmt.Errorf("%w: Member %s: a joining member needs its raft address", ErrBadCommand, m.GetId())
	}
	return m, nil
}

// applyMember records a member's intended state. Re-applying the same
// record changes nothing; the result is 1 for an active member, 0 for a
// removed one.
func applyMember(b *pebble.Batch, payload []byte, _ *slog.Logger) (uint64, error) {
	m, err := decodeMember(payload)
	if err != nil {
		return 0, err
	}
	if err := putProto(b, memberKey(m.GetId()), m); err != nil {
		return 0, err
	}
	if m.GetRemoved() {
		return 0, nil
	}
	return 1, nil
}

// HubMembers lists the members joined or removed through membership
// commands (not the initial members), ordered by id.
func (s *Store) HubMembers() []*rondav1.HubMember {
	return scanAll(s, prefixMember, func() *rondav1.HubMember { return new(rondav1.HubMember) })
}

// HubMember returns a member's record, if it joined or was removed by command.
func (s *Store) HubMember(id string) (*rondav1.HubMember, bool) {
	m := new(rondav1.HubMember)
	found, err := s.fsm.getProto(memberKey(id), m)
	if err != nil && !errors.Is(err, ErrClosed) {
		s.log.Error("read member", "member", id, "error", err)
	}
	return m, found
}

func (s *Store) configuration() ([]raft.Server, error) {
	fut := s.raft.GetConfiguration()
	if err := fut.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	return fut.Configuration().Servers, nil
}

func findServer(servers []raft.Server, id string) (raft.Server, bool) {
	for _, srv := range servers {
		if string(srv.ID) == id {
			return srv, true
		}
	}
	return raft.Server{}, false
}

// Join adds a member: the request is replicated (from any member), the
// leader adds it to raft as a non-voter, and autopilot promotes it to voter
// once it is caught up and stable. Join returns when the member is in the
// configuration this member sees (as a non-voter, usually), or ctx ends.
// Joining a member already present at the same address does nothing.
func (s *Store) Join(ctx context.Context, m MemberInfo, by string) error {
	if err := validID("member", m.ID); err != nil {
		return fmt.Errorf("%w: %v", ErrMembership, err)
	}
	if _, _, err := net.SplitHostPort(m.RaftAddr); err != nil {
		return fmt.Errorf("%w: raft address %q: %v (want host:port)", ErrMembership, m.RaftAddr, err)
	}
	if _, _, err := net.SplitHostPort(m.GRPCAddr); err != nil {
		return fmt.Errorf("%w: gRPC address %q: %v (want host:port)", ErrMembership, m.GRPCAddr, err)
	}
	servers, err := s.configuration()
	if err != nil {
		return err
	}
	for _, srv := range servers {
		switch {
		case string(srv.ID) == m.ID && string(srv.Address) != m.RaftAddr:
			return fmt.Errorf("%w: member %s is already in the cluster at %s; remove it first to move it to %s", ErrMembership, m.ID, srv.Address, m.RaftAddr)
		case string(srv.ID) != m.ID && string(srv.Address) == m.RaftAddr:
			return fmt.Errorf("%w: raft address %s is already member %s's", ErrMembership, m.RaftAddr, srv.ID)
		}
	}
	cmd, err := EncodeCommand(CommandMember, &rondav1.HubMember{Id: m.ID, RaftAddr: m.RaftAddr, GrpcAddr: m.GRPCAddr,
		HttpUrl: m.HTTPURL, ChangedBy: by, ChangedUnixNano: s.cfg.Now().UnixNano()})
	if err != nil {
		return err
	}
	if _, _, err := s.Apply(ctx, cmd); err != nil {
		return err
	}
	return s.waitConfig(ctx, func(servers []raft.Server) bool {
		_, ok := findServer(servers, m.ID)
		return ok
	}, "member "+m.ID+" added to the raft configuration")
}

// Remove takes a member out of the cluster (from any member). It refuses
// to remove the last voter. It returns when the member is gone from the
// configuration this member sees, or ctx ends.
func (s *Store) Remove(ctx context.Context, id, by string) error {
	servers, err := s.configuration()
	if err != nil {
		return err
	}
	srv, ok := findServer(servers, id)
	if !ok {
		return fmt.Errorf("%w: %q is not a member (see 'ronda hub members')", ErrMembership, id)
	}
	voters := 0
	for _, o := range servers {
		if o.Suffrage == raft.Voter && o.ID != srv.ID {
			voters++
		}
	}
	if voters == 0 {
		return fmt.Errorf("%w: %s is the last voter; a cluster needs at least one", ErrMembership, id)
	}
	if err := s.proposeRemoval(ctx, id, string(srv.Address), by); err != nil {
		return err
	}
	if id == s.cfg.ID {
		// This member leaves: it will not see the configuration without itself.
		return nil
	}
	return s.waitConfig(ctx, func(servers []raft.Server) bool {
		_, ok := findServer(servers, id)
		return !ok
	}, "member "+id+" removed from the raft configuration")
}

func (s *Store) proposeRemoval(ctx context.Context, id, raftAddr, by string) error {
	prev, _ := s.HubMember(id)
	cmd, err := EncodeCommand(CommandMember, &rondav1.HubMember{Id: id, RaftAddr: raftAddr, GrpcAddr: prev.GetGrpcAddr(),
		HttpUrl: prev.GetHttpUrl(), Removed: true, ChangedBy: by, ChangedUnixNano: s.cfg.Now().UnixNano()})
	if err != nil {
		return err
	}
	_, _, err = s.Apply(ctx, cmd)
	return err
}

func (s *Store) waitConfig(ctx context.Context, done func([]raft.Server) bool, what string) error {
	for {
		servers, err := s.configuration()
		if err == nil && done(servers) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (the leader applies membership changes within a second; check 'ronda hub members' and the leader's log)", what, ctx.Err())
		case <-s.stop:
			return ErrClosed
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TransferLeadership hands leadership to member to (empty: the most
// up-to-date voter), from any member. It returns the new leader's id.
func (s *Store) TransferLeadership(ctx context.Context, to string) (string, error) {
	addr, leader := s.raft.LeaderWithID()
	if leader == "" {
		return "", ErrNoLeader
	}
	if string(leader) != s.cfg.ID {
		mf, ok := s.cfg.Forwarder.(MemberForwarder)
		if !ok {
			return "", fmt.Errorf("%w: leader is %s (%s); ask it", ErrNotLeader, leader, addr)
		}
		return mf.TransferLeadership(ctx, string(leader), string(addr), to)
	}
	var fut raft.Future
	if to == "" {
		fut = s.raft.LeadershipTransfer()
	} else {
		servers, err := s.configuration()
		if err != nil {
			return "", err
		}
		srv, ok := findServer(servers, to)
		switch {
		case !ok:
			return "", fmt.Errorf("%w: %q is not a member (see 'ronda hub members')", ErrMembership, to)
		case srv.Suffrage != raft.Voter:
			return "", fmt.Errorf("%w: %s is a non-voter (not caught up yet); only a voter can lead", ErrMembership, to)
		case to == s.cfg.ID:
			return to, nil
		}
		fut = s.raft.LeadershipTransferToServer(srv.ID, srv.Address)
	}
	if err := fut.Error(); err != nil {
		return "", fmt.Errorf("leadership transfer: %w", err)
	}
	for {
		if _, id := s.raft.LeaderWithID(); id != "" && string(id) != s.cfg.ID {
			return string(id), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("leadership transfer: no new leader yet: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// LocalStats is this member's own raft view (HubPeer.MemberStats).
func (s *Store) LocalStats() *rondav1.MemberStatsResponse {
	st := s.raft.Stats()
	u := func(k string) uint64 { v, _ := strconv.ParseUint(st[k], 10, 64); return v }
	out := &rondav1.MemberStatsResponse{
		Id:           s.cfg.ID,
		State:        s.Cluster().State,
		Term:         u("term"),
		LastLogIndex: u("last_log_index"),
		LastLogTerm:  u("last_log_term"),
		CommitIndex:  u("commit_index"),
		AppliedIndex: s.fsm.appliedIndex(),
	}
	if _, id := s.raft.LeaderWithID(); id != "" {
		out.Leader = string(id)
	}
	if out.State != "leader" {
		if lc := s.raft.LastContact(); !lc.IsZero() {
			out.LastContactMs = time.Since(lc).Milliseconds()
		} else {
			out.LastContactMs = -1
		}
	}
	return out
}

// MemberStatus is one member as `ronda hub members` shows it.
type MemberStatus struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft_address"`
	GRPCAddr  string `json:"grpc_address,omitempty"`
	Suffrage  string `json:"suffrage"` // voter | nonvoter
	State     string `json:"state"`    // leader | follower | candidate | unreachable
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	Term      uint64 `json:"term,omitempty"`
	LastIndex uint64 `json:"last_log_index,omitempty"`
	Applied   uint64 `json:"applied_index,omitempty"`
	// LastContactMs: since the member last heard from the leader.
	LastContactMs int64 `json:"last_contact_ms"`
	// Healthy and StableSince come from autopilot when this member leads:
	// healthy means reachable, in the leader's term and at most 250 entries
	// behind; a non-voter healthy for the stabilization time is promoted.
	Healthy     *bool      `json:"healthy,omitempty"`
	StableSince *time.Time `json:"stable_since,omitempty"`
	ChangedBy   string     `json:"changed_by,omitempty"`
}

// Members asks every member of the configuration for its raft state (1 s
// each, in parallel) and adds autopilot's health if this member leads.
func (s *Store) Members(ctx context.Context) ([]MemberStatus, error) {
	servers, err := s.configuration()
	if err != nil {
		return nil, err
	}
	out := make([]MemberStatus, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		ms := &out[i]
		ms.ID, ms.RaftAddr = string(srv.ID), string(srv.Address)
		ms.Suffrage = suffrage(srv.Suffrage)
		if rec, ok := s.HubMember(ms.ID); ok {
			ms.GRPCAddr, ms.ChangedBy = rec.GetGrpcAddr(), rec.GetChangedBy()
		}
		wg.Go(func() {
			st, err := s.memberStats(ctx, ms.ID, ms.RaftAddr)
			if err != nil {
				ms.State, ms.Error = "unreachable", err.Error()
				return
			}
			ms.Reachable, ms.State, ms.Term, ms.LastIndex, ms.Applied, ms.LastContactMs =
				true, st.GetState(), st.GetTerm(), st.GetLastLogIndex(), st.GetAppliedIndex(), st.GetLastContactMs()
		})
	}
	wg.Wait()
	if ap := s.autopilotState(); ap != nil {
		for i := range out {
			if ss, ok := ap.Servers[raft.ServerID(out[i].ID)]; ok {
				h, since := ss.Health.Healthy, ss.Health.StableSince
				out[i].Healthy, out[i].StableSince = &h, &since
			}
		}
	}
	return out, nil
}

func suffrage(s raft.ServerSuffrage) string {
	switch s {
	case raft.Voter:
		return "voter"
	case raft.Nonvoter:
		return "nonvoter"
	default:
		return "staging"
	}
}

func (s *Store) memberStats(ctx context.Context, id, raftAddr string) (*rondav1.MemberStatsResponse, error) {
	if id == s.cfg.ID {
		return s.LocalStats(), nil
	}
	mf, ok := s.cfg.Forwarder.(MemberForwarder)
	if !ok {
		return nil, errors.New("no Forwarder to reach other members")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return mf.MemberStats(ctx, id, raftAddr)
}

// membership runs on every member; it acts only while this member leads:
// it applies joined and removed records to raft's configuration and runs
// autopilot.
type membership struct {
	s  *Store
	ap *autopilot.Autopilot

	mu       sync.Mutex
	lastSeen map[raft.ServerID]time.Time
	state    *autopilot.State
}

func (s *Store) runMembership() {
	m := &membership{s: s, lastSeen: map[raft.ServerID]time.Time{}}
	m.ap = autopilot.New(s.raft, m,
		autopilot.WithLogger(newHCLog(s.log, "autopilot")),
		autopilot.WithUpdateInterval(membershipInterval),
		autopilot.WithReconcileInterval(membershipInterval))
	s.members.Store(m)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t := time.NewTicker(membershipInterval)
	defer t.Stop()
	running := false
	for {
		select {
		case <-s.stop:
			if running {
				<-m.ap.Stop()
			}
			return
		case <-t.C:
		}
		leader := s.IsLeader()
		switch {
		case leader && !running:
			m.mu.Lock()
			clear(m.lastSeen) // every member gets a fresh DeadMemberAfter from now
			m.mu.Unlock()
			m.ap.Start(ctx)
			running = true
		case !leader && running:
			<-m.ap.Stop()
			running = false
			m.mu.Lock()
			m.state = nil
			m.mu.Unlock()
		}
		if leader {
			m.reconcile()
			s.seedAreas()
		}
	}
}

func (s *Store) autopilotState() *autopilot.State {
	m := s.members.Load()
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// reconcile makes raft's configuration follow the member records.
func (m *membership) reconcile() {
	s := m.s
	servers, err := s.configuration()
	if err != nil {
		return
	}
	for _, rec := range s.HubMembers() {
		srv, in := findServer(servers, rec.GetId())
		switch {
		case !rec.GetRemoved() && !in:
			s.log.Info("adding joined member as non-voter", "member", rec.GetId(), "raft", rec.GetRaftAddr(), "by", rec.GetChangedBy())
			if err := s.raft.AddNonvoter(raft.ServerID(rec.GetId()), raft.ServerAddress(rec.GetRaftAddr()), 0, 5*time.Second).Error(); err != nil {
				s.log.Warn("add member", "member", rec.GetId(), "error", err)
			}
		case rec.GetRemoved() && in:
			s.log.Info("removing member", "member", rec.GetId(), "raft", srv.Address, "by", rec.GetChangedBy())
			if err := s.raft.RemoveServer(srv.ID, 0, 5*time.Second).Error(); err != nil {
				s.log.Warn("remove member", "member", rec.GetId(), "error", err)
			}
		}
	}
}

// autopilot.ApplicationIntegration

func (m *membership) AutopilotConfig() *autopilot.Config {
	c := m.s.cfg
	return &autopilot.Config{
		CleanupDeadServers:      true,
		LastContactThreshold:    max(2*time.Second, 4*c.heartbeat()),
		MaxTrailingLogs:         250,
		MinQuorum:               uint(c.MinQuorum),
		ServerStabilizationTime: c.StabilizationTime,
	}
}

func (m *membership) NotifyState(st *autopilot.State) {
	m.mu.Lock()
	m.state = st
	m.mu.Unlock()
}

func (m *membership) FetchServerStats(ctx context.Context, servers map[raft.ServerID]*autopilot.Server) map[raft.ServerID]*autopilot.ServerStats {
	out := make(map[raft.ServerID]*autopilot.ServerStats, len(servers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id, srv := range servers {
		wg.Go(func() {
			st, err := m.s.memberStats(ctx, string(id), string(srv.Address))
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			m.mu.Lock()
			m.lastSeen[id] = time.Now()
			m.mu.Unlock()
			lc := time.Duration(st.GetLastContactMs()) * time.Millisecond
			out[id] = &autopilot.ServerStats{LastContact: lc, LastTerm: st.GetLastLogTerm(), LastIndex: st.GetLastLogIndex()}
		})
	}
	wg.Wait()
	return out
}

// KnownServers is every server of raft's configuration: alive unless it has
// not answered for DeadMemberAfter (counted from when this member became
// leader at the earliest).
func (m *membership) KnownServers() map[raft.ServerID]*autopilot.Server {
	servers, err := m.s.configuration()
	if err != nil {
		return nil
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[raft.ServerID]*autopilot.Server, len(servers))
	for _, srv := range servers {
		seen, ok := m.lastSeen[srv.ID]
		if !ok {
			seen = now
			m.lastSeen[srv.ID] = now
		}
		status := autopilot.NodeAlive
		if string(srv.ID) != m.s.cfg.ID && now.Sub(seen) > m.s.cfg.DeadMemberAfter {
			status = autopilot.NodeFailed
		}
		out[srv.ID] = &autopilot.Server{ID: srv.ID, Name: string(srv.ID), Address: srv.Address, NodeStatus: status,
			NodeType: autopilot.NodeVoter, IsLeader: string(srv.ID) == m.s.cfg.ID}
	}
	return out
}

// RemoveFailedServer records the removal; reconcile applies it.
func (m *membership) RemoveFailedServer(srv *autopilot.Server) {
	s := m.s
	s.log.Warn("member unreachable for too long; removing it", "member", srv.ID, "dead_after", s.cfg.DeadMemberAfter)
	if !s.goTracked(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.proposeRemoval(ctx, string(srv.ID), string(srv.Address), "autopilot"); err != nil {
			s.log.Warn("remove dead member", "member", srv.ID, "error", err)
		}
	}) {
		return
	}
}
