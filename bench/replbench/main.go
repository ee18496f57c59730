// Command replbench is the replication scale test: 267 simulated kelurahan
// nodes with 110 cameras each against a 3-member hub on this machine.
//
// The hub members are real `ronda hub` processes (Raft between them over
// mutual TLS, the node-facing gRPC service, the HTTP API). Each simulated
// node is a real replication.NodeClient with its own node certificate and a
// real outbox (replication.OpenMemOutbox: the node's Pebble outbox, with its
// sequence numbers and coalescing, on an in-memory filesystem). There is no
// video: a node emits what a recording node sends the hub — registration and
// camera inventory, one coverage span per camera every 2 s (coalesced while
// the link is down), a segment manifest per camera every 5 minutes, and a gap
// event plus an inventory change when a camera drops or comes back.
//
// Phases:
//
//  1. warm-up: every node registers and streams;
//
//  2. steady state (-steady): lag from a record's append at the node to the
//     hub's acknowledgement of its Raft commit (p50/p99/max), hub CPU and
//     memory;
//
//  3. outage: every node's links are cut while it records -backlog of
//     footage (simulated time: its clock moves on by -backlog);
//
//  4. storm: all nodes reconnect at once and drain while still recording:
//     time until every node is fully synced, per-node time to its first
//     acknowledgement and to synced (no node starved), peak hub memory;
//
//  5. check: the hub lists every node with its acknowledged sequence equal
//     to the node's newest record.
//
//     go run ./bench/replbench -ronda bin/ronda
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ronda-jakarta/ronda/auth"
	bu "github.com/ronda-jakarta/ronda/bench/internal/benchutil"
	"github.com/ronda-jakarta/ronda/certs"
	"github.com/ronda-jakarta/ronda/demo"
	"github.com/ronda-jakarta/ronda/kelurahan"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
	"github.com/ronda-jakarta/ronda/replication"
)

const (
	flushEvery   = 2 * time.Second // a node moves coverage into its outbox this often
	segmentEvery = 5 * time.Minute // default segment length: one manifest per camera
)

func main() {
	bin := flag.String("ronda", "bin/ronda", "ronda binary (runs the hub members)")
	nNodes := flag.Int("nodes", 267, "simulated nodes (one per kelurahan, at most 267)")
	nCams := flag.Int("cameras", 110, "cameras per node")
	warm := flag.Duration("warmup", 20*time.Second, "streaming before measuring")
	steady := flag.Duration("steady", 60*time.Second, "steady-state measurement")
	backlog := flag.Duration("backlog", time.Hour, "recording each node queues while its links are down")
	stormMax := flag.Duration("storm-timeout", 10*time.Minute, "give up on the storm after this")
	batch := flag.Int("push-batch", 500, "records per push (hub.push_batch)")
	keep := flag.Bool("keep", false, "keep the working directory (hub logs) and print its path")
	inflight := flag.Int("max-inflight", 0, "hub node_max_inflight_pushes (0: the hub's default)")
	flag.StringVar(&profileDir, "profile", "", "save each member's heap profile (mid-storm and after it) and a CPU profile of the storm into this directory")
	flag.Parse()
	if *nNodes < 1 || *nNodes > len(kelurahan.All()) || *nCams < 1 {
		bu.Fatal("-nodes must be 1..%d and -cameras at least 1", len(kelurahan.All()))
	}
	dir, err := os.MkdirTemp("", "replbench-")
	bu.Check(err)
	defer func() {
		if !failed && !*keep {
			os.RemoveAll(dir)
		} else {
			fmt.Println("kept", dir)
		}
	}()
	fmt.Printf("replbench: %d nodes x %d cameras (%d cameras) against 3 hub members, %d cores, push batch %d\n",
		*nNodes, *nCams, *nNodes**nCams, bu.NumCPU(), *batch)

	h := startHub(dir, *bin, *inflight)
	defer h.stop()
	nodes := makeNodes(dir, h, *nNodes, *nCams)
	clientLog := slog.New(slog.NewTextHandler(must(os.Create(filepath.Join(dir, "nodes.log"))), &slog.HandlerOptions{Level: slog.LevelWarn}))

	// 1. Warm-up.
	live := &lagSink{}
	t0 := time.Now()
	for _, n := range nodes {
		bu.Check(n.ob.Append(&rondav1.Record{Body: &rondav1.Record_Registration{Registration: n.info}}))
		bu.Check(n.ob.Append(&rondav1.Record{Body: &rondav1.Record_Cameras{Cameras: n.inventory()}}))
		n.connect(clientLog, *batch)
		n.startRecording(live)
	}
	waitSynced(nodes, 5*time.Minute, "warm-up")
	fmt.Printf("warm-up: %d nodes registered %d cameras and synced in %.1f s\n", len(nodes), len(nodes)**nCams, time.Since(t0).Seconds())
	time.Sleep(max(0, *warm-time.Since(t0)))
	h.alive("warm-up")

	// 2. Steady state.
	cpu0 := h.cpu()
	simCPU0 := bu.CPUSeconds(os.Getpid())
	var records0 uint64
	for _, n := range nodes {
		l, _ := n.ob.Stats()
		records0 += l
	}
	live.reset(true)
	rss := h.sampleRSS()
	time.Sleep(*steady)
	lags := live.reset(false)
	h.alive("steady state")
	peakSteady := rss.stop()
	cpu1 := h.cpu()
	simCPU1 := bu.CPUSeconds(os.Getpid())
	var records1 uint64
	for _, n := range nodes {
		l, _ := n.ob.Stats()
		records1 += l
	}
	fmt.Printf("steady state (%s): %.0f records/s into the outboxes; lag append -> hub commit ack: %s over %d flushes (goal p99 < 2 s)\n",
		*steady, float64(records1-records0)/steady.Seconds(), pcts(lags), len(lags))
	fmt.Printf("  hub CPU (%% of one core): %s; hub RSS peak: %s; simulated nodes' process: %.0f%% CPU\n",
		h.cpuLine(cpu0, cpu1, *steady), peakSteady, 100*(simCPU1-simCPU0)/steady.Seconds())

	// 3. Outage: every link cut; each node records on by the backlog.
	for _, n := range nodes {
		n.stopRecording()
		n.disconnect()
	}
	t0 = time.Now()
	var queued []int
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan *simNode)
	for range bu.NumCPU() {
		wg.Go(func() {
			for n := range work {
				_, acked := n.ob.Stats()
				from := n.now()
				for t := from; t.Before(from.Add(*backlog)); t = t.Add(flushEvery) {
					n.record(t, t.Add(flushEvery), time.Time{})
				}
				n.offset.Add(int64(*backlog))
				last, _ := n.ob.Stats()
				mu.Lock()
				queued = append(queued, int(last-acked))
				mu.Unlock()
			}
		})
	}
	for _, n := range nodes {
		work <- n
	}
	close(work)
	wg.Wait()
	sort.Ints(queued)
	total := 0
	for _, q := range queued {
		total += q
	}
	fmt.Printf("outage: %s of recording queued per node: %d..%d records (p50 %d), %d in all (generated in %.1f s)\n",
		*backlog, queued[0], queued[len(queued)-1], queued[len(queued)/2], total, time.Since(t0).Seconds())

	// 4. Storm: everyone back at once, still recording.
	for _, pid := range h.pids() {
		if err := bu.ResetPeakRSS(pid); err != nil {
			fmt.Printf("  (cannot reset peak RSS: %v; the storm's peak is sampled only)\n", err)
		}
	}
	cpu0 = h.cpu()
	storm := &lagSink{}
	storm.reset(true)
	rss = h.sampleRSS()
	start := time.Now()
	for _, n := range nodes {
		n.ob.expect(start)
	}
	for _, n := range nodes {
		n.connect(clientLog, *batch)
	}
	for _, n := range nodes {
		n.startRecording(storm)
	}
	if profileDir != "" {
		go h.profile("profile?seconds=10", "cpu-storm")
		go func() { time.Sleep(8 * time.Second); h.profile("heap", "heap-storm") }()
	}
	synced := waitFor(nodes, *stormMax, "storm", func(_ int, n *simNode) bool { _, s := n.ob.storm(); return !s.IsZero() })
	took := time.Since(start)
	h.alive("storm")
	peak := rss.stop()
	cpu1 = h.cpu()
	stormLags := storm.reset(false)
	var firsts, syncs []time.Duration
	for _, n := range nodes {
		f, s := n.ob.storm()
		firsts = append(firsts, f.Sub(start))
		syncs = append(syncs, s.Sub(start))
	}
	fmt.Printf("storm: %d nodes reconnected at once, each with its backlog; every node fully synced after %.1f s (goal < 60 s)\n", len(nodes), took.Seconds())
	fmt.Printf("  per node, first acknowledgement: %s; fully synced: %s\n", pcts(firsts), pcts(syncs))
	fmt.Printf("  %.0f records/s drained; live flushes meanwhile, append -> commit ack: %s\n", float64(total)/took.Seconds(), pcts(stormLags))
	fmt.Printf("  hub CPU (%% of one core): %s; hub RSS peak: %s", h.cpuLine(cpu0, cpu1, took), peak)
	var hwm []string
	for i, pid := range h.pids() {
		hwm = append(hwm, fmt.Sprintf("%s %.0f MiB", h.names[i], bu.PeakRSS(pid)/(1<<20)))
	}
	fmt.Printf(" (VmHWM %v)\n", hwm)
	fmt.Printf("  pushes at the hub: %s\n", h.pushes())
	if !synced {
		bu.Fatal("storm: not every node synced within %s", *stormMax)
	}

	h.profile("heap", "heap-after")

	// 5. The hub's view equals every node's.
	for _, n := range nodes {
		n.stopRecording()
	}
	waitSynced(nodes, time.Minute, "final drain")
	h.check(nodes)
	for _, n := range nodes {
		n.disconnect()
	}
}

var (
	profileDir string
	failed     bool // keep the directory (logs) when the bench fails
)

// profile saves /debug/pprof/<what> of every member as <tag>-<member>.pb.gz.
func (h *hub) profile(what, tag string) {
	if profileDir == "" {
		return
	}
	bu.Check(os.MkdirAll(profileDir, 0o750))
	var wg sync.WaitGroup
	for i, a := range h.pprof {
		wg.Go(func() {
			resp, err := http.Get("http://" + a + "/debug/pprof/" + what)
			if err != nil {
				fmt.Printf("  profile %s of %s: %v\n", what, h.names[i], err)
				return
			}
			defer resp.Body.Close()
			f := must(os.Create(filepath.Join(profileDir, tag+"-"+h.names[i]+".pb.gz")))
			defer f.Close()
			_, _ = io.Copy(f, resp.Body)
		})
	}
	wg.Wait()
}

func must[T any](v T, err error) T {
	bu.Check(err)
	return v
}

// pcts formats p50/p99/max of ds.
func pcts(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	r := func(d time.Duration) string {
		if d < time.Second {
			return fmt.Sprintf("%d ms", d.Milliseconds())
		}
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("p50 %s, p99 %s, max %s", r(at(.5)), r(at(.99)), r(s[len(s)-1]))
}

// ---- hub ----

type hub struct {
	names  []string
	pprof  []string
	exited []chan struct{}
	dir    string
	grpc   []string
	urls   []string
	procs  []func()
	pidv   []int
	ca     *certs.CA
	caDir  string
	user   string
	pass   string
}

func (h *hub) pids() []int { return h.pidv }

func startHub(dir, bin string, inflight int) *hub {
	h := &hub{caDir: filepath.Join(dir, "ca"), dir: dir}
	bu.Check(certs.InitCA(h.caDir, "jakarta"))
	h.ca = must(certs.LoadCA(h.caDir))
	h.user, h.pass = "admin", hex.EncodeToString(randBytes(9))
	hash := must(auth.HashPassword(h.pass))
	secret := filepath.Join(dir, "hub-token-secret")
	bu.Check(os.WriteFile(secret, []byte(hex.EncodeToString(randBytes(24))), 0o600))
	var members []map[string]string
	type ports struct{ grpc, raft, http int }
	var ps []ports
	for i := 1; i <= 3; i++ {
		p := ports{bu.FreePort(), bu.FreePort(), bu.FreePort()}
		ps = append(ps, p)
		name := fmt.Sprintf("h%d", i)
		h.names = append(h.names, name)
		h.grpc = append(h.grpc, fmt.Sprintf("127.0.0.1:%d", p.grpc))
		h.urls = append(h.urls, fmt.Sprintf("https://127.0.0.1:%d", p.http))
		members = append(members, map[string]string{"id": name, "raft": fmt.Sprintf("127.0.0.1:%d", p.raft), "grpc": h.grpc[i-1]})
	}
	for i, name := range h.names {
		hd := filepath.Join(dir, name)
		bu.Check(h.ca.Issue(filepath.Join(hd, "tls"), certs.IssueOptions{Identity: certs.Identity{Kind: certs.KindHub, Member: name}}))
		cfg := map[string]any{
			"member_id": name, "data_dir": filepath.Join(hd, "data"),
			"grpc_listen": h.grpc[i], "raft_listen": members[i]["raft"],
			"http": map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", ps[i].http)},
			"tls": map[string]string{"cert": filepath.Join(hd, "tls", certs.CertFile), "key": filepath.Join(hd, "tls", certs.KeyFile),
				"ca": filepath.Join(h.caDir, certs.CAFile)},
			"members":                  members,
			"node_max_inflight_pushes": inflight,
			"auth":                     map[string]any{"token_secret_file": secret, "users": []auth.User{{Name: h.user, PasswordHash: hash, Role: "admin"}}},
		}
		raw := must(yaml.Marshal(cfg))
		bu.Check(os.WriteFile(filepath.Join(hd, "hub.yaml"), raw, 0o600))
		h.pprof = append(h.pprof, fmt.Sprintf("127.0.0.1:%d", bu.FreePort()))
		cmd := bu.Start(dir, name, bin, "hub", "--config", filepath.Join(hd, "hub.yaml"), "--pprof", h.pprof[i])
		h.pidv = append(h.pidv, cmd.Process.Pid)
		exited := make(chan struct{})
		h.exited = append(h.exited, exited)
		go func() { _ = cmd.Wait(); close(exited) }()
		h.procs = append(h.procs, func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
	}
	// Wait for a leader.
	deadline := time.Now().Add(60 * time.Second)
	for {
		c := h.client(0)
		if c != nil {
			if cl, err := c.Cluster(context.Background()); err == nil && cl["leader"] != nil && cl["leader"] != "" {
				break
			}
		}
		if time.Now().After(deadline) {
			bu.Fatal("hub: no leader within 60 s; see %s/h*.log", dir)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return h
}

// pushes sums ronda_replication_pushes_total by outcome over the members.
func (h *hub) pushes() string {
	sum := map[string]float64{}
	for i := range h.urls {
		c := h.client(i)
		if c == nil {
			return "(cannot log in for /metrics)"
		}
		var raw []byte
		if _, err := c.Do(context.Background(), "GET", "/metrics", nil, "", &raw); err != nil {
			return err.Error()
		}
		for _, l := range strings.Split(string(raw), "\n") {
			if rest, ok := strings.CutPrefix(l, `ronda_replication_pushes_total{outcome="`); ok {
				name, val, _ := strings.Cut(rest, `"} `)
				v, _ := strconv.ParseFloat(val, 64)
				sum[name] += v
			}
		}
	}
	return fmt.Sprintf("%.0f applied, %.0f shed with retry-after (busy), %.0f failed (retried), %.0f canceled by their node (the outage began mid-push)",
		sum["applied"], sum["shed"], sum["failed"], sum["canceled"])
}

// alive fails the bench if a member exited: every number assumes three.
func (h *hub) alive(phase string) {
	for i, e := range h.exited {
		select {
		case <-e:
			failed = true
			bu.Fatal("%s: hub member %s exited; see %s", phase, h.names[i], filepath.Join(h.dir, h.names[i]+".log"))
		default:
		}
	}
}

func (h *hub) client(i int) *demo.Client {
	c, err := demo.NewClient(h.urls[i], filepath.Join(h.caDir, certs.CAFile))
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Login(ctx, h.user, h.pass); err != nil {
		return nil
	}
	return c
}

func (h *hub) stop() {
	for _, p := range h.procs {
		p()
	}
}

func (h *hub) cpu() []float64 {
	out := make([]float64, len(h.pidv))
	for i, pid := range h.pidv {
		out[i] = bu.CPUSeconds(pid)
	}
	return out
}

func (h *hub) cpuLine(a, b []float64, d time.Duration) string {
	s, sum := "", 0.0
	for i := range a {
		pct := 100 * (b[i] - a[i]) / d.Seconds()
		sum += pct
		s += fmt.Sprintf("%s %.0f%%, ", h.names[i], pct)
	}
	return s + fmt.Sprintf("all %.0f%%", sum)
}

type rssSampler struct {
	stopc chan struct{}
	done  chan string
}

// sampleRSS samples the members' RSS every 200 ms until stop, which returns
// each member's peak and the peak of their sum.
func (h *hub) sampleRSS() *rssSampler {
	s := &rssSampler{stopc: make(chan struct{}), done: make(chan string)}
	go func() {
		peaks := make([]float64, len(h.pidv))
		peakSum := 0.0
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			sum := 0.0
			for i, pid := range h.pidv {
				r := bu.RSS(pid)
				peaks[i] = max(peaks[i], r)
				sum += r
			}
			peakSum = max(peakSum, sum)
			select {
			case <-s.stopc:
				out := ""
				for i, p := range peaks {
					out += fmt.Sprintf("%s %.0f MiB, ", h.names[i], p/(1<<20))
				}
				s.done <- out + fmt.Sprintf("all %.0f MiB", peakSum/(1<<20))
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) stop() string { close(s.stopc); return <-s.done }

// check asks the hub (a member's HTTP API) for every node's acknowledged
// sequence and compares it with the node's own outbox.
func (h *hub) check(nodes []*simNode) {
	c := h.client(0)
	if c == nil {
		bu.Fatal("check: cannot log in to %s", h.urls[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	listed, err := c.Nodes(ctx)
	bu.Check(err)
	byID := map[string]uint64{}
	for _, n := range listed {
		byID[n.NodeID] = n.AckedSeq
	}
	bad := 0
	for _, n := range nodes {
		last, _ := n.ob.Stats()
		if got, ok := byID[n.id]; !ok || got != last {
			if bad < 5 {
				fmt.Printf("  MISMATCH %s: node's newest record %d, hub's acked %d (listed %v)\n", n.id, last, got, ok)
			}
			bad++
		}
	}
	if bad > 0 {
		bu.Fatal("check: %d of %d nodes differ between the hub and the node", bad, len(nodes))
	}
	fmt.Printf("check: the hub lists all %d nodes, each with acked seq = the node's newest record\n", len(nodes))
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// ---- simulated nodes ----

type simNode struct {
	id   string
	info *rondav1.NodeInfo
	tls  *tls.Config
	hub  *hub
	ob   *outbox
	rng  *mrand.Rand

	cams    []*rondav1.Camera
	segNext []time.Time // per camera: when its current segment closes (node clock)
	segID   uint64
	last    time.Time    // node clock: coverage flushed up to here
	offset  atomic.Int64 // node clock = wall clock + offset (moves on during the outage)

	cancelClient, cancelRec context.CancelFunc
	clientDone, recDone     chan struct{}
}

type control struct {
	rpcv1.UnimplementedNodeControlServer
}

func makeNodes(dir string, h *hub, n, cams int) []*simNode {
	t0 := time.Now()
	out := make([]*simNode, 0, n)
	for i, k := range kelurahan.All()[:n] {
		id := fmt.Sprintf("n%03d", i+1)
		td := filepath.Join(dir, "nodes", id)
		bu.Check(h.ca.Issue(td, certs.IssueOptions{Identity: certs.Identity{Kind: certs.KindNode, Kelurahan: k.Code, NodeID: id}}))
		b := must(certs.LoadBundle(filepath.Join(td, certs.CertFile), filepath.Join(td, certs.KeyFile), filepath.Join(h.caDir, certs.CAFile)))
		ob := must(replication.OpenMemOutbox(slog.New(slog.NewTextHandler(io.Discard, nil))))
		sn := &simNode{id: id, info: &rondav1.NodeInfo{NodeId: id, KelurahanCode: k.Code, Version: "replbench"},
			tls: b.ClientTLS(certs.KindHub), hub: h, ob: &outbox{PebbleOutbox: ob}, rng: mrand.New(mrand.NewPCG(uint64(i), 7))}
		now := time.Now()
		for c := range cams {
			sn.cams = append(sn.cams, &rondav1.Camera{Id: fmt.Sprintf("%s-cam%03d", kelurahan.CompactCode(k.Code), c+1), Name: fmt.Sprintf("cam%03d", c+1),
				Codec: "H264", Width: 1920, Height: 1080, State: "streaming",
				Lat: k.Lat + 0.0009*float64(c%11), Lon: k.Lon + 0.0009*float64(c/11), Rt: fmt.Sprintf("%03d", c%12+1), Rw: fmt.Sprintf("%03d", c/12+1)})
			// Segments close at staggered moments, as cameras started at different times.
			sn.segNext = append(sn.segNext, now.Add(time.Duration(sn.rng.Int64N(int64(segmentEvery)))))
		}
		sn.last = now
		out = append(out, sn)
	}
	fmt.Printf("setup: %d node certificates and outboxes in %.1f s\n", n, time.Since(t0).Seconds())
	return out
}

func (n *simNode) now() time.Time { return time.Now().Add(time.Duration(n.offset.Load())) }

func (n *simNode) inventory() *rondav1.CameraInventory {
	inv := &rondav1.CameraInventory{}
	for _, c := range n.cams {
		inv.Cameras = append(inv.Cameras, cloneCamera(c))
	}
	return inv
}

func cloneCamera(c *rondav1.Camera) *rondav1.Camera {
	return &rondav1.Camera{Id: c.Id, Name: c.Name, Codec: c.Codec, Width: c.Width, Height: c.Height, State: c.State, Reason: c.Reason,
		Lat: c.Lat, Lon: c.Lon, Rt: c.Rt, Rw: c.Rw, Tags: c.Tags}
}

// record does what a node does at one coverage flush over [from,to) of its
// clock: a span per streaming camera (coalescing), the segment manifests
// that closed, and now and then a camera dropping or coming back (a gap
// event and an inventory change). With wall set the flush is timed until
// the hub acknowledges it.
func (n *simNode) record(from, to, wall time.Time) {
	recs := make([]*rondav1.Record, 0, len(n.cams))
	for _, c := range n.cams {
		if c.State == "streaming" {
			recs = append(recs, &rondav1.Record{Body: &rondav1.Record_Span{Span: &rondav1.Span{CameraId: c.Id, StartUnixNano: from.UnixNano(), EndUnixNano: to.UnixNano()}}})
		}
	}
	bu.Check(n.ob.AppendCoalescing(recs...))
	var seq uint64
	for _, r := range recs {
		seq = max(seq, r.Seq)
	}
	var more []*rondav1.Record
	for i, c := range n.cams {
		for !n.segNext[i].After(to) {
			start := n.segNext[i].Add(-segmentEvery)
			n.segID++
			sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d", c.Id, n.segID))
			if c.State == "streaming" {
				more = append(more, &rondav1.Record{Body: &rondav1.Record_Segment{Segment: &rondav1.SegmentManifest{CameraId: c.Id, SegmentId: n.segID,
					StartUnixNano: start.UnixNano(), EndUnixNano: n.segNext[i].UnixNano(), Bytes: 150 << 20, Sha256: sum[:]}}})
			}
			n.segNext[i] = n.segNext[i].Add(segmentEvery)
		}
	}
	// About one camera per node per 10 minutes drops, and comes back at the
	// next flush: a gap event, and an inventory change each time.
	if i := slices.IndexFunc(n.cams, func(c *rondav1.Camera) bool { return c.State != "streaming" }); i >= 0 {
		n.cams[i].State, n.cams[i].Reason = "streaming", ""
		more = append(more, &rondav1.Record{Body: &rondav1.Record_Cameras{Cameras: n.inventory()}})
	} else if n.rng.IntN(int(10*time.Minute/flushEvery)) == 0 {
		c := n.cams[n.rng.IntN(len(n.cams))]
		c.State, c.Reason = "connecting", "dial tcp: i/o timeout"
		more = append(more, &rondav1.Record{Body: &rondav1.Record_Gap{Gap: &rondav1.GapEvent{CameraId: c.Id, AtUnixNano: to.UnixNano(), Reason: "camera_unreachable", Detail: c.Reason}}},
			&rondav1.Record{Body: &rondav1.Record_Cameras{Cameras: n.inventory()}})
	}
	if len(more) > 0 {
		bu.Check(n.ob.Append(more...))
		seq = max(seq, more[len(more)-1].Seq)
	}
	n.last = to
	if !wall.IsZero() {
		n.ob.track(wall, seq)
	}
}

// connect starts the node's replication client (it dials every member).
func (n *simNode) connect(log *slog.Logger, batch int) {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancelClient, n.clientDone = cancel, make(chan struct{})
	c := replication.NewNodeClient(replication.NodeClientConfig{Members: n.hub.grpc, TLS: n.tls, Info: n.info,
		Control: control{}, Outbox: n.ob, Logger: log.With("node", n.id), BatchSize: batch})
	n.ob.setKick(c.Kick)
	go func() { defer close(n.clientDone); c.Run(ctx) }()
}

func (n *simNode) disconnect() {
	n.cancelClient()
	<-n.clientDone
	n.ob.setKick(nil)
}

// startRecording flushes coverage every 2 s (from a random phase: nodes are
// not in step) and kicks the client, as a node's inventory loop does.
func (n *simNode) startRecording(sink *lagSink) {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancelRec, n.recDone = cancel, make(chan struct{})
	n.ob.setSink(sink)
	go func() {
		defer close(n.recDone)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(n.rng.Int64N(int64(flushEvery)))):
		}
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			now := n.now()
			n.record(n.last, now, time.Now())
			n.ob.kickNow()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (n *simNode) stopRecording() {
	n.cancelRec()
	<-n.recDone
}

// waitSynced waits until the hub has acknowledged, for every node, each
// record the node had when the wait began (nodes go on recording meanwhile).
func waitSynced(nodes []*simNode, within time.Duration, what string) bool {
	targets := make([]uint64, len(nodes))
	for i, n := range nodes {
		targets[i], _ = n.ob.Stats()
	}
	return waitFor(nodes, within, what, func(i int, n *simNode) bool {
		_, acked := n.ob.Stats()
		return acked >= targets[i]
	})
}

func waitFor(nodes []*simNode, within time.Duration, what string, done func(int, *simNode) bool) bool {
	deadline := time.Now().Add(within)
	for {
		behind := 0
		for i, n := range nodes {
			if !done(i, n) {
				behind++
			}
		}
		if behind == 0 {
			return true
		}
		if time.Now().After(deadline) {
			fmt.Printf("%s: %d nodes still behind after %s\n", what, behind, within)
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- timing outbox ----

type lagSink struct {
	mu   sync.Mutex
	on   bool
	lags []time.Duration
}

func (s *lagSink) add(d time.Duration) {
	s.mu.Lock()
	if s.on {
		s.lags = append(s.lags, d)
	}
	s.mu.Unlock()
}

// reset switches recording on or off and returns what was recorded.
func (s *lagSink) reset(on bool) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.lags
	s.lags, s.on = nil, on
	return out
}

type flush struct {
	at  time.Time
	seq uint64 // the flush is committed once the hub acknowledged this seq
}

// outbox is the node's outbox, timing each flush from its append to the
// hub's acknowledgement, and a storm's first acknowledgement and sync.
type outbox struct {
	*replication.PebbleOutbox

	mu              sync.Mutex
	sink            *lagSink
	kick            func()
	flushes         []flush
	stormStart      time.Time
	stormAcked      uint64 // acked when the storm began
	stormTarget     uint64 // last seq when the storm began
	firstAck, synce time.Time
}

func (o *outbox) setKick(k func()) { o.mu.Lock(); o.kick = k; o.mu.Unlock() }

func (o *outbox) setSink(s *lagSink) { o.mu.Lock(); o.sink = s; o.mu.Unlock() }

func (o *outbox) kickNow() {
	o.mu.Lock()
	k := o.kick
	o.mu.Unlock()
	if k != nil {
		k()
	}
}

func (o *outbox) track(at time.Time, seq uint64) {
	o.mu.Lock()
	o.flushes = append(o.flushes, flush{at, seq})
	o.mu.Unlock()
}

// expect marks the start of the storm.
func (o *outbox) expect(start time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stormStart = start
	o.stormTarget, o.stormAcked = o.Stats()
	o.firstAck, o.synce = time.Time{}, time.Time{}
	o.flushes = nil
}

func (o *outbox) storm() (first, synced time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.firstAck, o.synce
}

// Ack implements replication.Outbox.
func (o *outbox) Ack(seq uint64) error {
	if err := o.PebbleOutbox.Ack(seq); err != nil {
		return err
	}
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	keep := o.flushes[:0]
	for _, f := range o.flushes {
		if f.seq <= seq {
			if o.sink != nil {
				o.sink.add(now.Sub(f.at))
			}
		} else {
			keep = append(keep, f)
		}
	}
	o.flushes = keep
	if !o.stormStart.IsZero() {
		if o.firstAck.IsZero() && seq > o.stormAcked {
			o.firstAck = now
		}
		if o.synce.IsZero() && seq >= o.stormTarget {
			o.synce = now
		}
	}
	return nil
}
