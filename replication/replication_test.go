package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/certs"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
)

type fakeHub struct {
	mu         sync.Mutex
	applied    map[string]uint64
	records    map[string][]*rondav1.Record
	maxBatch   int
	pushes     int
	members    []string
	directives []*rondav1.Directive
}

func (f *fakeHub) MemberID() string  { return "h1" }
func (f *fakeHub) Members() []string { return f.members }
func (f *fakeHub) AckedSeq(n string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied[n]
}
func (f *fakeHub) AuditSeq(n string) uint64 { return 0 }

func (f *fakeHub) Directives(n string, after uint64) []*rondav1.Directive {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*rondav1.Directive
	for _, d := range f.directives {
		if d.Seq > after {
			out = append(out, d)
		}
	}
	return out
}

func (f *fakeHub) Push(_ context.Context, n string, recs []*rondav1.Record) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pushes++
	f.maxBatch = max(f.maxBatch, len(recs))
	for _, r := range recs {
		if r.Seq > f.applied[n] {
			f.records[n] = append(f.records[n], r)
			f.applied[n] = r.Seq
		}
	}
	return f.applied[n], nil
}

type fakeControl struct {
	rpcv1.UnimplementedNodeControlServer
}

func (fakeControl) Recordings(_ context.Context, r *rondav1.RecordingsRequest) (*rondav1.RecordingsResponse, error) {
	return &rondav1.RecordingsResponse{Spans: []*rondav1.Span{{CameraId: r.CameraId, StartUnixNano: 1, EndUnixNano: 2}}}, nil
}

func (fakeControl) Playback(r *rondav1.PlaybackRequest, s grpc.ServerStreamingServer[rondav1.PlaybackChunk]) error {
	for i := 0; i < 3; i++ {
		if err := s.Send(&rondav1.PlaybackChunk{Data: []byte{byte(i)}}); err != nil {
			return err
		}
	}
	return nil
}

func issue(t *testing.T, ca *certs.CA, dir string, id certs.Identity) *certs.Bundle {
	t.Helper()
	if err := ca.Issue(dir, certs.IssueOptions{Identity: id}); err != nil {
		t.Fatal(err)
	}
	b, err := certs.LoadBundle(filepath.Join(dir, certs.CertFile), filepath.Join(dir, certs.KeyFile), filepath.Join(dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testPKI is a city CA in a test's temp dir.
type testPKI struct {
	t   *testing.T
	dir string
	ca  *certs.CA
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	if err := certs.InitCA(filepath.Join(dir, "ca"), "jakarta"); err != nil {
		t.Fatal(err)
	}
	ca, err := certs.LoadCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{t: t, dir: dir, ca: ca}
}

func (p *testPKI) hub(name string) *certs.Bundle {
	return issue(p.t, p.ca, filepath.Join(p.dir, name), certs.Identity{Kind: certs.KindHub, Member: name})
}

func (p *testPKI) node(id, kelurahan string) *certs.Bundle {
	return issue(p.t, p.ca, filepath.Join(p.dir, id), certs.Identity{Kind: certs.KindNode, Kelurahan: kelurahan, NodeID: id})
}

// serveHub serves a member's node-facing gRPC (mutual TLS, relay handler)
// on loopback with end behind it; start begins serving (connections queue
// until then), and the server stops with the test.
func (p *testPKI) serveHub(name string, end HubEnd) (hs *HubServer, addr string, start func()) {
	b := p.hub(name)
	hs = NewHubServer(end, slogDiscard(), nil)
	g := grpc.NewServer(append(GRPCServerOptions(0), grpc.Creds(credentials.NewTLS(b.ServerTLS(certs.KindNode, certs.KindHub))),
		grpc.UnknownServiceHandler(hs.RelayHandler()))...)
	hs.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(g.Stop)
	return hs, lis.Addr().String(), func() { go g.Serve(lis) }
}

func newFakeHub() *fakeHub {
	return &fakeHub{applied: map[string]uint64{}, records: map[string][]*rondav1.Record{}}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNodeHubRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if err := certs.InitCA(filepath.Join(dir, "ca"), "jakarta"); err != nil {
		t.Fatal(err)
	}
	ca, _ := certs.LoadCA(filepath.Join(dir, "ca"))
	hubB := issue(t, ca, filepath.Join(dir, "h1"), certs.Identity{Kind: certs.KindHub, Member: "h1"})
	nodeB := issue(t, ca, filepath.Join(dir, "n1"), certs.Identity{Kind: certs.KindNode, Kelurahan: "31.71.01.1001", NodeID: "n1"})
	impostor := issue(t, ca, filepath.Join(dir, "n2"), certs.Identity{Kind: certs.KindNode, Kelurahan: "31.71.01.1002", NodeID: "n2"})

	hub := &fakeHub{applied: map[string]uint64{}, records: map[string][]*rondav1.Record{}}
	hs := NewHubServer(hub, slogDiscard(), nil)
	g := grpc.NewServer(append(GRPCServerOptions(0), grpc.Creds(credentials.NewTLS(hubB.ServerTLS(certs.KindNode, certs.KindHub))))...)
	hs.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	defer g.Stop()

	ob, err := OpenOutbox(filepath.Join(dir, "outbox"), slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	info := &rondav1.NodeInfo{NodeId: "n1", KelurahanCode: "31.71.01.1001"}
	if err := ob.Append(&rondav1.Record{Body: &rondav1.Record_Registration{Registration: info}},
		&rondav1.Record{Body: &rondav1.Record_Span{Span: &rondav1.Span{CameraId: "c1", StartUnixNano: 1, EndUnixNano: 2}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	nc := NewNodeClient(NodeClientConfig{Members: []string{lis.Addr().String()}, TLS: nodeB.ClientTLS(certs.KindHub),
		Info: info, Control: fakeControl{}, Outbox: ob, Logger: slogDiscard(), PushInterval: 50 * time.Millisecond})
	done := make(chan struct{})
	go func() { nc.Run(ctx); close(done) }()

	waitFor(t, "records acknowledged", func() bool { _, a := ob.Stats(); return a == 2 })
	if got := len(hub.records["n1"]); got != 2 {
		t.Fatalf("hub applied %d records, want 2", got)
	}
	// The hub calls back into the node over the node's own connection.
	waitFor(t, "tunnel", func() bool { return hs.Link("n1").Connected })
	ctl, ok := hs.NodeControl("n1")
	if !ok {
		t.Fatal("no node control")
	}
	rr, err := ctl.Recordings(ctx, &rondav1.RecordingsRequest{CameraId: "c1"})
	if err != nil || len(rr.Spans) != 1 || rr.Spans[0].CameraId != "c1" {
		t.Fatalf("recordings over tunnel: %v %v", rr, err)
	}
	st, err := ctl.Playback(ctx, &rondav1.PlaybackRequest{CameraId: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		ch, err := st.Recv()
		if err != nil {
			break
		}
		if int(ch.Data[0]) != n {
			t.Fatalf("chunk %d out of order", n)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("got %d playback chunks, want 3", n)
	}

	// An impostor's certificate says n2; claiming to be n1 is refused.
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(impostor.ClientTLS(certs.KindHub))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := rpcv1.NewReplicationClient(conn).Push(ctx, &rondav1.PushRequest{NodeId: "n1", Records: []*rondav1.Record{{Seq: 3}}}); err == nil {
		t.Fatal("node n2 pushed records as n1")
	}
	// A node may not call the hub-peer service.
	if _, err := rpcv1.NewHubPeerClient(conn).Apply(ctx, &rondav1.ApplyRequest{}); err == nil {
		t.Fatal("a node called HubPeer.Apply")
	}

	cancel()
	<-done
	// The outbox is durable: sequence numbers continue after reopening.
	ob.Close()
	ob2, err := OpenOutbox(filepath.Join(dir, "outbox"), slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer ob2.Close()
	if last, acked := ob2.Stats(); last != 2 || acked != 2 {
		t.Fatalf("after reopen last=%d acked=%d, want 2/2", last, acked)
	}
	r := &rondav1.Record{}
	if err := ob2.Append(r); err != nil || r.Seq != 3 {
		t.Fatalf("append after reopen: seq %d err %v", r.Seq, err)
	}
}

// Tunnel opens within FlapWindow count as reconnects; the link remembers
// when it went down and the newest outbox seq the node reported.
func TestLinkFlappingAndDownSince(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	s := NewHubServer(&fakeHub{applied: map[string]uint64{}, records: map[string][]*rondav1.Record{}}, slogDiscard(), func() time.Time { return now })
	for i := range FlapOpens {
		s.tunnel("n1", +1)
		now = now.Add(time.Minute)
		if i < FlapOpens-1 {
			s.tunnel("n1", -1)
			now = now.Add(10 * time.Second)
		}
	}
	s.seen("n1", 42)
	l := s.Link("n1")
	if !l.Connected || !l.Flapping() || l.Reconnects != FlapOpens || l.LastSeq != 42 {
		t.Fatalf("link %+v", l)
	}
	s.tunnel("n1", -1)
	downAt := now
	now = now.Add(FlapWindow)
	l = s.Link("n1")
	if l.Connected || l.Flapping() || !l.DownSince.Equal(downAt) {
		t.Fatalf("link after it went down and the window passed: %+v", l)
	}
}

// A backlog drains in pushes of at most BatchSize records, paced to the
// byte rate cap, every record applied once and in order.
func TestBacklogDrainsInBatchesAtTheCappedRate(t *testing.T) {
	pki := newPKI(t)
	dir := pki.dir
	nodeB := pki.node("n1", "31.71.01.1001")
	hub := newFakeHub()
	_, addr, serve := pki.serveHub("h1", hub)
	serve()

	ob, err := OpenOutbox(filepath.Join(dir, "outbox"), slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	const records, batch, rate = 200, 20, 4000
	var bytes int
	for i := range records {
		r := &rondav1.Record{Body: &rondav1.Record_Span{Span: &rondav1.Span{CameraId: "3171011001-cam1", StartUnixNano: int64(i) * 1e9, EndUnixNano: int64(i+1) * 1e9}}}
		if err := ob.Append(r); err != nil {
			t.Fatal(err)
		}
		bytes += proto.Size(r)
	}
	info := &rondav1.NodeInfo{NodeId: "n1", KelurahanCode: "31.71.01.1001"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc := NewNodeClient(NodeClientConfig{Members: []string{addr}, TLS: nodeB.ClientTLS(certs.KindHub),
		Info: info, Control: fakeControl{}, Outbox: ob, Logger: slogDiscard(), PushInterval: 50 * time.Millisecond,
		BatchSize: batch, MaxBytesPerSecond: rate})
	start := time.Now()
	go nc.Run(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, a := ob.Stats(); a == records {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("backlog not drained in 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	hub.mu.Lock()
	defer hub.mu.Unlock()
	floor := time.Duration(float64(bytes) / rate * float64(time.Second) * 0.8)
	if took < floor || hub.maxBatch > batch || hub.pushes < records/batch {
		t.Fatalf("drained %d records (%d bytes) in %s with %d pushes of at most %d; want at least %s at %d B/s and at most %d per push",
			records, bytes, took, hub.pushes, hub.maxBatch, floor, rate, batch)
	}
	for i, r := range hub.records["n1"] {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d applied with seq %d", i, r.Seq)
		}
	}
	if len(hub.records["n1"]) != records {
		t.Fatalf("hub applied %d records, want %d", len(hub.records["n1"]), records)
	}
	t.Logf("%d records, %d bytes drained in %s (%d pushes), capped at %d B/s", records, bytes, took.Round(time.Millisecond), hub.pushes, rate)
}

// blockingHub applies nothing until released: a member whose Raft is slow.
type blockingHub struct {
	fakeHub
	release chan struct{}
}

func (b *blockingHub) Push(ctx context.Context, n string, recs []*rondav1.Record) (uint64, error) {
	<-b.release
	return b.fakeHub.Push(ctx, n, recs)
}

// A member with every push slot taken queues a push for up to 2 s, then
// sheds it with a retry-after (the node keeps its records), and applies it
// once a slot is free.
func TestBusyMemberShedsPushesWithRetryAfter(t *testing.T) {
	hub := &blockingHub{fakeHub: fakeHub{applied: map[string]uint64{}, records: map[string][]*rondav1.Record{}}, release: make(chan struct{})}
	s := NewHubServer(hub, slogDiscard(), nil)
	s.SetMaxInflightPushes(1)
	ctx := context.WithValue(context.Background(), identityKey{}, certs.Identity{Kind: certs.KindNode, Kelurahan: "31.71.01.1001", NodeID: "n1"})
	push := func(seq uint64) (*rondav1.PushResponse, error) {
		return s.Push(ctx, &rondav1.PushRequest{NodeId: "n1", Records: []*rondav1.Record{{Seq: seq, Body: &rondav1.Record_Span{Span: &rondav1.Span{CameraId: "3171011001-cam1"}}}}})
	}
	first := make(chan *rondav1.PushResponse)
	go func() { r, _ := push(1); first <- r }()
	waitFor(t, "the first push to take the only slot", func() bool { return len(s.inflight) == 1 })
	start := time.Now()
	r, err := push(2)
	if err != nil || r.RetryAfterMs < 250 || r.RetryAfterMs >= 1000 || r.AckedSeq != 0 {
		t.Fatalf("push while busy: %+v, %v; want acked 0 and a retry-after of 250..999 ms", r, err)
	}
	if waited := time.Since(start); waited < admitWait {
		t.Fatalf("shed after %s; a push queues %s first", waited, admitWait)
	}
	close(hub.release)
	if r := <-first; r.AckedSeq != 1 || r.RetryAfterMs != 0 {
		t.Fatalf("first push: %+v", r)
	}
	if r, err := push(2); err != nil || r.AckedSeq != 2 || r.RetryAfterMs != 0 {
		t.Fatalf("retried push: %+v, %v", r, err)
	}
}

type resyncRecorder struct {
	mu    sync.Mutex
	calls [][2]uint64
}

func (r *resyncRecorder) Resync(hubAcked, auditSeq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, [2]uint64{hubAcked, auditSeq})
}

// A member that answers Hello with less than the node knows the hub
// acknowledged (a hub restored from an older backup) makes the node re-send
// its history, once.
func TestNodeResendsHistoryToAHubBehindIt(t *testing.T) {
	pki := newPKI(t)
	dir := pki.dir
	nodeB := pki.node("n1", "31.71.01.1001")
	current := newFakeHub()
	restored := newFakeHub()
	restored.applied["n1"] = 2
	_, addrA, startA := pki.serveHub("h1", current)
	_, addrB, startB := pki.serveHub("h2", restored) // accepts connections, answers nothing yet
	startA()

	ob, err := OpenOutbox(filepath.Join(dir, "outbox"), slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	for i := range 5 {
		if err := ob.Append(&rondav1.Record{Body: &rondav1.Record_Span{Span: &rondav1.Span{CameraId: "3171011001-cam1", StartUnixNano: int64(i) * 1e9, EndUnixNano: int64(i+1) * 1e9}}}); err != nil {
			t.Fatal(err)
		}
	}
	rs := &resyncRecorder{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc := NewNodeClient(NodeClientConfig{Members: []string{addrA, addrB}, TLS: nodeB.ClientTLS(certs.KindHub),
		Info: &rondav1.NodeInfo{NodeId: "n1", KelurahanCode: "31.71.01.1001"}, Control: fakeControl{}, Outbox: ob, Logger: slogDiscard(),
		PushInterval: 50 * time.Millisecond, Resync: rs, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	go nc.Run(ctx)
	waitFor(t, "the hub to acknowledge all 5 records", func() bool { _, a := ob.Stats(); return a == 5 })
	rs.mu.Lock()
	if len(rs.calls) != 0 {
		t.Fatalf("re-sent history to an up-to-date hub: %v", rs.calls)
	}
	rs.mu.Unlock()
	startB() // the member restored from an older backup: it has only up to 2
	waitFor(t, "the node to notice the hub is behind", func() bool { rs.mu.Lock(); defer rs.mu.Unlock(); return len(rs.calls) > 0 })
	time.Sleep(500 * time.Millisecond) // reconnects to either member do not repeat it
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.calls) != 1 || rs.calls[0] != [2]uint64{2, 0} {
		t.Fatalf("resync calls %v, want one with the hub's acked 2", rs.calls)
	}
}

// Another member reaches a node through this member's tunnel: unary and
// streaming NodeControl calls are relayed message by message, errors come
// back as the node gave them; only hub members may relay, and a node this
// member has no tunnel to is Unavailable.
func TestMemberRelaysNodeControlCallsOverItsTunnel(t *testing.T) {
	pki := newPKI(t)
	dir := pki.dir
	h2 := pki.hub("h2")
	nodeB := pki.node("n1", "31.71.01.1001")
	hs, addr, start := pki.serveHub("h1", newFakeHub())
	start()
	ob, err := OpenOutbox(filepath.Join(dir, "outbox"), slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc := NewNodeClient(NodeClientConfig{Members: []string{addr}, TLS: nodeB.ClientTLS(certs.KindHub),
		Info: &rondav1.NodeInfo{NodeId: "n1", KelurahanCode: "31.71.01.1001"}, Control: fakeControl{}, Outbox: ob, Logger: slogDiscard()})
	go nc.Run(ctx)
	waitFor(t, "n1's tunnel to h1", func() bool { return hs.Link("n1").Connected })

	dial := func(b *certs.Bundle) *grpc.ClientConn {
		tlsc := b.ClientTLS(certs.KindHub)
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsc)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	member := dial(h2)
	ctl := rpcv1.NewNodeControlClient(RelayConn(member, "n1"))
	rec, err := ctl.Recordings(ctx, &rondav1.RecordingsRequest{CameraId: "3171011001-cam1"})
	if err != nil || len(rec.Spans) != 1 || rec.Spans[0].CameraId != "3171011001-cam1" {
		t.Fatalf("relayed Recordings: %v, %v", rec, err)
	}
	stream, err := ctl.Playback(ctx, &rondav1.PlaybackRequest{CameraId: "3171011001-cam1"})
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for {
		c, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("relayed Playback: %v", err)
		}
		got = append(got, c.Data...)
	}
	if string(got) != "\x00\x01\x02" {
		t.Fatalf("relayed Playback chunks %v, want 0 1 2", got)
	}
	// The node's own error comes back as it gave it.
	if _, err := ctl.Whep(ctx, &rondav1.WhepRequest{CameraId: "x"}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("relayed Whep the fake node does not implement: %v, want Unimplemented from the node", err)
	}
	// A node this member has no tunnel to.
	if _, err := rpcv1.NewNodeControlClient(RelayConn(member, "n9")).Recordings(ctx, &rondav1.RecordingsRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("relay to an unconnected node: %v, want Unavailable", err)
	}
	// A node certificate may not use the relay (nor reach another node).
	asNode, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(nodeB.ClientTLS(certs.KindHub))))
	if err != nil {
		t.Fatal(err)
	}
	defer asNode.Close()
	if _, err := rpcv1.NewNodeControlClient(RelayConn(asNode, "n1")).Recordings(ctx, &rondav1.RecordingsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("relay by a node certificate: %v, want PermissionDenied", err)
	}
}

// A node dials the members the hub names in its answer to Hello (a member
// joined later), unless its members are fixed.
func TestNodeDialsMembersTheHubAnnounces(t *testing.T) {
	for _, learn := range []bool{true, false} {
		pki := newPKI(t)
		dir := pki.dir
		nodeB := pki.node("n1", "31.71.01.1001")
		joined, joinedAddr, startJoined := pki.serveHub("h4", newFakeHub())
		firstEnd := newFakeHub()
		first, firstAddr, startFirst := pki.serveHub("h1", firstEnd)
		firstEnd.members = []string{firstAddr, joinedAddr}
		startJoined()
		startFirst()
		ob, err := OpenOutbox(filepath.Join(dir, "outbox"), slogDiscard())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		nc := NewNodeClient(NodeClientConfig{Members: []string{firstAddr}, TLS: nodeB.ClientTLS(certs.KindHub), LearnMembers: learn,
			Info: &rondav1.NodeInfo{NodeId: "n1", KelurahanCode: "31.71.01.1001"}, Control: fakeControl{}, Outbox: ob, Logger: slogDiscard()})
		done := make(chan struct{})
		go func() { nc.Run(ctx); close(done) }()
		waitFor(t, "n1 linked to h1", func() bool { return first.Link("n1").Connected })
		if learn {
			waitFor(t, "n1 linked to h4, which only h1 named", func() bool { return joined.Link("n1").Connected })
		} else {
			time.Sleep(500 * time.Millisecond)
			if joined.Link("n1").Connected || len(nc.Status()) != 1 {
				t.Fatalf("a node with fixed members dialled %v", nc.Status())
			}
		}
		cancel()
		<-done
		ob.Close()
	}
}

type directiveRecorder struct {
	mu      sync.Mutex
	applied []uint64
}

func (d *directiveRecorder) ApplyDirective(x *rondav1.Directive) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applied = append(d.applied, x.Seq)
	if x.GetRelease() != nil {
		return errors.New("no such hold here")
	}
	return nil
}

// Directives waiting at the hub reach the node in the answer to Hello, a
// later one in the answer to a heartbeat (a push without records); each is
// applied once, in order, and its outcome goes back to the hub as a record,
// also across a restart of the node.
func TestDirectivesReachTheNodeOnceWithTheirOutcome(t *testing.T) {
	pki := newPKI(t)
	dir := pki.dir
	nodeB := pki.node("n1", "31.71.01.1001")
	hold := func(seq uint64) *rondav1.Directive {
		return &rondav1.Directive{Seq: seq, Body: &rondav1.Directive_Hold{Hold: &rondav1.HoldInfo{HoldId: fmt.Sprintf("hub-%d", seq), CameraId: "3171011001-cam1"}}}
	}
	hub := newFakeHub()
	hub.directives = []*rondav1.Directive{hold(1), hold(2)}
	hs, addr, start := pki.serveHub("h1", hub)
	start()
	run := func(rec *directiveRecorder, until func() bool) {
		ob, err := OpenOutbox(filepath.Join(dir, "outbox"), slogDiscard())
		if err != nil {
			t.Fatal(err)
		}
		defer ob.Close()
		ctx, cancel := context.WithCancel(context.Background())
		nc := NewNodeClient(NodeClientConfig{Members: []string{addr}, TLS: nodeB.ClientTLS(certs.KindHub), Directives: rec,
			Info: &rondav1.NodeInfo{NodeId: "n1", KelurahanCode: "31.71.01.1001"}, Control: fakeControl{}, Outbox: ob, Logger: slogDiscard(),
			PushInterval: 100 * time.Millisecond})
		done := make(chan struct{})
		go func() { nc.Run(ctx); close(done) }()
		waitFor(t, "the node to apply the directives and report them", until)
		cancel()
		<-done
	}
	results := func() []string {
		hub.mu.Lock()
		defer hub.mu.Unlock()
		var out []string
		for _, r := range hub.records["n1"] {
			if dr := r.GetDirectiveResult(); dr != nil {
				out = append(out, fmt.Sprintf("%d:%s", dr.Seq, dr.Error))
			}
		}
		return out
	}
	first := &directiveRecorder{}
	run(first, func() bool {
		if len(results()) == 2 {
			// A release arrives while the node is connected: the next
			// heartbeat brings it.
			hub.mu.Lock()
			if len(hub.directives) == 2 {
				hub.directives = append(hub.directives, &rondav1.Directive{Seq: 3, Body: &rondav1.Directive_Release{Release: &rondav1.HoldRelease{HoldId: "hub-1"}}})
			}
			hub.mu.Unlock()
		}
		return len(results()) == 3
	})
	if got := results(); !slices.Equal(got, []string{"1:", "2:", "3:no such hold here"}) {
		t.Fatalf("outcomes at the hub %v", got)
	}
	// Restarted, the node is handed the same directives again (say the hub
	// had not committed its results yet): none is applied twice.
	again := &directiveRecorder{}
	restart := time.Now()
	run(again, func() bool { l := hs.Link("n1"); return l.Connected && l.Since.After(restart) }) // past Hello
	time.Sleep(300 * time.Millisecond)
	if !slices.Equal(first.applied, []uint64{1, 2, 3}) || len(again.applied) != 0 {
		t.Fatalf("applied %v, then after a restart %v; want 1 2 3 once", first.applied, again.applied)
	}
}

func TestPlaybackInfoMDRoundTrip(t *testing.T) {
	from := time.Date(2026, 11, 23, 7, 0, 0, 123456789, time.UTC)
	in := api.PlaybackInfo{From: from, To: from.Add(5 * time.Minute), KeyframeFrom: from.Add(-1500 * time.Millisecond), Gaps: 2, Truncated: "range capped"}
	out, ok := PlaybackInfoFromMD(PlaybackInfoMD(in))
	if !ok || !out.From.Equal(in.From) || !out.To.Equal(in.To) || !out.KeyframeFrom.Equal(in.KeyframeFrom) || out.Gaps != 2 || out.Truncated != in.Truncated {
		t.Fatalf("round trip: %+v -> %+v (%v)", in, out, ok)
	}
	if _, ok := PlaybackInfoFromMD(nil); ok {
		t.Fatal("a stream without the header must say so")
	}
}
