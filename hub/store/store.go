// Package store is the hub's replicated catalog: a hashicorp/raft cluster
// whose state machine (FSM) lives in Pebble. It holds nodes, their cameras
// and coverage spans, fed by the nodes' outbox records. It knows nothing about
// gRPC or HTTP; followers reach the leader through a Forwarder supplied by
// the caller (see hub/peer). See DESIGN.md for the reasoning.
package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"google.golang.org/protobuf/proto"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// Peer is one initial voter of a new cluster.
type Peer struct {
	ID       string
	RaftAddr string
}

// Config configures a hub member.
type Config struct {
	// ID is this member's stable raft server ID.
	ID string
	// RaftAddr is both the listen and the advertised address for raft
	// traffic, e.g. 127.0.0.1:7001. It must name a concrete host.
	RaftAddr string
	// DataDir holds the raft log (raft.db), snapshots/ and the FSM (fsm/).
	DataDir string
	// Peers are the initial voters including this member. They are used only
	// to bootstrap a brand-new cluster (no raft state in DataDir); afterwards
	// membership lives in the raft log and Peers is ignored. Every member may
	// be started with the same Peers: identical bootstrap configurations are safe.
	Peers []Peer
	// TLS enables mutual TLS for raft traffic. It is used to listen (client
	// certificates are required and verified against ClientCAs, or RootCAs
	// when ClientCAs is nil) and to dial (Certificates are presented, the
	// server is verified against RootCAs). nil means plain TCP: tests only.
	TLS *tls.Config
	// Forwarder sends a command to the leader when this member is a follower.
	// nil makes Apply on a follower fail with ErrNotLeader.
	Forwarder Forwarder
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock for proposed timestamps; defaults to time.Now.
	Now func() time.Time

	// Raft timing; zero keeps hashicorp/raft's defaults.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	// BatchWindow is how long the leader gathers writes into one raft entry
	// (default DefaultBatchWindow; negative: no waiting, each write is
	// proposed with whatever else is already queued).
	BatchWindow time.Duration
	// Snapshot policy; zero keeps hashicorp/raft's defaults (8192 entries,
	// checked every 120 s, 10240 trailing log entries kept).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64

	// Membership (members.go). StabilizationTime: how long a joined
	// non-voter must stay healthy before autopilot promotes it (default
	// DefaultStabilizationTime). DeadMemberAfter: a member unreachable this
	// long is removed (default DefaultDeadMemberAfter), but never below
	// MinQuorum voters (default DefaultMinQuorum; 0 keeps the default, a
	// negative value means 1).
	StabilizationTime time.Duration
	DeadMemberAfter   time.Duration
	MinQuorum         int

	// WrapStream, if set, wraps the raft stream layer (tests inject network
	// partitions with it).
	WrapStream func(raft.StreamLayer) raft.StreamLayer
}

func (cfg *Config) heartbeat() time.Duration {
	if cfg.HeartbeatTimeout > 0 {
		return cfg.HeartbeatTimeout
	}
	return raft.DefaultConfig().HeartbeatTimeout
}

// Forwarder sends an encoded command to the leader and returns after the
// leader committed and applied it. Implementations wrap ErrNotLeader when the
// target is not the leader and ErrLeaderUnreachable when it cannot be
// contacted; Store.Apply retries both.
type Forwarder interface {
	Forward(ctx context.Context, leaderID, leaderRaftAddr string, command []byte) (index, result uint64, err error)
}

// Member is one server of the raft configuration as seen by this member.
type Member struct {
	ID, Address string
	Suffrage    string // voter | nonvoter | staging
	// State is leader, follower or candidate for this member itself, leader
	// for the known leader, and unknown for other members (raft does not
	// expose their state).
	State  string
	Leader bool
}

// ClusterInfo is this member's view of the cluster.
type ClusterInfo struct {
	Leader, LeaderAddr        string
	Members                   []Member
	AppliedIndex, CommitIndex uint64
	// LastSnapshotIndex is the index of the newest snapshot taken or installed.
	LastSnapshotIndex uint64
	State             string // of this member: leader|follower|candidate|shutdown
	Term              uint64
}

// Store is one hub member.
type Store struct {
	cfg   Config
	log   *slog.Logger
	fsm   *fsm
	raft  *raft.Raft
	trans *raft.NetworkTransport
	logs  *raftboltdb.BoltStore

	observer    *raft.Observer
	barrierTerm atomic.Uint64 // the term whose entries a linearizable read has seen applied
	members     atomic.Pointer[membership]
	proposeCh   chan *proposal // writes waiting for the batcher (leader only)
	stop        chan struct{}
	wg          sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	changeCh chan struct{} // closed and replaced on leader/state change

	closeOnce sync.Once
	closeErr  error
}

// Open starts a hub member. It bootstraps a new cluster from cfg.Peers only if
// DataDir holds no raft state.
func Open(cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BatchWindow == 0 {
		cfg.BatchWindow = DefaultBatchWindow
	}
	if cfg.StabilizationTime == 0 {
		cfg.StabilizationTime = DefaultStabilizationTime
	}
	if cfg.DeadMemberAfter == 0 {
		cfg.DeadMemberAfter = DefaultDeadMemberAfter
	}
	switch {
	case cfg.MinQuorum == 0:
		cfg.MinQuorum = DefaultMinQuorum
	case cfg.MinQuorum < 0:
		cfg.MinQuorum = 1
	}
	log := cfg.Logger.With("member", cfg.ID)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	s := &Store{cfg: cfg, log: log, stop: make(chan struct{}), changeCh: make(chan struct{}), proposeCh: make(chan *proposal, proposeQueue)}
	ok := false
	var cleanup []func()
	defer func() {
		if !ok {
			for _, fn := range slices.Backward(cleanup) {
				fn()
			}
		}
	}()

	f, err := openFSM(filepath.Join(cfg.DataDir, "fsm"), log.With("component", "fsm"))
	if err != nil {
		return nil, err
	}
	s.fsm = f
	cleanup = append(cleanup, func() { f.close() })

	logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("open raft log %s: %w", filepath.Join(cfg.DataDir, "raft.db"), err)
	}
	s.logs = logs
	cleanup = append(cleanup, func() { logs.Close() })
	cachedLogs, err := raft.NewLogCache(512, logs)
	if err != nil {
		return nil, fmt.Errorf("raft log cache: %w", err)
	}

	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, newHCLog(log, "raft-snapshots"))
	if err != nil {
		return nil, fmt.Errorf("open raft snapshot store in %s: %w", cfg.DataDir, err)
	}
	if err := s.catchUpFromSnapshot(snaps); err != nil {
		return nil, err
	}

	sl, err := listenRaft(cfg.RaftAddr, cfg.TLS)
	if err != nil {
		return nil, err
	}
	var stream raft.StreamLayer = sl
	if cfg.WrapStream != nil {
		stream = cfg.WrapStream(sl)
	}
	s.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  newHCLog(log, "raft-net"),
	})
	cleanup = append(cleanup, func() { s.trans.Close() })

	rc := cfg.raftConfig(log)
	existing, err := raft.HasExistingState(cachedLogs, logs, snaps)
	if err != nil {
		return nil, fmt.Errorf("inspect raft state in %s: %w", cfg.DataDir, err)
	}
	r, err := raft.NewRaft(rc, f, cachedLogs, logs, snaps, s.trans)
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	s.raft = r
	cleanup = append(cleanup, func() { r.Shutdown().Error() })

	switch {
	case existing:
		log.Info("raft state found; resuming (initial peers ignored)", "applied_index", f.appliedIndex())
	case len(cfg.Peers) == 0:
		log.Warn("no raft state and no initial peers: waiting to be added to a cluster by its leader")
	default:
		servers := make([]raft.Server, len(cfg.Peers))
		for i, p := range cfg.Peers {
			servers[i] = raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)}
		}
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return nil, fmt.Errorf("bootstrap raft cluster: %w", err)
		}
		log.Info("bootstrapped new raft cluster", "peers", len(servers))
	}

	obsCh := make(chan raft.Observation, 16)
	s.observer = raft.NewObserver(obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	r.RegisterObserver(s.observer)
	s.wg.Go(func() { s.watch(obsCh) })
	s.wg.Go(s.runBatcher)
	s.wg.Go(s.runMembership)

	ok = true
	return s, nil
}

func (cfg *Config) validate() error {
	var problems []string
	if cfg.ID == "" {
		problems = append(problems, "ID is empty")
	}
	if cfg.RaftAddr == "" {
		problems = append(problems, "RaftAddr is empty")
	}
	if cfg.DataDir == "" {
		problems = append(problems, "DataDir is empty")
	}
	if t := cfg.TLS; t != nil && len(t.Certificates) == 0 && t.GetCertificate == nil && t.GetClientCertificate == nil {
		problems = append(problems, "TLS has no certificate: mutual TLS needs this member's certificate")
	}
	if len(cfg.Peers) > 0 {
		self := false
		seen := map[string]bool{}
		for _, p := range cfg.Peers {
			if p.ID == "" || p.RaftAddr == "" {
				problems = append(problems, fmt.Sprintf("peer %+v needs both ID and RaftAddr", p))
			}
			if seen[p.ID] {
				problems = append(problems, fmt.Sprintf("peer ID %q listed twice", p.ID))
			}
			seen[p.ID] = true
			if p.ID == cfg.ID {
				self = true
				if p.RaftAddr != cfg.RaftAddr {
					problems = append(problems, fmt.Sprintf("Peers lists this member %q at %s but RaftAddr is %s", p.ID, p.RaftAddr, cfg.RaftAddr))
				}
			}
		}
		if !self {
			problems = append(problems, fmt.Sprintf("Peers does not include this member %q", cfg.ID))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrConfig, strings.Join(problems, "; "))
	}
	return nil
}

func (cfg *Config) raftConfig(log *slog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = newHCLog(log, "raft")
	// The FSM is durable on its own (applied index stored with the data), so a
	// restart must not wipe it with the last snapshot and replay.
	rc.NoSnapshotRestoreOnStart = true
	// Hand committed entries to the FSM in batches (BatchingFSM: one Pebble
	// sync for many entries) and let raft take many proposals per disk write.
	rc.BatchApplyCh = true
	if cfg.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	}
	if cfg.ElectionTimeout > 0 {
		rc.ElectionTimeout = cfg.ElectionTimeout
	}
	if cfg.LeaderLeaseTimeout > 0 {
		rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	}
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	return rc
}

// catchUpFromSnapshot restores the FSM from the newest raft snapshot if that
// snapshot is ahead of the FSM. This happens only when the process died after
// raft stored an installed snapshot but before the FSM finished restoring it:
// raft resumes after the snapshot index, so the FSM must hold that state.
func (s *Store) catchUpFromSnapshot(snaps raft.SnapshotStore) error {
	metas, err := snaps.List()
	if err != nil {
		return fmt.Errorf("list raft snapshots: %w", err)
	}
	if len(metas) == 0 {
		return nil
	}
	meta, rc, err := snaps.Open(metas[0].ID)
	if err != nil {
		return fmt.Errorf("open raft snapshot %s: %w", metas[0].ID, err)
	}
	applied, err := readSnapshotHeader(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("raft snapshot %s: %w", meta.ID, err)
	}
	if applied <= s.fsm.appliedIndex() {
		return nil
	}
	s.log.Warn("FSM is behind the newest raft snapshot; restoring it", "snapshot", meta.ID,
		"snapshot_applied_index", applied, "fsm_applied_index", s.fsm.appliedIndex())
	_, rc, err = snaps.Open(meta.ID)
	if err != nil {
		return fmt.Errorf("open raft snapshot %s: %w", meta.ID, err)
	}
	if err := s.fsm.Restore(rc); err != nil {
		return fmt.Errorf("restore FSM from raft snapshot %s: %w", meta.ID, err)
	}
	return nil
}

// watch turns raft observations into wake-ups for waiters.
func (s *Store) watch(obs <-chan raft.Observation) {
	for {
		select {
		case <-s.stop:
			return
		case <-obs:
			s.mu.Lock()
			close(s.changeCh)
			s.changeCh = make(chan struct{})
			s.mu.Unlock()
		}
	}
}

func (s *Store) changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changeCh
}

// Close stops the member. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		var errs []error
		s.raft.DeregisterObserver(s.observer)
		if err := s.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
		}
		// Apply waiters end once raft resolved their futures.
		s.wg.Wait()
		if err := s.trans.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raft transport: %w", err))
		}
		if err := s.logs.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raft log: %w", err))
		}
		if err := s.fsm.close(); err != nil {
			errs = append(errs, fmt.Errorf("FSM: %w", err))
		}
		s.closeErr = errors.Join(errs...)
		s.log.Info("hub member stopped")
	})
	return s.closeErr
}

// goTracked runs fn on a goroutine Close waits for; false after Close.
func (s *Store) goTracked(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Go(fn)
	return true
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Apply commits command through raft and returns its log index and result
// once it is applied: directly if this member leads, else via the Forwarder,
// in which case it also waits (bounded by ctx) until this member has applied
// the index, so reads here see the write. Without a leader it waits and
// retries until ctx expires, then fails with ErrNoLeader. A command whose
// outcome is unknown after a leadership change is retried, which is safe
// because every command is idempotent. If ctx expires after proposing, the
// command may still commit.
func (s *Store) Apply(ctx context.Context, command []byte) (index, result uint64, err error) {
	if err := ValidateCommand(command); err != nil {
		return 0, 0, err
	}
	const maxBackoff = 500 * time.Millisecond
	backoff := 10 * time.Millisecond
	var lastErr error
	for {
		if s.isClosed() {
			return 0, 0, ErrClosed
		}
		changed := s.changed()
		attempted := true
		if s.raft.State() == raft.Leader {
			index, result, err = s.applyLocal(ctx, command)
		} else if addr, id := s.raft.LeaderWithID(); id == "" {
			attempted = false // no leader known: wait for an election
		} else if s.cfg.Forwarder == nil {
			return 0, 0, fmt.Errorf("%w: leader is %s (%s) and no Forwarder is configured", ErrNotLeader, id, addr)
		} else {
			index, result, err = s.cfg.Forwarder.Forward(ctx, string(id), string(addr), command)
			if err == nil {
				wctx, cancel := context.WithTimeout(ctx, maxLocalApplyWait)
				s.waitApplied(wctx, index)
				cancel()
			} else {
				err = fmt.Errorf("forward to leader %s (%s): %w", id, addr, err)
			}
		}
		if attempted {
			if err == nil {
				return index, result, nil
			}
			if !retryable(err) {
				return 0, 0, err
			}
			lastErr = err
			s.log.Debug("apply: retrying", "error", err, "backoff", backoff)
		}
		if werr := s.wait(ctx, changed, backoff); werr != nil {
			if errors.Is(werr, ErrClosed) {
				return 0, 0, ErrClosed
			}
			if lastErr != nil {
				return 0, 0, fmt.Errorf("%w: command not committed before the deadline (%w); last attempt: %w", ErrNoLeader, werr, lastErr)
			}
			return 0, 0, fmt.Errorf("%w: none elected before the deadline (%w); check that a majority of hub members is up and can reach each other", ErrNoLeader, werr)
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// ApplyLeader commits command only if this member is the leader; otherwise it
// fails with ErrNotLeader naming the leader it knows of. It is what the
// HubPeer service calls for forwarded commands (never forwarding again).
func (s *Store) ApplyLeader(ctx context.Context, command []byte) (index, result uint64, err error) {
	if err := ValidateCommand(command); err != nil {
		return 0, 0, err
	}
	if s.isClosed() {
		return 0, 0, ErrClosed
	}
	return s.applyLocal(ctx, command)
}

func (s *Store) notLeaderError() error {
	addr, id := s.raft.LeaderWithID()
	if id == "" {
		return fmt.Errorf("%w; no leader is known (election in progress?)", ErrNotLeader)
	}
	return fmt.Errorf("%w; leader is %s (%s)", ErrNotLeader, id, addr)
}

// maxLocalApplyWait bounds how long a forwarded write waits for this member
// to apply it locally; the write is committed either way.
const maxLocalApplyWait = 5 * time.Second

// wait blocks until ctx is done (returning its error), changed fires, d
// elapses or the store closes.
func (s *Store) wait(ctx context.Context, changed <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stop:
		return ErrClosed
	case <-changed:
	case <-t.C:
	}
	return nil
}

// waitApplied waits until this member's FSM reached index or ctx is done.
func (s *Store) waitApplied(ctx context.Context, index uint64) {
	for {
		ch := s.fsm.appliedChan()
		if s.fsm.appliedIndex() >= index {
			return
		}
		select {
		case <-ctx.Done():
			s.log.Debug("forwarded command committed but not yet applied locally", "index", index)
			return
		case <-s.stop:
			return
		case <-ch:
		}
	}
}

// ApplyNodeRecords commits a node's outbox records and returns the node's
// acknowledged (applied) sequence number. If every record is already applied
// at this member, it answers from local state without a raft round trip.
func (s *Store) ApplyNodeRecords(ctx context.Context, nodeID string, recs []*rondav1.Record) (ackedSeq uint64, err error) {
	if err := validID("node", nodeID); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	var maxSeq uint64
	for _, r := range recs {
		maxSeq = max(maxSeq, r.GetSeq())
	}
	if acked := s.AckedSeq(nodeID); maxSeq <= acked {
		// Applied state only grows, so a local (possibly stale) view that
		// already covers every record is conclusive.
		return acked, nil
	}
	cmd, err := EncodeNodeRecords(&rondav1.NodeRecords{
		NodeId:           nodeID,
		Records:          recs,
		ProposedUnixNano: s.cfg.Now().UnixNano(),
	})
	if err != nil {
		return 0, err
	}
	_, result, err := s.Apply(ctx, cmd)
	return result, err
}

// Reads. They serve this member's local FSM state, which may lag the leader
// by the replication delay (stale reads; linearizable reads are deferred, see
// DESIGN.md). After a successful Apply on this member the write is visible.

// Node returns a node by id.
func (s *Store) Node(id string) (*rondav1.StoredNode, bool) {
	n := new(rondav1.StoredNode)
	found, err := s.fsm.getProto(nodeKey(id), n)
	if err != nil && !errors.Is(err, ErrClosed) {
		s.log.Error("read node", "node", id, "error", err)
	}
	return n, found
}

// Nodes lists all nodes ordered by id.
func (s *Store) Nodes() []*rondav1.StoredNode {
	return scanAll(s, prefixNode, func() *rondav1.StoredNode { return new(rondav1.StoredNode) })
}

// Cameras lists all cameras ordered by id.
func (s *Store) Cameras() []*rondav1.StoredCamera {
	return scanAll(s, prefixCamera, func() *rondav1.StoredCamera { return new(rondav1.StoredCamera) })
}

// Camera returns a camera by id.
func (s *Store) Camera(id string) (*rondav1.StoredCamera, bool) {
	c := new(rondav1.StoredCamera)
	found, err := s.fsm.getProto(cameraKey(id), c)
	if err != nil && !errors.Is(err, ErrClosed) {
		s.log.Error("read camera", "camera", id, "error", err)
	}
	return c, found
}

// Coverage returns the camera's merged spans intersecting [from,to), clipped
// to it, in time order.
func (s *Store) Coverage(cameraID string, from, to time.Time) []*rondav1.Span {
	var spans []interval
	_, err := s.fsm.read(func(r pebble.Reader) error {
		var err error
		spans, err = readCoverage(r, cameraID, from.UnixNano(), to.UnixNano())
		return err
	})
	if err != nil && !errors.Is(err, ErrClosed) {
		s.log.Error("read coverage", "camera", cameraID, "error", err)
	}
	return clipIntervals(cameraID, spans, from.UnixNano(), to.UnixNano())
}

// Query answers a city-wide catalog question from this member's in-memory
// index (stale-ok, like the other reads): cameras by area, node, tags or
// distance, with footage in [From, To). See catalog.go.
func (s *Store) Query(q Query) (Result, error) { return s.fsm.cat.query(q) }

// AckedSeq is the highest outbox seq of the node applied here (0 if unknown).
func (s *Store) AckedSeq(nodeID string) uint64 {
	n, _ := s.Node(nodeID)
	return n.GetAppliedSeq()
}

// AuditSeq returns the newest audit_seq of the node's audit events held here.
func (s *Store) AuditSeq(nodeID string) uint64 {
	n, _ := s.Node(nodeID)
	return n.GetAuditSeq()
}

func scanAll[M proto.Message](s *Store, prefix []byte, newM func() M) []M {
	var out []M
	_, err := s.fsm.read(func(r pebble.Reader) error {
		return scanPrefix(r, prefix, func(k, v []byte) error {
			m := newM()
			if err := proto.Unmarshal(v, m); err != nil {
				return fmt.Errorf("%w: decode %q: %v", ErrSchema, k, err)
			}
			out = append(out, m)
			return nil
		})
	})
	if err != nil && !errors.Is(err, ErrClosed) {
		s.log.Error("scan FSM", "prefix", string(prefix), "error", err)
	}
	return out
}

// IsLeader reports whether this member currently believes it is the leader.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// LeaderWait blocks until some leader is known or ctx is done (ErrNoLeader).
func (s *Store) LeaderWait(ctx context.Context) error {
	for {
		changed := s.changed()
		if _, id := s.raft.LeaderWithID(); id != "" {
			return nil
		}
		if err := s.wait(ctx, changed, 100*time.Millisecond); err != nil {
			return fmt.Errorf("%w (%w)", ErrNoLeader, err)
		}
	}
}

// Snapshot asks raft to snapshot the FSM now and compact the log. It returns
// nil if nothing changed since the last snapshot.
func (s *Store) Snapshot() error {
	err := s.raft.Snapshot().Error()
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("raft snapshot: %w", err)
	}
	return nil
}

// Cluster describes the cluster as this member sees it.
func (s *Store) Cluster() ClusterInfo {
	leaderAddr, leaderID := s.raft.LeaderWithID()
	state := s.raft.State()
	info := ClusterInfo{
		Leader:       string(leaderID),
		LeaderAddr:   string(leaderAddr),
		AppliedIndex: s.raft.AppliedIndex(),
		CommitIndex:  s.raft.CommitIndex(),
		State:        strings.ToLower(state.String()),
		Term:         s.raft.CurrentTerm(),
	}
	if v, ok := s.raft.Stats()["last_snapshot_index"]; ok {
		fmt.Sscan(v, &info.LastSnapshotIndex)
	}
	fut := s.raft.GetConfiguration()
	if err := fut.Error(); err != nil {
		s.log.Debug("cluster: raft configuration unavailable", "error", err)
		return info
	}
	for _, srv := range fut.Configuration().Servers {
		m := Member{
			ID:       string(srv.ID),
			Address:  string(srv.Address),
			Suffrage: strings.ToLower(srv.Suffrage.String()),
			State:    "unknown",
			Leader:   srv.ID == leaderID,
		}
		switch {
		case srv.ID == raft.ServerID(s.cfg.ID):
			m.State = info.State
		case m.Leader:
			m.State = "leader"
		}
		info.Members = append(info.Members, m)
	}
	return info
}
