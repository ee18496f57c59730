package pull

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/evidence"
	"github.com/ronda-jakarta/ronda/internal/faultproxy"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
)

// fakeNode serves NodeControl's MakeExport and ReadExport over gRPC on
// 127.0.0.1: every export is the same real file on disk, with a manifest
// naming it. Faults are switched on per test.
type fakeNode struct {
	rpcv1.UnimplementedNodeControlServer
	id, camera string
	file       string
	size       int64
	sha        string

	mu        sync.Mutex
	exports   map[string]*rondav1.ExportMeta // by case\x00item
	byID      map[string]*rondav1.ExportMeta
	makes     []string // item ids, in MakeExport order
	reads     []int64  // ReadExport offsets, in order
	sent      int64    // file bytes sent, all streams
	active    int      // calls in progress
	maxActive int

	corruptOnce bool          // flip a byte of the next stream's first chunk
	breakAt     int64         // once: after this many bytes of a stream, onBreak() and end the stream
	onBreak     func()        // (with breakAt) break the link
	blockAt     int64         // once: after this many bytes of a stream, wait until the caller leaves
	gate        chan struct{} // if set, ReadExport waits for it to close (or the caller to leave)
	reading     chan string   // if set, told each ReadExport's export id
}

func newFakeNode(t testing.TB, id string, size int64) (*fakeNode, string) {
	t.Helper()
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(size), 7))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	file := filepath.Join(t.TempDir(), "export.mp4")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	f := &fakeNode{id: id, camera: "3171011001-cam1", file: file, size: size, sha: hex.EncodeToString(sum[:]),
		exports: map[string]*rondav1.ExportMeta{}, byID: map[string]*rondav1.ExportMeta{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	rpcv1.RegisterNodeControlServer(s, f)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return f, lis.Addr().String()
}

func (f *fakeNode) enter() {
	f.mu.Lock()
	f.active++
	f.maxActive = max(f.maxActive, f.active)
	f.mu.Unlock()
}

func (f *fakeNode) leave() {
	f.mu.Lock()
	f.active--
	f.mu.Unlock()
}

func (f *fakeNode) MakeExport(ctx context.Context, req *rondav1.MakeExportRequest) (*rondav1.ExportMeta, error) {
	f.enter()
	defer f.leave()
	f.mu.Lock()
	defer f.mu.Unlock()
	k := req.CaseId + "\x00" + req.ItemId
	if m, ok := f.exports[k]; ok {
		return m, nil
	}
	if req.CameraId != f.camera {
		return nil, status.Errorf(codes.NotFound, "no camera %q on this node", req.CameraId)
	}
	id := fmt.Sprintf("20261122T10000%d-%08x", len(f.exports)%10, len(f.exports))
	man, _ := json.MarshalIndent(evidence.Manifest{Version: evidence.Version, ID: id, Camera: req.CameraId, NodeID: f.id,
		File: id + ".mp4", Bytes: f.size, SHA256: f.sha, RequestedBy: "hub:" + req.User, Reason: req.Reason}, "", "  ")
	m := &rondav1.ExportMeta{ExportId: id, CameraId: req.CameraId, FromUnixNano: req.FromUnixNano, ToUnixNano: req.ToUnixNano,
		Bytes: f.size, Sha256: f.sha, Manifest: append(man, '\n')}
	f.exports[k], f.byID[id] = m, m
	f.makes = append(f.makes, req.ItemId)
	return m, nil
}

func (f *fakeNode) ReadExport(req *rondav1.ReadExportRequest, s grpc.ServerStreamingServer[rondav1.ExportChunk]) error {
	f.enter()
	defer f.leave()
	f.mu.Lock()
	_, ok := f.byID[req.ExportId]
	f.reads = append(f.reads, req.Offset)
	gate, reading := f.gate, f.reading
	corrupt := f.corruptOnce
	f.corruptOnce = false
	breakAt, onBreak, blockAt := f.breakAt, f.onBreak, f.blockAt
	f.breakAt, f.blockAt = 0, 0
	f.mu.Unlock()
	if !ok {
		return status.Errorf(codes.NotFound, "no export %q on this node", req.ExportId)
	}
	if req.Offset < 0 || req.Offset > f.size {
		return status.Errorf(codes.InvalidArgument, "offset %d outside %d bytes", req.Offset, f.size)
	}
	if reading != nil {
		reading <- req.ExportId
	}
	if gate != nil {
		select {
		case <-gate:
		case <-s.Context().Done():
			return s.Context().Err()
		}
	}
	file, err := os.Open(f.file)
	if err != nil {
		return err
	}
	defer file.Close()
	chunk := MaxChunk
	if req.MaxChunk > 0 {
		chunk = min(chunk, int(req.MaxChunk))
	}
	buf := make([]byte, chunk)
	off, streamed := req.Offset, int64(0)
	for off < f.size {
		n, err := file.ReadAt(buf[:min(int64(chunk), f.size-off)], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if corrupt {
			buf[n/2] ^= 0x01
		}
		err = s.Send(&rondav1.ExportChunk{Offset: off, Data: buf[:n]})
		if corrupt {
			buf[n/2] ^= 0x01
			corrupt = false
		}
		if err != nil {
			return err
		}
		off += int64(n)
		streamed += int64(n)
		f.mu.Lock()
		f.sent += int64(n)
		f.mu.Unlock()
		if breakAt > 0 && streamed >= breakAt {
			onBreak()
			return status.Error(codes.Unavailable, "the link broke")
		}
		if blockAt > 0 && streamed >= blockAt {
			<-s.Context().Done()
			return s.Context().Err()
		}
	}
	return nil
}

func (f *fakeNode) stats() (makes []string, reads []int64, sent int64, maxActive int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.makes), slices.Clone(f.reads), f.sent, f.maxActive
}

func (f *fakeNode) content(t testing.TB) []byte {
	b, err := os.ReadFile(f.file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dialer connects to fake nodes by id (one client connection each, as the
// hub has one tunnel per node).
type dialer struct {
	mu    sync.Mutex
	addrs map[string]string
	conns map[string]*grpc.ClientConn
}

func newDialer(t testing.TB, addrs map[string]string) *dialer {
	d := &dialer{addrs: addrs, conns: map[string]*grpc.ClientConn{}}
	t.Cleanup(func() {
		for _, c := range d.conns {
			c.Close()
		}
	})
	return d
}

func (d *dialer) dial(ctx context.Context, nodeID string) (rpcv1.NodeControlClient, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.conns[nodeID]; ok {
		return rpcv1.NewNodeControlClient(c), nil
	}
	addr, ok := d.addrs[nodeID]
	if !ok {
		return nil, fmt.Errorf("node %s is not connected", nodeID)
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	d.conns[nodeID] = c
	return rpcv1.NewNodeControlClient(c), nil
}

// dirSink takes verified files into a directory, named by their SHA-256.
type dirSink struct {
	dir  string
	mu   sync.Mutex
	puts []put
}

type put struct {
	job  Job
	meta *rondav1.ExportMeta
	file string
	sha  string
	size int64
}

func (s *dirSink) Put(ctx context.Context, path, sha string, size int64) error {
	job, meta, ok := ExportOf(ctx)
	if !ok {
		return errors.New("no export in the context")
	}
	dst := filepath.Join(s.dir, sha+"-"+job.ItemID)
	if err := os.Rename(path, dst); err != nil {
		return err
	}
	s.mu.Lock()
	s.puts = append(s.puts, put{job: job, meta: meta, file: dst, sha: sha, size: size})
	s.mu.Unlock()
	return nil
}

func (s *dirSink) all() []put {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.puts)
}

type event struct {
	job  Job
	prog api.PullProgress
}

type progressLog struct {
	mu     sync.Mutex
	events []event
}

func (l *progressLog) on(j Job, p api.PullProgress) {
	l.mu.Lock()
	l.events = append(l.events, event{j, p})
	l.mu.Unlock()
}

func (l *progressLog) of(caseID, itemID string) []api.PullProgress {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []api.PullProgress
	for _, e := range l.events {
		if e.job.CaseID == caseID && (itemID == "" || e.job.ItemID == itemID) {
			out = append(out, e.prog)
		}
	}
	return out
}

func (l *progressLog) last(caseID, itemID string) api.PullProgress {
	ev := l.of(caseID, itemID)
	if len(ev) == 0 {
		return api.PullProgress{}
	}
	return ev[len(ev)-1]
}

// states lists the distinct successive states.
func states(ev []api.PullProgress) []string {
	var out []string
	for _, e := range ev {
		if len(out) == 0 || out[len(out)-1] != e.State {
			out = append(out, e.State)
		}
	}
	return out
}

func waitFor(t testing.TB, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newPuller(t testing.TB, dir string, d *dialer, sink Sink, log *progressLog, mod func(*Options)) *Puller {
	t.Helper()
	o := Options{Dir: dir, RatePerNode: -1, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Member: "hub-1",
		Dial: d.dial, Sink: sink}
	if log != nil {
		o.OnProgress = log.on
	}
	if mod != nil {
		mod(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs p until the returned stop is called (also at cleanup).
func run(t testing.TB, p *Puller) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

var t0 = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

func testJob(caseID, itemID, node string, deadline time.Time) Job {
	return Job{CaseID: caseID, ItemID: itemID, NodeID: node, Camera: "3171011001-cam1", From: t0, To: t0.Add(10 * time.Minute),
		Deadline: deadline, Reason: "JAKI-2026-0042", User: "auditor"}
}

func stored(l *progressLog, caseID, itemID string) func() bool {
	return func() bool { return l.last(caseID, itemID).State == api.PullStored }
}

func dirFiles(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func checkStored(t *testing.T, fake *fakeNode, p put) {
	t.Helper()
	got, err := os.ReadFile(p.file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, fake.content(t)) || p.sha != fake.sha || p.size != fake.size {
		t.Fatalf("stored %d bytes sha %s; the node's export is %d bytes sha %s", len(got), p.sha, fake.size, fake.sha)
	}
}

// A whole pull: exported, pulled, verified and handed to the sink with
// the node's manifest; progress says so; nothing is left in Dir.
func TestPullVerifiedToSink(t *testing.T) {
	fake, addr := newFakeNode(t, "n1", 3<<20+123)
	dir := t.TempDir()
	sink := &dirSink{dir: t.TempDir()}
	log := &progressLog{}
	p := newPuller(t, dir, newDialer(t, map[string]string{"n1": addr}), sink, log, nil)
	j := testJob("C1", "I1", "n1", t0.Add(48*time.Hour))
	for range 2 { // idempotent per (case, item)
		if err := p.Submit(j); err != nil {
			t.Fatal(err)
		}
	}
	if p.Len() != 1 {
		t.Fatalf("%d jobs after submitting one twice", p.Len())
	}
	run(t, p)
	waitFor(t, "the item stored", stored(log, "C1", "I1"))

	puts := sink.all()
	if len(puts) != 1 {
		t.Fatalf("%d puts", len(puts))
	}
	checkStored(t, fake, puts[0])
	if puts[0].job != j || puts[0].meta.ExportId == "" || !bytes.Contains(puts[0].meta.Manifest, []byte(fake.sha)) {
		t.Fatalf("the sink was told job %+v export %+v", puts[0].job, puts[0].meta)
	}
	ev := log.of("C1", "I1")
	if got := states(ev); !slices.Equal(got, []string{api.PullExporting, api.PullPulling, api.PullStored}) {
		t.Fatalf("states %v", got)
	}
	last := ev[len(ev)-1]
	if last.Bytes != fake.size || last.Total != fake.size || last.SHA256 != fake.sha || last.Attempts != 1 || last.Member != "hub-1" ||
		last.ExportID != puts[0].meta.ExportId || last.Error != "" || last.Updated.IsZero() {
		t.Fatalf("final progress %+v", last)
	}
	makes, reads, sent, _ := fake.stats()
	if len(makes) != 1 || !slices.Equal(reads, []int64{0}) || sent != fake.size {
		t.Fatalf("node saw makes %v reads %v sent %d", makes, reads, sent)
	}
	if files := dirFiles(t, dir); len(files) != 0 {
		t.Fatalf("left in Dir: %v", files)
	}
	// Submitted again once stored: not pulled again.
	if err := p.Submit(j); err != nil || p.Len() != 0 {
		t.Fatalf("resubmitting a stored item: %v, %d jobs", err, p.Len())
	}
}

// The TCP link is cut halfway: the pull resumes from the partial's length,
// the node sends about the file once (not twice), and the SHA-256 holds.
func TestPullResumesAfterBrokenLink(t *testing.T) {
	const size = 4 << 20
	fake, addr := newFakeNode(t, "n1", size)
	proxy, err := faultproxy.New("127.0.0.1:0", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	fake.breakAt = size / 2
	fake.onBreak = func() {
		proxy.Set(faultproxy.State{Mode: faultproxy.Reset}) // every connection torn down
		proxy.Set(faultproxy.State{Mode: faultproxy.Pass})
	}
	sink := &dirSink{dir: t.TempDir()}
	log := &progressLog{}
	p := newPuller(t, t.TempDir(), newDialer(t, map[string]string{"n1": proxy.Addr()}), sink, log, nil)
	if err := p.Submit(testJob("C1", "I1", "n1", time.Time{})); err != nil {
		t.Fatal(err)
	}
	run(t, p)
	waitFor(t, "the item stored", stored(log, "C1", "I1"))

	puts := sink.all()
	if len(puts) != 1 {
		t.Fatalf("%d puts", len(puts))
	}
	checkStored(t, fake, puts[0])
	makes, reads, sent, _ := fake.stats()
	t.Logf("ReadExport offsets %v; %d bytes sent by the node for a %d-byte file", reads, sent, size)
	if len(makes) != 1 || len(reads) < 2 || reads[0] != 0 || reads[1] <= 0 || reads[1] > size/2 {
		t.Fatalf("makes %v, ReadExport offsets %v: want a resume from the partial's length", makes, reads)
	}
	// The second stream sent the tail from the resume offset only: what
	// the node sent beyond the file is what was in flight when the link broke.
	if lost := int64(size/2) - reads[1]; len(reads) != 2 || sent != size+lost || sent > size+size/2 {
		t.Fatalf("the node sent %d bytes for a %d-byte file (offsets %v)", sent, size, reads)
	}
	ev := log.of("C1", "I1")
	i := slices.IndexFunc(ev, func(p api.PullProgress) bool { return p.State == api.PullWaiting })
	if i < 0 || ev[i].Error == "" || ev[i].Bytes == 0 || !strings.Contains(ev[i].Error, "retrying in") {
		t.Fatalf("no waiting state with the link's error and the bytes kept: %+v", ev)
	}
	if last := ev[len(ev)-1]; last.Attempts < 2 || last.SHA256 != fake.sha {
		t.Fatalf("final progress %+v", last)
	}
}

// A new Puller on the same Dir resumes a half-done pull where its partial
// file ends, without a new export.
func TestPullResumesAfterRestart(t *testing.T) {
	const size = 4 << 20
	fake, addr := newFakeNode(t, "n1", size)
	fake.blockAt = size / 2
	dir := t.TempDir()
	d := newDialer(t, map[string]string{"n1": addr})
	j := testJob("C1", "I1", "n1", time.Time{})

	p1 := newPuller(t, dir, d, &dirSink{dir: t.TempDir()}, nil, nil)
	if err := p1.Submit(j); err != nil {
		t.Fatal(err)
	}
	stop := run(t, p1)
	part := filepath.Join(dir, fileName("C1", "I1")+".part")
	waitFor(t, "half the file in the partial", func() bool {
		st, err := os.Stat(part)
		return err == nil && st.Size() == size/2
	})
	stop()
	if _, err := os.Stat(filepath.Join(dir, fileName("C1", "I1")+".json")); err != nil {
		t.Fatalf("no metadata next to the partial: %v", err)
	}

	sink := &dirSink{dir: t.TempDir()}
	log := &progressLog{}
	p2 := newPuller(t, dir, d, sink, log, nil)
	if err := p2.Submit(j); err != nil {
		t.Fatal(err)
	}
	run(t, p2)
	waitFor(t, "the item stored", stored(log, "C1", "I1"))
	puts := sink.all()
	if len(puts) != 1 {
		t.Fatalf("%d puts", len(puts))
	}
	checkStored(t, fake, puts[0])
	makes, reads, sent, _ := fake.stats()
	if len(makes) != 1 || !slices.Equal(reads, []int64{0, size / 2}) || sent != size {
		t.Fatalf("makes %v, ReadExport offsets %v, %d bytes sent: want one export, a resume at %d, the file sent once", makes, reads, sent, size/2)
	}
	if got := states(log.of("C1", "I1")); !slices.Equal(got, []string{api.PullPulling, api.PullStored}) {
		t.Fatalf("states after the restart %v", got)
	}
}

// Earliest deadline first per node: jobs submitted while one is running
// go in deadline order (ties: submission order; no deadline last), one
// transfer at a time at the node.
func TestPullEarliestDeadlineFirst(t *testing.T) {
	fake, addr := newFakeNode(t, "n1", 64<<10)
	gate := make(chan struct{})
	fake.gate, fake.reading = gate, make(chan string, 16)
	log := &progressLog{}
	p := newPuller(t, t.TempDir(), newDialer(t, map[string]string{"n1": addr}), &dirSink{dir: t.TempDir()}, log, nil)
	now := time.Now()
	if err := p.Submit(testJob("C1", "X", "n1", now.Add(10*time.Hour))); err != nil {
		t.Fatal(err)
	}
	run(t, p)
	<-fake.reading // X is being pulled
	for _, s := range []struct {
		item     string
		deadline time.Time
	}{{"A", now.Add(3 * time.Hour)}, {"B", now.Add(time.Hour)}, {"C", now.Add(2 * time.Hour)}, {"D", now.Add(time.Hour)}, {"E", time.Time{}}} {
		if err := p.Submit(testJob("C1", s.item, "n1", s.deadline)); err != nil {
			t.Fatal(err)
		}
	}
	fake.mu.Lock()
	fake.gate, fake.reading = nil, nil
	fake.mu.Unlock()
	close(gate)
	for _, it := range []string{"X", "A", "B", "C", "D", "E"} {
		waitFor(t, it+" stored", stored(log, "C1", it))
	}
	makes, _, _, maxActive := fake.stats()
	if want := []string{"X", "B", "D", "C", "A", "E"}; !slices.Equal(makes, want) {
		t.Fatalf("exports made in order %v, want %v", makes, want)
	}
	if maxActive != 1 {
		t.Fatalf("%d calls at once at one node", maxActive)
	}
}

// A corrupted byte: the item fails naming the mismatch, the copy is
// discarded, and a clean retry from byte 0 stores it.
func TestPullSHAMismatchFailsThenRetries(t *testing.T) {
	fake, addr := newFakeNode(t, "n1", 1<<20+7)
	fake.corruptOnce = true
	sink := &dirSink{dir: t.TempDir()}
	log := &progressLog{}
	p := newPuller(t, t.TempDir(), newDialer(t, map[string]string{"n1": addr}), sink, log, nil)
	if err := p.Submit(testJob("C1", "I1", "n1", time.Time{})); err != nil {
		t.Fatal(err)
	}
	run(t, p)
	waitFor(t, "the item stored", stored(log, "C1", "I1"))
	ev := log.of("C1", "I1")
	i := slices.IndexFunc(ev, func(p api.PullProgress) bool { return p.State == api.PullFailed })
	if i < 0 {
		t.Fatalf("no failed state: %v", states(ev))
	}
	msg := ev[i].Error
	t.Logf("failed: %s", msg)
	if !strings.Contains(msg, "SHA-256 mismatch") || !strings.Contains(msg, fake.sha) || !strings.Contains(msg, "discarded") || ev[i].Bytes != 0 {
		t.Fatalf("failed progress %+v: want the mismatch named with the export's SHA-256", ev[i])
	}
	if got := states(ev); !slices.Equal(got, []string{api.PullExporting, api.PullPulling, api.PullFailed, api.PullPulling, api.PullStored}) {
		t.Fatalf("states %v", got)
	}
	checkStored(t, fake, sink.all()[0])
	makes, reads, _, _ := fake.stats()
	if len(makes) != 1 || !slices.Equal(reads, []int64{0, 0}) {
		t.Fatalf("makes %v, ReadExport offsets %v: want the same export pulled again from 0", makes, reads)
	}
	if last := ev[len(ev)-1]; last.Attempts != 2 || last.Error != "" {
		t.Fatalf("final progress %+v", last)
	}
}

// Cancel stops a case's running transfer and drops its queued items and
// partial files; another case goes on.
func TestPullCancel(t *testing.T) {
	fake1, addr1 := newFakeNode(t, "n1", 1<<20)
	fake1.gate, fake1.reading = make(chan struct{}), make(chan string, 16) // n1 never sends
	fake2, addr2 := newFakeNode(t, "n2", 1<<20)
	dir := t.TempDir()
	sink := &dirSink{dir: t.TempDir()}
	log := &progressLog{}
	p := newPuller(t, dir, newDialer(t, map[string]string{"n1": addr1, "n2": addr2}), sink, log, nil)
	for _, j := range []Job{testJob("X", "x1", "n1", t0), testJob("X", "x2", "n1", t0.Add(time.Hour)), testJob("Y", "y1", "n2", t0)} {
		if err := p.Submit(j); err != nil {
			t.Fatal(err)
		}
	}
	run(t, p)
	<-fake1.reading // x1 is being pulled
	if files := dirFiles(t, dir); len(files) == 0 {
		t.Fatal("no files for x1")
	}
	p.Cancel("X")
	seen := len(log.of("X", ""))
	waitFor(t, "y1 stored", stored(log, "Y", "y1"))
	waitFor(t, "x1's transfer stopped", func() bool { return p.Len() == 0 })
	if n := len(log.of("X", "")); n != seen {
		t.Fatalf("%d progress reports for case X after Cancel", n-seen)
	}
	puts := sink.all()
	if len(puts) != 1 || puts[0].job.CaseID != "Y" {
		t.Fatalf("stored %+v", puts)
	}
	checkStored(t, fake2, puts[0])
	if files := dirFiles(t, dir); len(files) != 0 {
		t.Fatalf("left in Dir after Cancel: %v", files)
	}
	if makes, _, _, _ := fake1.stats(); !slices.Equal(makes, []string{"x1"}) {
		t.Fatalf("n1 made exports for %v; x2 was cancelled before its turn", makes)
	}
}

func TestSubmitBounds(t *testing.T) {
	p := newPuller(t, t.TempDir(), newDialer(t, nil), &dirSink{dir: t.TempDir()}, nil, func(o *Options) { o.MaxQueue = 2 })
	for _, it := range []string{"a", "b", "a"} {
		if err := p.Submit(testJob("C1", it, "n1", time.Time{})); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Submit(testJob("C1", "c", "n1", time.Time{})); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("a third job with MaxQueue 2: %v", err)
	}
	bad := testJob("C1", "d", "n1", time.Time{})
	bad.To = bad.From
	if err := p.Submit(bad); err == nil {
		t.Fatal("an empty range was queued")
	}
}

// BenchmarkPullRate pulls 8 MiB from a node with RatePerNode 1 MB/s and
// uncapped, and reports the achieved bytes per second against the cap.
func BenchmarkPullRate(b *testing.B) {
	const size = 8 << 20
	for _, c := range []struct {
		name string
		rate float64
	}{{"cap=1MBps", 1_000_000}, {"uncapped", -1}} {
		b.Run(c.name, func(b *testing.B) {
			_, addr := newFakeNode(b, "n1", size)
			storedCh := make(chan struct{}, 1)
			sink := &dirSink{dir: b.TempDir()}
			p := newPuller(b, b.TempDir(), newDialer(b, map[string]string{"n1": addr}), sink, nil, func(o *Options) {
				o.RatePerNode = c.rate
				o.OnProgress = func(j Job, pr api.PullProgress) {
					if pr.State == api.PullStored {
						os.Remove(sink.all()[len(sink.all())-1].file)
						storedCh <- struct{}{}
					}
				}
			})
			run(b, p)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				if err := p.Submit(testJob("C1", fmt.Sprint(i), "n1", time.Time{})); err != nil {
					b.Fatal(err)
				}
				<-storedCh
			}
			el := time.Since(start)
			b.StopTimer()
			got := float64(b.N) * size / el.Seconds()
			b.ReportMetric(got, "B/s")
			if c.rate > 0 {
				b.ReportMetric(c.rate, "cap_B/s")
				b.ReportMetric(got/c.rate, "of_cap")
			}
		})
	}
}

// BenchmarkPullOverA10MbitLink: the node behind a WAN line of 10 Mbit/s
// (internal/faultproxy's rate cap, gRPC over TCP as in production). How
// close to the line does a pull run: with the puller uncapped (the line is
// the limit), and with the puller's own per-node cap at 8 Mbit/s (the
// default policy of leaving a kelurahan's link headroom).
func BenchmarkPullOverA10MbitLink(b *testing.B) {
	const size = 4 << 20
	const line = 10_000_000 // bit/s
	for _, c := range []struct {
		name string
		rate float64
	}{{"puller-uncapped", -1}, {"puller-cap=8Mbit", 1_000_000}} {
		b.Run(c.name, func(b *testing.B) {
			_, addr := newFakeNode(b, "n1", size)
			proxy, err := faultproxy.New("127.0.0.1:0", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer proxy.Close()
			proxy.Set(faultproxy.State{Mode: faultproxy.Pass, RateBitsPerSec: line})
			storedCh := make(chan struct{}, 1)
			sink := &dirSink{dir: b.TempDir()}
			p := newPuller(b, b.TempDir(), newDialer(b, map[string]string{"n1": proxy.Addr()}), sink, nil, func(o *Options) {
				o.RatePerNode = c.rate
				o.OnProgress = func(j Job, pr api.PullProgress) {
					if pr.State == api.PullStored {
						os.Remove(sink.all()[len(sink.all())-1].file)
						storedCh <- struct{}{}
					}
				}
			})
			run(b, p)
			b.SetBytes(size)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				if err := p.Submit(testJob("C1", fmt.Sprint(i), "n1", time.Time{})); err != nil {
					b.Fatal(err)
				}
				<-storedCh
			}
			el := time.Since(start)
			b.StopTimer()
			mbit := float64(b.N) * size * 8 / el.Seconds() / 1e6
			b.ReportMetric(mbit, "Mbit/s")
			b.ReportMetric(mbit*1e6/line, "of_line")
		})
	}
}
