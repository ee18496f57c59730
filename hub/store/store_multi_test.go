package store_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/ronda-jakarta/ronda/hub/peer"
	"github.com/ronda-jakarta/ronda/hub/store"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
)

// Timing for in-process clusters: short enough for a quick suite, long
// enough not to flap under -race on two cores.
const (
	heartbeat   = 400 * time.Millisecond
	election    = 400 * time.Millisecond
	leaderLease = 250 * time.Millisecond
	converge    = 10 * time.Second
)

func logger() *slog.Logger {
	if os.Getenv("RONDA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// freeAddr returns a free loopback address below the kernel's ephemeral
// port range: an address is picked here and bound later (and again after a
// member restarts), and a port from the ephemeral range can be taken in
// between by any outgoing connection (Raft's own, other tests').
func freeAddr(t testing.TB) string {
	t.Helper()
	for try := 0; try < 200; try++ {
		addr := fmt.Sprintf("127.0.0.1:%d", 10000+mrand.IntN(20000))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free port in 10000-29999")
	return ""
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v: %v", what, timeout, err)
		}
		<-tick.C
	}
}

type member struct {
	id, raftAddr, grpcAddr, dir string
	tls                         *tls.Config

	st     *store.Store
	fwd    *peer.Forwarder
	gs     *grpc.Server
	served chan error
}

type cluster struct {
	t       testing.TB
	mu      sync.Mutex // guards members against resolve (forwarders' goroutines)
	members []*member
	peers   []store.Peer
	tune    func(*store.Config)
	// blocked, if set, cuts member-to-member gRPC (forwarded writes and
	// reads) the way a network partition would.
	blocked func(from, to string) bool
}

func newCluster(t testing.TB, n int, tlsFor func(id string) *tls.Config, tune func(*store.Config)) *cluster {
	t.Helper()
	return newClusterPrepared(t, n, tlsFor, tune, nil)
}

// newClusterPrepared is newCluster with a hook run on each member's config
// before any member starts (e.g. to restore a backup into its data dir).
func newClusterPrepared(t testing.TB, n int, tlsFor func(id string) *tls.Config, tune func(*store.Config), prepare func(cfg store.Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, tune: tune}
	base := t.TempDir()
	for i := range n {
		m := &member{
			id:       fmt.Sprintf("hub-%d", i+1),
			raftAddr: freeAddr(t),
			grpcAddr: freeAddr(t),
		}
		m.dir = filepath.Join(base, m.id)
		if tlsFor != nil {
			m.tls = tlsFor(m.id)
		}
		c.members = append(c.members, m)
		c.peers = append(c.peers, store.Peer{ID: m.id, RaftAddr: m.raftAddr})
	}
	if prepare != nil {
		for _, m := range c.members {
			prepare(store.Config{ID: m.id, RaftAddr: m.raftAddr, DataDir: m.dir, Peers: c.peers, Logger: logger()})
		}
	}
	for _, m := range c.members {
		c.start(m, c.peers)
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			c.stop(m)
		}
	})
	return c
}

// addMember makes a member that is not part of the initial configuration
// (it has to join); start it with no peers.
func (c *cluster) addMember(id string) *member {
	m := &member{id: id, raftAddr: freeAddr(c.t), grpcAddr: freeAddr(c.t), dir: filepath.Join(c.t.TempDir(), id)}
	c.mu.Lock()
	c.members = append(c.members, m)
	c.mu.Unlock()
	return m
}

func (c *cluster) resolve(id string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.members {
		if m.id == id {
			return m.grpcAddr, true
		}
	}
	return "", false
}

func (c *cluster) start(m *member, peers []store.Peer) {
	c.t.Helper()
	from := m.id
	m.fwd = peer.NewForwarder(func(id string) (string, bool) {
		if c.blocked != nil && c.blocked(from, id) {
			return "127.0.0.1:1", true // refused, like an unreachable member
		}
		return c.resolve(id)
	}, nil)
	cfg := store.Config{
		ID:                 m.id,
		RaftAddr:           m.raftAddr,
		DataDir:            m.dir,
		Peers:              peers,
		TLS:                m.tls,
		Forwarder:          m.fwd,
		Logger:             logger(),
		HeartbeatTimeout:   heartbeat,
		ElectionTimeout:    election,
		LeaderLeaseTimeout: leaderLease,
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	st, err := store.Open(cfg)
	if err != nil {
		c.t.Fatalf("open %s: %v", m.id, err)
	}
	m.st = st
	lis, err := net.Listen("tcp", m.grpcAddr)
	if err != nil {
		c.t.Fatalf("listen gRPC for %s: %v", m.id, err)
	}
	m.gs = grpc.NewServer()
	rpcv1.RegisterHubPeerServer(m.gs, peer.NewServer(st).WithLogger(logger()))
	m.served = make(chan error, 1)
	go func() { m.served <- m.gs.Serve(lis) }()
}

// stop simulates the member's process going away.
func (c *cluster) stop(m *member) {
	if m.st == nil {
		return
	}
	m.gs.Stop()
	// Stopped before its goroutine reached Serve: Serve says so, harmlessly.
	if err := <-m.served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		c.t.Errorf("%s: gRPC serve: %v", m.id, err)
	}
	if err := m.st.Close(); err != nil {
		c.t.Errorf("%s: close: %v", m.id, err)
	}
	if err := m.fwd.Close(); err != nil {
		c.t.Errorf("%s: close forwarder: %v", m.id, err)
	}
	m.st = nil
}

func (c *cluster) running() []*member {
	var out []*member
	for _, m := range c.members {
		if m.st != nil {
			out = append(out, m)
		}
	}
	return out
}

// leader waits until the running members agree on one leader and returns it.
func (c *cluster) leader(timeout time.Duration) *member {
	c.t.Helper()
	var lead *member
	eventually(c.t, timeout, "leader elected", func() error {
		lead = nil
		for _, m := range c.running() {
			if m.st.IsLeader() {
				if lead != nil {
					return fmt.Errorf("two leaders: %s and %s", lead.id, m.id)
				}
				lead = m
			}
		}
		if lead == nil {
			return errors.New("no leader")
		}
		for _, m := range c.running() {
			if got := m.st.Cluster().Leader; got != lead.id {
				return fmt.Errorf("%s thinks the leader is %q, not %s", m.id, got, lead.id)
			}
		}
		return nil
	})
	return lead
}

func (c *cluster) followers(lead *member) []*member {
	var out []*member
	for _, m := range c.running() {
		if m != lead {
			out = append(out, m)
		}
	}
	return out
}

// state renders a member's whole catalog deterministically.
func state(st *store.Store) []byte {
	var buf bytes.Buffer
	mo := proto.MarshalOptions{Deterministic: true}
	for _, n := range st.Nodes() {
		b, _ := mo.Marshal(n)
		buf.Write(b)
	}
	for _, cam := range st.Cameras() {
		b, _ := mo.Marshal(cam)
		buf.Write(b)
		for _, s := range st.Coverage(cam.GetCamera().GetId(), time.Unix(0, 0), time.Unix(1<<33, 0)) {
			b, _ := mo.Marshal(s)
			buf.Write(b)
		}
	}
	return buf.Bytes()
}

func (c *cluster) converged(timeout time.Duration, check func(st *store.Store) error) {
	c.t.Helper()
	eventually(c.t, timeout, "members converged", func() error {
		var ref []byte
		var refID string
		for _, m := range c.running() {
			if check != nil {
				if err := check(m.st); err != nil {
					return fmt.Errorf("%s: %w", m.id, err)
				}
			}
			s := state(m.st)
			if ref == nil {
				ref, refID = s, m.id
			} else if !bytes.Equal(ref, s) {
				return fmt.Errorf("%s and %s differ", refID, m.id)
			}
		}
		return nil
	})
}

const (
	node = "3171011001"
	cam  = "3171011001-gerbang"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func registration(seq uint64) *rondav1.Record {
	return &rondav1.Record{Seq: seq, Body: &rondav1.Record_Registration{Registration: &rondav1.NodeInfo{
		NodeId: node, KelurahanCode: "31.71.01.1001", ApiUrl: "https://node.example", Version: "test"}}}
}

func inventory(seq uint64) *rondav1.Record {
	return &rondav1.Record{Seq: seq, Body: &rondav1.Record_Cameras{Cameras: &rondav1.CameraInventory{
		Cameras: []*rondav1.Camera{{Id: cam, Name: "gerbang", Codec: "h264", Width: 1920, Height: 1080, State: "streaming"}}}}}
}

// spanAt is the span of write i: 1 s long, 10 s apart, so spans never merge
// and the span count equals the number of applied span records.
func spanAt(seq uint64, i int) *rondav1.Record {
	start := epoch.Add(time.Duration(i) * 10 * time.Second)
	return &rondav1.Record{Seq: seq, Body: &rondav1.Record_Span{Span: &rondav1.Span{
		CameraId: cam, StartUnixNano: start.UnixNano(), EndUnixNano: start.Add(time.Second).UnixNano()}}}
}

func coverageCount(st *store.Store) int {
	return len(st.Coverage(cam, epoch.Add(-time.Hour), epoch.Add(1000*time.Hour)))
}

func wantAcked(seq uint64, spans int) func(*store.Store) error {
	return func(st *store.Store) error {
		if got := st.AckedSeq(node); got != seq {
			return fmt.Errorf("acked seq %d, want %d", got, seq)
		}
		if got := coverageCount(st); got != spans {
			return fmt.Errorf("%d spans, want %d", got, spans)
		}
		return nil
	}
}

func TestClusterForwardedWritesConvergeAndApplyOnce(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	lead := c.leader(converge)
	f := c.followers(lead)

	ctx, cancel := context.WithTimeout(t.Context(), converge)
	defer cancel()
	recs := []*rondav1.Record{registration(1), inventory(2), spanAt(3, 0), spanAt(4, 1), spanAt(5, 2)}
	acked, err := f[0].st.ApplyNodeRecords(ctx, node, recs)
	if err != nil {
		t.Fatalf("write through follower %s: %v", f[0].id, err)
	}
	if acked != 5 {
		t.Fatalf("acked %d, want 5", acked)
	}
	// Forwarding waits for the local apply: the follower reads its own write.
	if got := f[0].st.AckedSeq(node); got != 5 {
		t.Fatalf("follower reads acked seq %d right after its write, want 5", got)
	}
	c.converged(converge, wantAcked(5, 3))
	n, ok := lead.st.Node(node)
	if !ok || n.GetInfo().GetKelurahanCode() != "31.71.01.1001" || n.GetRegisteredUnixNano() == 0 {
		t.Fatalf("leader's node: %v %v", ok, n)
	}
	sc, ok := f[1].st.Camera(cam)
	if !ok || sc.GetNodeId() != node || sc.GetKelurahanCode() != "31.71.01.1001" || sc.GetCamera().GetWidth() != 1920 {
		t.Fatalf("camera on %s: %v %v", f[1].id, ok, sc)
	}

	// The node retries the same push through another member: applied once.
	before := lead.st.Cluster().AppliedIndex
	acked, err = f[1].st.ApplyNodeRecords(ctx, node, recs)
	if err != nil || acked != 5 {
		t.Fatalf("retried push: acked %d, err %v", acked, err)
	}
	// And the same command forced through raft: the FSM skips it by seq.
	cmd, err := store.EncodeNodeRecords(&rondav1.NodeRecords{NodeId: node, Records: recs[2:], ProposedUnixNano: 1})
	if err != nil {
		t.Fatal(err)
	}
	idx, result, err := f[1].st.Apply(ctx, cmd)
	if err != nil || result != 5 || idx <= before {
		t.Fatalf("raw retried command: index %d (before %d), result %d, err %v", idx, before, result, err)
	}
	// A partly new push applies only the new records.
	acked, err = f[1].st.ApplyNodeRecords(ctx, node, append(recs[3:], spanAt(6, 3)))
	if err != nil || acked != 6 {
		t.Fatalf("partly new push: acked %d, err %v", acked, err)
	}
	c.converged(converge, wantAcked(6, 4))
	if n, _ := lead.st.Node(node); n.GetUpdatedUnixNano() == 1 {
		t.Fatal("a fully skipped command must not touch the node")
	}

	// Rejected commands surface as such through forwarding.
	if _, _, err := f[0].st.Apply(ctx, []byte{0x7e}); !errors.Is(err, store.ErrUnknownCommand) {
		t.Fatalf("unknown command: %v", err)
	}

	info := f[0].st.Cluster()
	if len(info.Members) != 3 || info.Leader != lead.id || info.State != "follower" || info.Term == 0 || info.CommitIndex == 0 {
		t.Fatalf("cluster info: %+v", info)
	}
	leaders := 0
	for _, m := range info.Members {
		if m.Leader {
			leaders++
			if m.State != "leader" || m.ID != lead.id {
				t.Fatalf("leader member: %+v", m)
			}
		}
		if m.ID == f[0].id && m.State != "follower" {
			t.Fatalf("self member: %+v", m)
		}
	}
	if leaders != 1 {
		t.Fatalf("members: %+v", info.Members)
	}
}

func TestClusterLeaderFailover(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	old := c.leader(converge)
	survivors := c.followers(old)

	ctx := t.Context()
	if _, err := survivors[0].st.ApplyNodeRecords(ctx, node, []*rondav1.Record{registration(1), inventory(2)}); err != nil {
		t.Fatal(err)
	}

	const total, killAfter = 60, 15
	killed := make(chan struct{})
	var (
		mu    sync.Mutex
		acked uint64
	)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range total {
			if i == killAfter {
				select { // make sure part of the stream straddles the election
				case <-killed:
				case <-ctx.Done():
					return
				}
			}
			seq := uint64(3 + i)
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			got, err := survivors[i%2].st.ApplyNodeRecords(wctx, node, []*rondav1.Record{spanAt(seq, i)})
			cancel()
			if err != nil || got != seq {
				errs <- fmt.Errorf("write %d via %s: acked %d, err %v", i, survivors[i%2].id, got, err)
				return
			}
			mu.Lock()
			acked = got
			mu.Unlock()
		}
	})

	eventually(t, converge, "writes before the kill", func() error {
		mu.Lock()
		defer mu.Unlock()
		if acked < 3+killAfter/2 {
			return fmt.Errorf("acked %d", acked)
		}
		return nil
	})
	killedAt := time.Now()
	c.stop(old)
	close(killed)

	newLead := c.leader(5 * time.Second)
	t.Logf("new leader %s elected %v after the old one stopped", newLead.id, time.Since(killedAt).Round(time.Millisecond))

	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	// Every acknowledged write is on both survivors.
	c.converged(converge, wantAcked(2+total, total))
}

func TestClusterRestartedMemberCatchesUpWithoutRebootstrap(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	lead := c.leader(converge)
	f := c.followers(lead)
	ctx := t.Context()
	if _, err := lead.st.ApplyNodeRecords(ctx, node, []*rondav1.Record{registration(1), inventory(2), spanAt(3, 0)}); err != nil {
		t.Fatal(err)
	}
	c.converged(converge, wantAcked(3, 1))

	gone := f[1]
	c.stop(gone)
	for i := range 10 {
		if _, err := f[0].st.ApplyNodeRecords(ctx, node, []*rondav1.Record{spanAt(uint64(4+i), 1+i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Restart with a single-member peer list: bootstrapping it would make the
	// member a cluster of one. Existing state must win.
	c.start(gone, []store.Peer{{ID: gone.id, RaftAddr: gone.raftAddr}})
	c.converged(converge, wantAcked(13, 11))
	if info := gone.st.Cluster(); len(info.Members) != 3 || info.Leader != lead.id {
		t.Fatalf("restarted member re-bootstrapped or lost the cluster: %+v", info)
	}
	// It takes part in new writes.
	if _, err := gone.st.ApplyNodeRecords(ctx, node, []*rondav1.Record{spanAt(14, 11)}); err != nil {
		t.Fatal(err)
	}
	c.converged(converge, wantAcked(14, 12))
}

func TestClusterSnapshotInstall(t *testing.T) {
	c := newCluster(t, 3, nil, func(cfg *store.Config) {
		cfg.TrailingLogs = 2 // compact aggressively so the lagging member needs the snapshot
	})
	lead := c.leader(converge)
	f := c.followers(lead)
	ctx := t.Context()
	if _, err := lead.st.ApplyNodeRecords(ctx, node, []*rondav1.Record{registration(1), inventory(2)}); err != nil {
		t.Fatal(err)
	}
	c.converged(converge, wantAcked(2, 0))
	lagging := f[1]
	c.stop(lagging)

	for i := range 30 {
		if _, err := f[0].st.ApplyNodeRecords(ctx, node, []*rondav1.Record{spanAt(uint64(3+i), i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Snapshot (and so compact) every running member, not just the first
	// leader: leadership may have moved under load, and whoever leads must be
	// unable to send the lagging member plain log entries.
	var snapIdx uint64
	for _, m := range c.running() {
		if err := m.st.Snapshot(); err != nil {
			t.Fatalf("snapshot on %s: %v", m.id, err)
		}
		idx := m.st.Cluster().LastSnapshotIndex
		if idx == 0 {
			t.Fatalf("%s reports no snapshot", m.id)
		}
		if snapIdx == 0 || idx < snapIdx {
			snapIdx = idx
		}
	}

	c.start(lagging, c.peers)
	c.converged(converge, wantAcked(32, 30))
	// The lagging member never snapshots on its own (default threshold), so a
	// snapshot index proves it installed one from the leader.
	// Raft records the install just after the FSM restore returns: poll.
	eventually(t, converge, "lagging member installed a snapshot", func() error {
		if got := lagging.st.Cluster().LastSnapshotIndex; got < snapIdx {
			return fmt.Errorf("its last snapshot index is %d, want >= %d", got, snapIdx)
		}
		return nil
	})
	// Replication continues after the install, and the installed state survives a restart.
	if _, err := lagging.st.ApplyNodeRecords(ctx, node, []*rondav1.Record{spanAt(33, 30)}); err != nil {
		t.Fatal(err)
	}
	c.converged(converge, wantAcked(33, 31))
	c.stop(lagging)
	c.start(lagging, c.peers)
	c.converged(converge, wantAcked(33, 31))
}

// testPKI issues member certificates (server and client use) from a test CA.
type testPKI struct {
	pool   *x509.CertPool
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

func newPKI(t *testing.T, cn string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testPKI{pool: pool, caCert: cert, caKey: key}
}

func (p *testPKI) issue(t *testing.T, id string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (p *testPKI) config(t *testing.T, id string) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.issue(t, id)},
		RootCAs:      p.pool,
		ClientCAs:    p.pool,
		MinVersion:   tls.VersionTLS13,
	}
}

func TestClusterRaftOverMutualTLS(t *testing.T) {
	pki := newPKI(t, "ronda test hub CA")
	c := newCluster(t, 3, func(id string) *tls.Config { return pki.config(t, id) }, nil)
	lead := c.leader(converge)
	f := c.followers(lead)
	ctx := t.Context()
	if _, err := f[0].st.ApplyNodeRecords(ctx, node, []*rondav1.Record{registration(1), inventory(2), spanAt(3, 0)}); err != nil {
		t.Fatal(err)
	}
	c.converged(converge, wantAcked(3, 1))

	// A peer without a client certificate, or with one from another CA, is
	// refused with a TLS alert; a member certificate gets through TLS (raft
	// then drops the connection over the garbage probe, without an alert).
	rogue := newPKI(t, "rogue CA")
	for name, cfg := range map[string]*tls.Config{
		"no client certificate": {RootCAs: pki.pool, MinVersion: tls.VersionTLS13},
		"foreign certificate":   {RootCAs: pki.pool, Certificates: []tls.Certificate{rogue.issue(t, "intruder")}, MinVersion: tls.VersionTLS13},
	} {
		if err := probeRaft(lead.raftAddr, cfg); !isTLSAlert(err) {
			t.Fatalf("%s: want a TLS alert from the raft port, got %v", name, err)
		}
	}
	if err := probeRaft(lead.raftAddr, pki.config(t, "probe")); isTLSAlert(err) {
		t.Fatalf("member certificate refused: %v", err)
	}
}

// isTLSAlert reports whether err is an alert sent by the TLS peer.
func isTLSAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}

// probeRaft connects and sends a byte; with TLS 1.3 a rejected client
// certificate surfaces on the first read.
func probeRaft(addr string, cfg *tls.Config) error {
	var conn net.Conn
	var err error
	d := &net.Dialer{Timeout: 2 * time.Second}
	if cfg != nil {
		conn, err = tls.DialWithDialer(d, "tcp", addr, cfg)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	// An AppendEntries type byte followed by garbage: a real raft server
	// would try to decode it; what matters is that TLS fails first.
	if _, err := conn.Write([]byte{0, 0xc1}); err != nil {
		return err
	}
	_, err = conn.Read(make([]byte, 1))
	return err
}

func TestApplyWithoutQuorumFailsWithErrNoLeader(t *testing.T) {
	self := store.Peer{ID: "lonely", RaftAddr: freeAddr(t)}
	st, err := store.Open(store.Config{
		ID: self.ID, RaftAddr: self.RaftAddr, DataDir: t.TempDir(), Logger: logger(),
		Peers:            []store.Peer{self, {ID: "ghost", RaftAddr: freeAddr(t)}},
		HeartbeatTimeout: heartbeat, ElectionTimeout: election, LeaderLeaseTimeout: leaderLease,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
	defer cancel()
	_, err = st.ApplyNodeRecords(ctx, node, []*rondav1.Record{registration(1)})
	if !errors.Is(err, store.ErrNoLeader) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Apply without quorum: %v", err)
	}
	t.Logf("error reads: %v", err)
	if err := st.LeaderWait(ctx); !errors.Is(err, store.ErrNoLeader) {
		t.Fatalf("LeaderWait: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := st.ApplyNodeRecords(t.Context(), node, []*rondav1.Record{registration(1)}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Apply after Close: %v", err)
	}
	if _, ok := st.Node(node); ok {
		t.Fatal("read after Close found data")
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	addr := freeAddr(t)
	for name, cfg := range map[string]store.Config{
		"no id":            {RaftAddr: addr, DataDir: t.TempDir()},
		"self not in peer": {ID: "a", RaftAddr: addr, DataDir: t.TempDir(), Peers: []store.Peer{{ID: "b", RaftAddr: "127.0.0.1:1"}}},
		"address mismatch": {ID: "a", RaftAddr: addr, DataDir: t.TempDir(), Peers: []store.Peer{{ID: "a", RaftAddr: "127.0.0.1:1"}}},
		"unspecified host": {ID: "a", RaftAddr: "0.0.0.0:0", DataDir: t.TempDir()},
	} {
		if _, err := store.Open(cfg); !errors.Is(err, store.ErrConfig) {
			t.Errorf("%s: Open = %v, want ErrConfig", name, err)
		}
	}
}
