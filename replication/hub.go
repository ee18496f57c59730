package replication

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jhump/grpctunnel"
	"github.com/jhump/grpctunnel/tunnelpb"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/ronda-jakarta/ronda/certs"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
)

// MaxPushRecords bounds one Push; larger pushes are refused.
const MaxPushRecords = 1000

// DefaultMaxInflightPushes is how many pushes a member applies at once by
// default; beyond that it sheds load (see HubServer.SetMaxInflightPushes).
const DefaultMaxInflightPushes = 256

// admitWait is how long a push queues for a free slot before it is shed
// (queued pushes are admitted first come, first served).
const admitWait = 2 * time.Second

// HubServer is a hub member's node-facing end: the Replication service and
// the registry of reverse tunnels nodes opened to this member.
type HubServer struct {
	rpcv1.UnimplementedReplicationServer
	end     HubEnd
	log     *slog.Logger
	now     func() time.Time
	tunnels *grpctunnel.TunnelServiceHandler

	inflight chan struct{} // one token per push being applied
	pushes   *prometheus.CounterVec

	mu    sync.Mutex
	links map[string]*link // node id -> link
}

type link struct {
	tunnels  int
	since    time.Time
	lastSeen time.Time
	info     *rondav1.NodeInfo
	lastSeq  uint64      // the node's newest outbox seq, as it last said
	opens    []time.Time // tunnel opens within FlapWindow
	downAt   time.Time   // when the last tunnel closed
	storage  *rondav1.StorageStatus
}

// FlapWindow and FlapOpens: a node whose tunnel to a member opened
// FlapOpens times within FlapWindow is flapping (shown degraded).
const (
	FlapWindow = 5 * time.Minute
	FlapOpens  = 3
)

// NewHubServer returns a HubServer over end.
func NewHubServer(end HubEnd, log *slog.Logger, now func() time.Time) *HubServer {
	if now == nil {
		now = time.Now
	}
	s := &HubServer{end: end, log: log, now: now, links: map[string]*link{},
		inflight: make(chan struct{}, DefaultMaxInflightPushes),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ronda_replication_pushes_total",
			Help: "Node pushes by outcome: applied, shed (hub busy: retry after), failed (not committed: retry after), canceled (the node went away mid-push)."}, []string{"outcome"})}
	s.tunnels = grpctunnel.NewTunnelServiceHandler(grpctunnel.TunnelServiceHandlerOptions{
		NoReverseTunnels:     false,
		AffinityKey:          func(ch grpctunnel.TunnelChannel) any { return nodeKey(ch.Context()) },
		OnReverseTunnelOpen:  func(ch grpctunnel.TunnelChannel) { s.tunnel(nodeKey(ch.Context()), +1) },
		OnReverseTunnelClose: func(ch grpctunnel.TunnelChannel) { s.tunnel(nodeKey(ch.Context()), -1) },
	})
	return s
}

// SetMaxInflightPushes bounds the pushes this member applies at once (its
// Raft proposals and their memory); a push that finds no free slot within
// 2 s is answered with retry_after_ms (jittered), so a reconnect
// storm of hundreds of nodes queues at the nodes, not in the hub. Call
// before serving. (replbench: a 100 ms wait at 64 slots made a 267-node
// storm unfair and twice as slow — random retries starved unlucky nodes —
// while saving only ~15% of peak memory; pushes now queue in order for up
// to 2 s, and shedding is the last resort.)
func (s *HubServer) SetMaxInflightPushes(n int) {
	if n > 0 {
		s.inflight = make(chan struct{}, n)
	}
}

// Collectors are the member's replication metrics.
func (s *HubServer) Collectors() []prometheus.Collector { return []prometheus.Collector{s.pushes} }

// GRPCServerOptions are the options a hub member's node-facing gRPC server
// needs beyond TLS credentials: authorisation and keepalive enforcement.
func GRPCServerOptions(keepaliveEvery time.Duration) []grpc.ServerOption {
	if keepaliveEvery <= 0 {
		keepaliveEvery = KeepaliveTime
	}
	return append(ServerOptions(),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveEvery, Timeout: keepaliveTimeout(keepaliveEvery)}),
	)
}

// Register registers the Replication and tunnel services on g.
func (s *HubServer) Register(g *grpc.Server) {
	rpcv1.RegisterReplicationServer(g, s)
	tunnelpb.RegisterTunnelServiceServer(g, s.tunnels.Service())
}

// Close refuses new tunnels and ends existing ones.
func (s *HubServer) Close() { s.tunnels.InitiateShutdown() }

func nodeKey(ctx context.Context) string {
	id, ok := IdentityFrom(ctx)
	if !ok {
		return ""
	}
	return id.NodeID
}

func (s *HubServer) tunnel(nodeID string, delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.links[nodeID]
	if l == nil {
		l = &link{}
		s.links[nodeID] = l
	}
	now := s.now()
	if l.tunnels == 0 && delta > 0 {
		l.since = now
	}
	if delta > 0 {
		l.opens = append(pruneBefore(l.opens, now.Add(-FlapWindow)), now)
	}
	l.tunnels += delta
	if l.tunnels == 0 {
		l.downAt = now
	}
	l.lastSeen = now
	s.log.Info("node tunnel", "node", nodeID, "open", delta > 0, "tunnels", l.tunnels)
}

func pruneBefore(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(ts) && ts[i].Before(cut) {
		i++
	}
	return append(ts[:0], ts[i:]...)
}

func (s *HubServer) seen(nodeID string, lastSeq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.links[nodeID]
	if l == nil {
		l = &link{}
		s.links[nodeID] = l
	}
	l.lastSeen = s.now()
	l.lastSeq = max(l.lastSeq, lastSeq)
}

// LinkStatus says whether a node has a live tunnel to this member, when it
// was last heard from, how far its outbox reaches and whether its link flaps.
type LinkStatus struct {
	Connected  bool
	Since      time.Time // the tunnel is up since
	LastSeen   time.Time
	DownSince  time.Time // the last tunnel closed then (zero: never connected here)
	LastSeq    uint64    // the node's newest outbox seq, as it last said
	Reconnects int       // tunnel opens within FlapWindow
	// Storage is the node's recording storage as it last said (nil: never).
	Storage *rondav1.StorageStatus
}

// Flapping reports whether the link reconnected FlapOpens times lately.
func (l LinkStatus) Flapping() bool { return l.Reconnects >= FlapOpens }

// Link returns the link status of a node at this member.
func (s *HubServer) Link(nodeID string) LinkStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.links[nodeID]
	if l == nil {
		return LinkStatus{}
	}
	return LinkStatus{Connected: l.tunnels > 0, Since: l.since, LastSeen: l.lastSeen, DownSince: l.downAt, LastSeq: l.lastSeq,
		Reconnects: len(pruneBefore(append([]time.Time(nil), l.opens...), s.now().Add(-FlapWindow))), Storage: l.storage}
}

// NodeControl returns a client for calls into a node over its reverse tunnel
// to this member, or false if the node has none here.
func (s *HubServer) NodeControl(nodeID string) (rpcv1.NodeControlClient, bool) {
	if !s.Link(nodeID).Connected {
		return nil, false
	}
	return rpcv1.NewNodeControlClient(s.tunnels.KeyAsChannel(nodeID)), true
}

// checkNode verifies that the node info a caller sends matches its certificate.
func checkNode(ctx context.Context, nodeID, kelurahan string) (certs.Identity, error) {
	id, ok := IdentityFrom(ctx)
	if !ok {
		return id, status.Error(codes.Unauthenticated, "no verified identity")
	}
	if nodeID == "hub" {
		return id, status.Error(codes.PermissionDenied, `node id "hub" is reserved for the hub's own audit log; give the node another id`)
	}
	if nodeID != id.NodeID || (kelurahan != "" && kelurahan != id.Kelurahan) {
		return id, status.Errorf(codes.PermissionDenied,
			"certificate is %s but the request claims node %q of kelurahan %q; fix the node's config (node_id, kelurahan) to match its certificate",
			id, nodeID, kelurahan)
	}
	return id, nil
}

// Hello implements rpcv1.ReplicationServer.
func (s *HubServer) Hello(ctx context.Context, req *rondav1.HelloRequest) (*rondav1.HelloResponse, error) {
	if req.GetNode() == nil {
		return nil, status.Error(codes.InvalidArgument, "hello without node info")
	}
	id, err := checkNode(ctx, req.Node.NodeId, req.Node.KelurahanCode)
	if err != nil {
		return nil, err
	}
	if req.Capability < MinCapabilityVersion {
		return nil, status.Errorf(codes.FailedPrecondition,
			"node speaks protocol %d; this hub needs at least %d: upgrade the node's ronda binary", req.Capability, MinCapabilityVersion)
	}
	s.seen(req.Node.NodeId, req.GetLastSeq())
	resp := &rondav1.HelloResponse{
		Capability: CapabilityVersion,
		MemberId:   s.end.MemberID(),
		Members:    s.end.Members(),
		AckedSeq:   s.end.AckedSeq(req.Node.NodeId),
		AuditSeq:   s.end.AuditSeq(req.Node.NodeId),
		Directives: s.end.Directives(req.Node.NodeId, req.GetDirectiveSeq()),
	}
	if p, ok := s.end.(UserListProvider); ok {
		resp.UserList, resp.HubKey = p.UserList(id.Kelurahan, req.GetUserListVersion())
	}
	return resp, nil
}

// Push implements rpcv1.ReplicationServer.
func (s *HubServer) Push(ctx context.Context, req *rondav1.PushRequest) (*rondav1.PushResponse, error) {
	id, err := checkNode(ctx, req.NodeId, "")
	if err != nil {
		return nil, err
	}
	if n := len(req.Records); n > MaxPushRecords {
		return nil, status.Errorf(codes.InvalidArgument, "push of %d records exceeds the limit of %d; send smaller batches", n, MaxPushRecords)
	}
	for i, r := range req.Records {
		if r.Seq == 0 || (i > 0 && r.Seq <= req.Records[i-1].Seq) {
			return nil, status.Errorf(codes.InvalidArgument, "record %d has sequence %d: sequences must start at 1 and increase", i, r.Seq)
		}
		if reg := r.GetRegistration(); reg != nil {
			if _, err := checkNode(ctx, reg.NodeId, reg.KelurahanCode); err != nil {
				return nil, err
			}
		}
	}
	s.seen(req.NodeId, req.GetLastSeq())
	if st := req.GetStorage(); st != nil {
		s.mu.Lock()
		if l := s.links[req.NodeId]; l != nil {
			l.storage = st
		}
		s.mu.Unlock()
	}
	admit := time.NewTimer(admitWait)
	select {
	case s.inflight <- struct{}{}:
		admit.Stop()
		defer func() { <-s.inflight }()
	case <-admit.C:
		// Busy: the node keeps its records and comes back later, spread out.
		s.pushes.WithLabelValues("shed").Inc()
		return &rondav1.PushResponse{AckedSeq: s.end.AckedSeq(req.NodeId), RetryAfterMs: 250 + rand.Int64N(750)}, nil
	case <-ctx.Done():
		admit.Stop()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	acked, err := s.end.Push(ctx, req.NodeId, req.Records)
	if err != nil && ctx.Err() != nil {
		// The node gave up (its link went down, it stopped): nobody to answer.
		s.pushes.WithLabelValues("canceled").Inc()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if err != nil {
		s.pushes.WithLabelValues("failed").Inc()
		s.log.Warn("push failed", "node", req.NodeId, "records", len(req.Records), "err", err)
		return &rondav1.PushResponse{AckedSeq: s.end.AckedSeq(req.NodeId), RetryAfterMs: 1000}, nil
	}
	s.pushes.WithLabelValues("applied").Inc()
	resp := &rondav1.PushResponse{AckedSeq: acked, Directives: s.end.Directives(req.NodeId, req.GetDirectiveSeq())}
	if p, ok := s.end.(UserListProvider); ok {
		resp.UserList, resp.HubKey = p.UserList(id.Kelurahan, req.GetUserListVersion())
	}
	return resp, nil
}

// String describes the server for logs.
func (s *HubServer) String() string {
	return fmt.Sprintf("replication hub server %s", s.end.MemberID())
}
