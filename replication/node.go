package replication

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jhump/grpctunnel"
	"github.com/jhump/grpctunnel/tunnelpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
)

// NodeClientConfig configures a node's end of the protocol.
type NodeClientConfig struct {
	Members      []string    // hub members' gRPC addresses
	TLS          *tls.Config // client mTLS accepting only hub identities
	Info         *rondav1.NodeInfo
	Control      rpcv1.NodeControlServer // served to the hub over the reverse tunnel
	Outbox       Outbox
	Logger       *slog.Logger
	PushInterval time.Duration // default 1 s
	BatchSize    int           // default 500 records
	MinBackoff   time.Duration // default 500 ms
	MaxBackoff   time.Duration // default 30 s
	// Keepalive: how often the node pings each member; a link that does not
	// answer within a third of it (at most 10 s) is dropped and redialled.
	// Default KeepaliveTime, at least MinKeepalive.
	Keepalive time.Duration
	// Directives applies what the hub tells the node (holds placed or
	// released centrally); nil: the node takes none.
	Directives DirectiveHandler
	// Users keeps the signed user list the hub hands over (nil: none).
	Users UserListHandler
	// Storage, if set, reports the node's recording storage in every push
	// (the hub shows days of storage left).
	Storage func() *rondav1.StorageStatus
	// LearnMembers: also dial the members the hub lists in its answer to
	// Hello that are not in Members (members that joined later).
	LearnMembers bool
	// Resync, if set, is called (once per regression, whichever member
	// shows it first) when a member answers Hello with less than the node
	// knows the hub acknowledged: the hub lost records — restored from an
	// older backup — and the node must re-send its history.
	Resync Resyncer
	// MaxBytesPerSecond caps the push traffic (0: no cap), so draining a
	// backlog never fills a kelurahan's uplink: after each push the pusher
	// waits as long as the push's bytes take at this rate.
	MaxBytesPerSecond int
}

// NodeClient dials every hub member, keeps a reverse tunnel open on each and
// drains the outbox to whichever member answers.
type NodeClient struct {
	cfg  NodeClientConfig
	log  *slog.Logger
	kick chan struct{}

	mu      sync.Mutex
	members map[string]*memberConn
	dirMu   sync.Mutex // one directive batch at a time
	// pushGate: a re-send of history (write lock) and reading records for a
	// push (read lock) exclude each other, so nothing queued since the
	// start leaves before the history goes in ahead of it.
	pushGate sync.RWMutex
	lastPush atomic.Int64

	runCtx context.Context // Run's, for members learned later
	runWG  *sync.WaitGroup
	// resyncedFor is the node's acked seq when it last re-sent its history
	// to a hub that was behind it (one re-send per regression).
	resyncedFor uint64
}

type memberConn struct {
	conn      *grpc.ClientConn
	client    rpcv1.ReplicationClient
	tunnel    bool
	since     time.Time
	lastError string
}

// NewNodeClient returns a client; call Run.
func NewNodeClient(cfg NodeClientConfig) *NodeClient {
	if cfg.PushInterval <= 0 {
		cfg.PushInterval = time.Second
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	cfg.BatchSize = min(cfg.BatchSize, MaxPushRecords)
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Keepalive <= 0 {
		cfg.Keepalive = KeepaliveTime
	}
	cfg.Keepalive = max(cfg.Keepalive, MinKeepalive)
	return &NodeClient{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1), members: map[string]*memberConn{}}
}

// Kick asks the pusher to drain the outbox now.
func (c *NodeClient) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// MemberStatus is the state of the link to one hub member.
type MemberStatus struct {
	Address   string `json:"address"`
	Connected bool   `json:"connected"`
	// ConnectedSince: when the current link came up (zero while down).
	ConnectedSince time.Time `json:"connected_since,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
}

// Status reports the link to every member.
func (c *NodeClient) Status() []MemberStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []MemberStatus
	for addr, m := range c.members {
		out = append(out, MemberStatus{Address: addr, Connected: m.tunnel, ConnectedSince: m.since, LastError: m.lastError})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// Run keeps links to all members and pushes the outbox until ctx ends.
func (c *NodeClient) Run(ctx context.Context) {
	var wg sync.WaitGroup
	c.mu.Lock()
	c.runCtx, c.runWG = ctx, &wg
	c.mu.Unlock()
	for _, addr := range c.cfg.Members {
		c.addMember(addr)
	}
	wg.Add(1)
	go func() { defer wg.Done(); c.runPusher(ctx) }()
	wg.Wait()
}

// addMember starts keeping a link to addr (once).
func (c *NodeClient) addMember(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.members[addr]; ok || c.runCtx == nil || c.runCtx.Err() != nil {
		return false
	}
	c.members[addr] = &memberConn{}
	ctx, wg := c.runCtx, c.runWG
	wg.Add(1)
	go func() { defer wg.Done(); c.runMember(ctx, addr) }()
	return true
}

// learn dials the members a hub named that this node does not know yet.
func (c *NodeClient) learn(from string, members []string) {
	if !c.cfg.LearnMembers {
		return
	}
	for _, a := range members {
		if a != "" && c.addMember(a) {
			c.log.Info("dialling a hub member the hub told about", "member", a, "told_by", from)
		}
	}
}

func (c *NodeClient) backoff(attempt int) time.Duration {
	d := c.cfg.MinBackoff << min(attempt, 16)
	if d > c.cfg.MaxBackoff || d <= 0 {
		d = c.cfg.MaxBackoff
	}
	// Full jitter in [d/2, d): hundreds of nodes reconnecting do not move in step.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func (c *NodeClient) setMember(addr string, fn func(m *memberConn)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn(c.members[addr])
}

func (c *NodeClient) runMember(ctx context.Context, addr string) {
	attempt := 0
	for ctx.Err() == nil {
		served, err := c.session(ctx, addr)
		if ctx.Err() != nil {
			return
		}
		if served {
			attempt = 0
		}
		msg := "tunnel closed by the hub"
		if err != nil {
			msg = err.Error()
			if strings.Contains(msg, "bad certificate") {
				msg += " (the hub refused this node's certificate: it may have been revoked, or it is not from this city's CA; ask the city admin, e.g. for a join token to enroll again)"
			}
		}
		c.setMember(addr, func(m *memberConn) { m.tunnel, m.client, m.lastError, m.since = false, nil, msg, time.Time{} })
		wait := c.backoff(attempt)
		attempt++
		c.log.Warn("hub member link down; retrying", "member", addr, "err", msg, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (c *NodeClient) directiveSeq() uint64 {
	if ds, ok := c.cfg.Outbox.(interface{ DirectiveSeq() uint64 }); ok {
		return ds.DirectiveSeq()
	}
	return 0
}

// applyDirectives applies, in order, the directives a member handed over
// that the node has not applied yet, recording each outcome for the hub.
func (c *NodeClient) applyDirectives(from string, ds []*rondav1.Directive) {
	rec, ok := c.cfg.Outbox.(interface {
		DirectiveSeq() uint64
		AppendDirectiveResult(seq uint64, errText string) error
	})
	if c.cfg.Directives == nil || len(ds) == 0 || !ok {
		return
	}
	c.dirMu.Lock()
	defer c.dirMu.Unlock()
	applied := 0
	for _, d := range ds {
		if d.GetSeq() <= rec.DirectiveSeq() {
			continue
		}
		msg := ""
		if err := c.cfg.Directives.ApplyDirective(d); err != nil {
			msg = err.Error()
			c.log.Warn("could not apply a hub directive; the hub is told why", "seq", d.GetSeq(), "from", from, "err", err)
		}
		if err := rec.AppendDirectiveResult(d.GetSeq(), msg); err != nil {
			c.log.Error("recording a directive's outcome failed; it is applied again next time", "seq", d.GetSeq(), "err", err)
			return
		}
		applied++
	}
	if applied > 0 {
		c.log.Info("applied hub directives", "count", applied, "from", from)
		c.Kick()
	}
}

// checkBehind re-sends the node's history when the hub has less than it
// acknowledged before (it was restored from an older backup).
func (c *NodeClient) checkBehind(addr string, hello *rondav1.HelloResponse) {
	st, ok := c.cfg.Outbox.(interface{ Stats() (last, acked uint64) })
	if !ok || c.cfg.Resync == nil {
		return
	}
	_, acked := st.Stats()
	c.mu.Lock()
	behind := hello.AckedSeq < acked && c.resyncedFor != acked
	if behind {
		c.resyncedFor = acked
	}
	c.mu.Unlock()
	if !behind {
		return
	}
	c.log.Warn("the hub has lost records it acknowledged (restored from an older backup?); re-sending this node's history",
		"member", addr, "hub_acked", hello.AckedSeq, "node_acked", acked, "hub_audit_seq", hello.AuditSeq)
	c.pushGate.Lock()
	defer c.pushGate.Unlock()
	c.cfg.Resync.Resync(hello.AckedSeq, hello.AuditSeq)
}

// session dials one member, says Hello and serves the reverse tunnel until it
// breaks. served is true if the tunnel was up.
func (c *NodeClient) session(ctx context.Context, addr string) (served bool, err error) {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(c.cfg.TLS)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: c.cfg.Keepalive, Timeout: keepaliveTimeout(c.cfg.Keepalive), PermitWithoutStream: true}),
	)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	client := rpcv1.NewReplicationClient(conn)
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	hello, err := client.Hello(hctx, &rondav1.HelloRequest{Capability: CapabilityVersion, Node: c.cfg.Info, LastSeq: c.lastSeq(), DirectiveSeq: c.directiveSeq(), UserListVersion: c.userListVersion()})
	cancel()
	if err != nil {
		return false, err
	}
	if err := c.cfg.Outbox.Ack(hello.AckedSeq); err != nil {
		c.log.Error("hub acknowledged records this node never wrote", "member", addr, "err", err)
	}
	c.checkBehind(addr, hello)
	c.applyDirectives(addr, hello.Directives)
	c.takeUserList(addr, hello.UserList, hello.HubKey)
	c.learn(addr, hello.Members)
	srv := grpctunnel.NewReverseTunnelServer(tunnelpb.NewTunnelServiceClient(conn))
	rpcv1.RegisterNodeControlServer(srv, c.cfg.Control)
	c.setMember(addr, func(m *memberConn) {
		m.conn, m.client, m.tunnel, m.lastError, m.since = conn, client, true, "", time.Now().UTC()
	})
	c.log.Info("linked to hub member", "member", addr, "member_id", hello.MemberId, "hub_capability", hello.Capability)
	c.Kick()
	started, err := srv.Serve(ctx)
	return started, err
}

func (c *NodeClient) userListVersion() uint64 {
	if c.cfg.Users == nil {
		return 0
	}
	return c.cfg.Users.UserListVersion()
}

func (c *NodeClient) takeUserList(from string, list, key []byte) {
	if c.cfg.Users != nil && len(list) > 0 {
		c.cfg.Users.SetUserList(from, list, key)
	}
}

// lastSeq is the outbox's newest sequence, if the outbox can tell.
func (c *NodeClient) lastSeq() uint64 {
	if st, ok := c.cfg.Outbox.(interface{ Stats() (last, acked uint64) }); ok {
		last, _ := st.Stats()
		return last
	}
	return 0
}

// pickClient returns a connected member's client, preferring prev.
func (c *NodeClient) pickClient(prev string) (string, rpcv1.ReplicationClient) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.members[prev]; m != nil && m.client != nil {
		return prev, m.client
	}
	addrs := make([]string, 0, len(c.members))
	for a, m := range c.members {
		if m.client != nil {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return "", nil
	}
	a := addrs[rand.IntN(len(addrs))]
	return a, c.members[a].client
}

var errNoMember = errors.New("no hub member reachable")

func (c *NodeClient) runPusher(ctx context.Context) {
	t := time.NewTicker(c.cfg.PushInterval)
	defer t.Stop()
	prev := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
		for ctx.Err() == nil {
			more, member, retry, err := c.pushOnce(ctx, prev)
			prev = member
			if err != nil {
				if !errors.Is(err, errNoMember) {
					c.log.Warn("push to hub failed", "member", member, "err", err)
					prev = ""
				}
				break
			}
			if retry > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(retry):
				}
			}
			if !more {
				break
			}
		}
	}
}

func (c *NodeClient) pushOnce(ctx context.Context, prev string) (more bool, member string, retry time.Duration, err error) {
	// A member first: records handed to a push are never rewritten by
	// coalescing, so do not hand them out while no member is reachable.
	member, client := c.pickClient(prev)
	if client == nil {
		return false, "", 0, errNoMember
	}
	pending := c.cfg.Outbox.Pending
	if s, ok := c.cfg.Outbox.(interface {
		PendingToSend(int) ([]*rondav1.Record, error)
	}); ok {
		pending = s.PendingToSend
	}
	c.pushGate.RLock()
	recs, err := pending(c.cfg.BatchSize)
	c.pushGate.RUnlock()
	if err != nil {
		return false, member, 0, err
	}
	if len(recs) == 0 && time.Since(time.Unix(0, c.lastPush.Load())) < HeartbeatEvery {
		return false, member, 0, nil
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req := &rondav1.PushRequest{NodeId: c.cfg.Info.NodeId, Records: recs, LastSeq: c.lastSeq(), DirectiveSeq: c.directiveSeq(), UserListVersion: c.userListVersion()}
	if c.cfg.Storage != nil {
		req.Storage = c.cfg.Storage()
	}
	resp, err := client.Push(pctx, req)
	if err != nil {
		return false, member, 0, err
	}
	c.lastPush.Store(time.Now().UnixNano())
	c.applyDirectives(member, resp.Directives)
	c.takeUserList(member, resp.UserList, resp.HubKey)
	if rate := c.cfg.MaxBytesPerSecond; rate > 0 {
		// Pace the drain: this push's bytes at the capped rate.
		retry = time.Duration(float64(proto.Size(req)) / float64(rate) * float64(time.Second))
	}
	if err := c.cfg.Outbox.Ack(resp.AckedSeq); err != nil {
		return false, member, 0, err
	}
	retry = max(retry, time.Duration(resp.RetryAfterMs)*time.Millisecond)
	return len(recs) == c.cfg.BatchSize || resp.RetryAfterMs > 0, member, retry, nil
}
