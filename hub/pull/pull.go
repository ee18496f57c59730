// Package pull fetches evidence exports from kelurahan nodes to the hub
// over each node's own connection (NodeControl MakeExport and ReadExport):
// chunked, resumable after a broken link or a restart, checked by SHA-256,
// bandwidth-capped per node, earliest deadline first. See DESIGN.md.
package pull

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/evidence"
	"github.com/ronda-jakarta/ronda/internal/fsutil"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
)

// Defaults and limits.
const (
	DefaultRatePerNode = 500_000 // bytes/s per node (4 Mbit/s)
	DefaultConcurrency = 4
	DefaultMaxQueue    = 100_000
	DefaultBackoff     = time.Second
	DefaultMaxBackoff  = 30 * time.Second
	// MaxChunk is the largest chunk asked of a node (the node's own limit).
	MaxChunk = 256 << 10
	// minChunk is the smallest chunk asked for under a low rate cap.
	minChunk = 16 << 10
	// progressEvery: OnProgress at most this often while bytes come.
	progressEvery = 500 * time.Millisecond
	// storedMemory: this many stored items are remembered, so submitting
	// one again (a caller's reconcile racing the "stored" report) does not
	// pull it again.
	storedMemory = 10_000
)

// ErrQueueFull is returned by Submit when Options.MaxQueue jobs are queued.
var ErrQueueFull = errors.New("pull: the queue is full")

// Job is one case item to pull: camera of node over [From, To).
type Job struct {
	CaseID, ItemID, NodeID, Camera string
	From, To                       time.Time
	// Deadline orders the queue (earliest first; zero: after every dated job).
	Deadline     time.Time
	Reason, User string
}

// Sink takes a verified file: the evidence store moves the file at path
// (its SHA-256 and size checked) into itself, and the puller forgets it.
// ExportOf(ctx) gives the job and the node's export metadata (its signed
// manifest) during Put.
type Sink interface {
	Put(ctx context.Context, path string, sha256hex string, size int64) error
}

type exportKey struct{}

type exportVal struct {
	job  Job
	meta *rondav1.ExportMeta
}

// ExportOf returns, inside Sink.Put, the job and the node's ExportMeta
// (export id, range, size, SHA-256 and the node-signed manifest bytes).
func ExportOf(ctx context.Context) (Job, *rondav1.ExportMeta, bool) {
	v, ok := ctx.Value(exportKey{}).(exportVal)
	return v.job, v.meta, ok
}

// Options configure a Puller.
type Options struct {
	// Dir holds partial files and their metadata (<name>.part, <name>.json).
	Dir string
	// RatePerNode caps the bytes per second read from one node (0: the
	// default 500,000 = 4 Mbit/s; negative: no cap).
	RatePerNode float64
	// Concurrency: transfers at once over all nodes (0: 4); one per node.
	Concurrency int
	// MaxQueue: jobs queued, running or backing off (0: 100,000).
	MaxQueue int
	// Backoff after a failure, doubling up to MaxBackoff (0: 1 s and 30 s).
	// A node's refusal (no such footage, unknown RPC) backs off 60 times
	// longer, up to 120 times MaxBackoff (1 min to 1 h by default).
	Backoff, MaxBackoff time.Duration
	// Member is this hub member's id, reported in PullProgress.Member.
	Member string
	// Dial returns a NodeControl client of a node (its tunnel, or a relay
	// through the member that has it); an error means unreachable.
	Dial func(ctx context.Context, nodeID string) (rpcv1.NodeControlClient, error)
	Sink Sink
	// OnProgress is called on every state change and at most every 500 ms
	// while bytes come, one call at a time per job, from the job's
	// transfer (not from Submit or Cancel; it may call them).
	OnProgress func(Job, api.PullProgress)
	Logger     *slog.Logger
	Now        func() time.Time
}

// Puller pulls case items' exports from nodes.
type Puller struct {
	o     Options
	chunk int // bytes asked per chunk (<= the token bucket's burst)

	mu       sync.Mutex
	jobs     map[string]*job // queued, backing off or running, by key
	nodes    map[string]*nodeState
	sleeping sleepQueue // jobs backing off after a failure of their own
	stored   map[string]string
	ring     []string // stored keys, oldest first (a ring of storedMemory)
	ringNext int
	seq      uint64
	running  int
	active   bool // Run is running

	wake chan struct{}
	bufs chan []byte // one rehash buffer per transfer slot
}

type job struct {
	Job
	key, name string
	seq       uint64
	qi, si    int // index in its node's queue / in sleeping; -1: not there

	// Under p.mu.
	failures  int // failures of its own (not the link's), for backoff
	notBefore time.Time
	running   bool
	canceled  bool
	cancel    context.CancelFunc

	// Touched by the job's transfer only (one at a time).
	prog        api.PullProgress
	meta        *rondav1.ExportMeta
	manifestSHA string
	h           hash.Hash // SHA-256 of the partial's first hashed bytes
	hashed      int64
}

type nodeState struct {
	id        string
	queue     jobQueue
	busy      bool
	notBefore time.Time // link backoff
	failures  int       // consecutive link failures
	lim       *rate.Limiter
}

// New makes a Puller; Run runs it.
func New(o Options) (*Puller, error) {
	switch {
	case o.Dir == "":
		return nil, errors.New("pull: Options.Dir is required")
	case o.Dial == nil:
		return nil, errors.New("pull: Options.Dial is required")
	case o.Sink == nil:
		return nil, errors.New("pull: Options.Sink is required")
	}
	if o.RatePerNode == 0 {
		o.RatePerNode = DefaultRatePerNode
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = DefaultMaxQueue
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	chunk := MaxChunk
	if o.RatePerNode > 0 && o.RatePerNode < MaxChunk {
		chunk = max(int(o.RatePerNode), minChunk) // a chunk is at most a second's worth
	}
	p := &Puller{o: o, chunk: chunk, jobs: map[string]*job{}, nodes: map[string]*nodeState{}, stored: map[string]string{},
		wake: make(chan struct{}, 1), bufs: make(chan []byte, o.Concurrency)}
	for range o.Concurrency {
		p.bufs <- nil // allocated on first use
	}
	return p, nil
}

func key(caseID, itemID string) string { return caseID + "\x00" + itemID }

// fileName names a job's files: a hash of the case, then of the item, so
// Cancel finds a case's files and the ids need not be safe file names.
func fileName(caseID, itemID string) string {
	c := sha256.Sum256([]byte(caseID))
	i := sha256.Sum256([]byte(key(caseID, itemID)))
	return hex.EncodeToString(c[:8]) + "-" + hex.EncodeToString(i[:12])
}

func (p *Puller) partPath(j *job) string { return filepath.Join(p.o.Dir, j.name+".part") }
func (p *Puller) metaPath(j *job) string { return filepath.Join(p.o.Dir, j.name+".json") }

// Submit queues a job; a job already queued, running or just stored (same
// CaseID and ItemID) is left as it is. A job whose partial file is in Dir
// (a restart) resumes from it.
func (p *Puller) Submit(j Job) error {
	switch {
	case j.CaseID == "" || j.ItemID == "":
		return errors.New("pull: a job needs a CaseID and an ItemID")
	case j.NodeID == "" || j.Camera == "":
		return fmt.Errorf("pull: case %s item %s needs a NodeID and a Camera", j.CaseID, j.ItemID)
	case !j.To.After(j.From):
		return fmt.Errorf("pull: case %s item %s: To must be after From", j.CaseID, j.ItemID)
	}
	k := key(j.CaseID, j.ItemID)
	p.mu.Lock()
	defer p.mu.Unlock()
	if ex, ok := p.jobs[k]; ok {
		if ex.canceled {
			return fmt.Errorf("pull: case %s item %s is being cancelled; submit it again when its transfer has stopped", j.CaseID, j.ItemID)
		}
		return nil
	}
	if _, ok := p.stored[k]; ok {
		return nil
	}
	if len(p.jobs) >= p.o.MaxQueue {
		return fmt.Errorf("%w: %d jobs (case %s item %s not queued)", ErrQueueFull, len(p.jobs), j.CaseID, j.ItemID)
	}
	p.seq++
	jb := &job{Job: j, key: k, name: fileName(j.CaseID, j.ItemID), seq: p.seq, qi: -1, si: -1,
		prog: api.PullProgress{State: api.PullWaiting}}
	p.jobs[k] = jb
	p.enqueue(jb)
	p.signal()
	return nil
}

// Cancel drops a case's jobs: queued ones at once, running ones as soon
// as their transfer stops; their partial files go. No progress is
// reported for them after it.
func (p *Puller) Cancel(caseID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, j := range p.jobs {
		if j.CaseID != caseID {
			continue
		}
		if j.running {
			j.canceled = true
			j.cancel()
			continue
		}
		if j.qi >= 0 {
			heap.Remove(&p.nodes[j.NodeID].queue, j.qi)
		}
		if j.si >= 0 {
			heap.Remove(&p.sleeping, j.si)
		}
		delete(p.jobs, k)
	}
	for k, c := range p.stored {
		if c == caseID {
			delete(p.stored, k)
		}
	}
	// Under the lock, so no job of the case starts meanwhile; a running
	// one's transfer removes its files again when it stops.
	prefix := fileName(caseID, "")[:16] + "-"
	files, _ := filepath.Glob(filepath.Join(p.o.Dir, prefix+"*"))
	for _, f := range files {
		os.Remove(f)
	}
	p.signal()
}

// Len is the number of jobs queued, backing off or running.
func (p *Puller) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.jobs)
}

func (p *Puller) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Puller) node(id string) *nodeState {
	n := p.nodes[id]
	if n == nil {
		burst := p.chunk
		lim := rate.NewLimiter(rate.Inf, burst)
		if p.o.RatePerNode > 0 {
			lim = rate.NewLimiter(rate.Limit(p.o.RatePerNode), burst)
		}
		n = &nodeState{id: id, lim: lim}
		p.nodes[id] = n
	}
	return n
}

func (p *Puller) enqueue(j *job) { heap.Push(&p.node(j.NodeID).queue, j) }

// before is the queue order: earliest deadline, then submission order.
func before(a, b *job) bool {
	az, bz := a.Deadline.IsZero(), b.Deadline.IsZero()
	if az != bz {
		return bz
	}
	if !az && !a.Deadline.Equal(b.Deadline) {
		return a.Deadline.Before(b.Deadline)
	}
	return a.seq < b.seq
}

// Run transfers jobs until ctx ends, then waits for its transfers to stop
// (their jobs stay queued, partial files kept) and returns nil.
func (p *Puller) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.active {
		p.mu.Unlock()
		return errors.New("pull: Run is already running")
	}
	p.active = true
	p.mu.Unlock()
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		p.mu.Lock()
		p.active = false
		p.mu.Unlock()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		starts, wait := p.schedule(ctx)
		for _, s := range starts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.transfer(ctx, s)
			}()
		}
		if wait >= 0 {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-timer.C:
		}
	}
}

type start struct {
	j   *job
	ctx context.Context
	lim *rate.Limiter
}

// schedule starts what may start: for each free slot, the earliest-deadline
// job of a node that is idle and not backing off. It returns how long until
// something may start (-1: nothing is waiting on time).
func (p *Puller) schedule(ctx context.Context) ([]start, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ctx.Err() != nil {
		return nil, -1
	}
	now := p.o.Now()
	for len(p.sleeping) > 0 && !p.sleeping[0].notBefore.After(now) {
		p.enqueue(heap.Pop(&p.sleeping).(*job))
	}
	var starts []start
	for p.running < p.o.Concurrency {
		var best *nodeState
		for _, n := range p.nodes {
			if n.busy || len(n.queue) == 0 || n.notBefore.After(now) {
				continue
			}
			if best == nil || before(n.queue[0], best.queue[0]) {
				best = n
			}
		}
		if best == nil {
			break
		}
		j := heap.Pop(&best.queue).(*job)
		best.busy = true
		p.running++
		j.running = true
		j.prog.Attempts++
		jctx, cancel := context.WithCancel(ctx)
		j.cancel = cancel
		starts = append(starts, start{j: j, ctx: jctx, lim: best.lim})
	}
	var next time.Time
	if len(p.sleeping) > 0 {
		next = p.sleeping[0].notBefore
	}
	for id, n := range p.nodes {
		if n.busy {
			continue
		}
		if len(n.queue) == 0 {
			if !n.notBefore.After(now) {
				delete(p.nodes, id) // idle: forget it (its bucket starts full again)
			}
			continue
		}
		if n.notBefore.After(now) && (next.IsZero() || n.notBefore.Before(next)) {
			next = n.notBefore
		}
	}
	if next.IsZero() {
		return starts, -1
	}
	return starts, max(next.Sub(now), 0)
}

// Outcomes of one attempt.
type outcomeKind int

const (
	outStored   outcomeKind = iota
	outLink                 // the node unreachable or the stream broken: back off the node, resume
	outFailed               // this job's own failure (a mismatch, a local error): back off the job
	outRejected             // the node refused (no footage, bad request, old version): back off long
)

type outcome struct {
	kind outcomeKind
	err  error
	// progressed: the node answered (an export made, bytes came), so the
	// link's backoff starts over.
	progressed bool
}

func (p *Puller) transfer(runCtx context.Context, s start) {
	j := s.j
	buf := <-p.bufs
	if buf == nil {
		buf = make([]byte, MaxChunk)
	}
	out := p.attempt(s.ctx, j, s.lim, buf)
	p.bufs <- buf

	p.mu.Lock()
	n := p.nodes[j.NodeID]
	stopped := j.canceled || runCtx.Err() != nil
	var delay time.Duration
	if !stopped {
		if out.progressed {
			n.failures = 0
		}
		now := p.o.Now()
		switch out.kind {
		case outLink:
			n.failures++
			delay = p.backoff(n.failures, false)
			n.notBefore = now.Add(delay)
		case outFailed, outRejected:
			j.failures++
			delay = p.backoff(j.failures, out.kind == outRejected)
			j.notBefore = now.Add(delay)
		}
	}
	p.mu.Unlock()

	// Report while the job is still this transfer's: nothing else runs it.
	if !stopped && out.kind != outStored {
		j.prog.State = api.PullFailed
		if out.kind == outLink {
			j.prog.State = api.PullWaiting
		}
		j.prog.Error = fmt.Sprintf("%v; retrying in %s", out.err, delay.Round(time.Millisecond))
		p.o.Logger.Warn("pull attempt failed", "case", j.CaseID, "item", j.ItemID, "node", j.NodeID, "attempt", j.prog.Attempts,
			"bytes", j.prog.Bytes, "retry_in", delay, "err", out.err)
		p.report(j)
	}

	p.mu.Lock()
	n.busy = false
	p.running--
	j.running = false
	j.cancel()
	j.cancel = nil
	canceled := j.canceled
	switch {
	case canceled:
		delete(p.jobs, j.key)
	case out.kind == outStored:
		delete(p.jobs, j.key)
		p.remember(j)
	case runCtx.Err() != nil, out.kind == outLink:
		p.enqueue(j)
	default:
		heap.Push(&p.sleeping, j)
	}
	p.mu.Unlock()
	if canceled {
		os.Remove(p.partPath(j))
		os.Remove(p.metaPath(j))
	}
	p.signal()
}

func (p *Puller) remember(j *job) {
	if p.ring == nil {
		p.ring = make([]string, storedMemory)
	}
	if old := p.ring[p.ringNext]; old != "" {
		delete(p.stored, old)
	}
	p.ring[p.ringNext] = j.key
	p.ringNext = (p.ringNext + 1) % storedMemory
	p.stored[j.key] = j.CaseID
}

// backoff is the delay after the n-th consecutive failure.
func (p *Puller) backoff(n int, slow bool) time.Duration {
	d, limit := p.o.Backoff, p.o.MaxBackoff
	if slow {
		d, limit = 60*d, 120*limit
	}
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

func (p *Puller) report(j *job) {
	j.prog.Member = p.o.Member
	j.prog.Updated = p.o.Now().UTC()
	if p.o.OnProgress != nil {
		p.o.OnProgress(j.Job, j.prog)
	}
}

func (p *Puller) setState(j *job, state string) {
	j.prog.State = state
	j.prog.Error = ""
	p.report(j)
}

// nodeErr classifies a gRPC error from the node.
func nodeErr(j *job, what string, err error, progressed bool) outcome {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.NotFound, codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.FailedPrecondition, codes.OutOfRange:
		return outcome{kind: outRejected, err: fmt.Errorf("%s: node %s says: %s", what, j.NodeID, st.Message()), progressed: progressed}
	case codes.Unimplemented:
		return outcome{kind: outRejected, err: fmt.Errorf("%s: node %s does not serve it (an older version; upgrade it): %s", what, j.NodeID, st.Message()), progressed: progressed}
	}
	return outcome{kind: outLink, err: fmt.Errorf("%s: node %s: %s", what, j.NodeID, st.Message()), progressed: progressed}
}

func failed(progressed bool, format string, a ...any) outcome {
	return outcome{kind: outFailed, err: fmt.Errorf(format, a...), progressed: progressed}
}

// attempt takes a job as far as it gets: the export's metadata (kept on
// disk), the missing bytes (appended to the partial), verification, the sink.
func (p *Puller) attempt(ctx context.Context, j *job, lim *rate.Limiter, buf []byte) outcome {
	ctl, err := p.o.Dial(ctx, j.NodeID)
	if err != nil {
		return outcome{kind: outLink, err: fmt.Errorf("node %s is unreachable: %w", j.NodeID, err)}
	}
	progressed := false
	if j.meta == nil {
		p.loadMeta(j)
	}
	if j.meta == nil {
		p.setState(j, api.PullExporting)
		m, err := ctl.MakeExport(ctx, &rondav1.MakeExportRequest{CaseId: j.CaseID, ItemId: j.ItemID, CameraId: j.Camera,
			FromUnixNano: j.From.UnixNano(), ToUnixNano: j.To.UnixNano(), Reason: j.Reason, User: j.User})
		if err != nil {
			return nodeErr(j, "making the export", err, false)
		}
		progressed = true
		msha, err := checkMeta(j, m)
		if err != nil {
			return outcome{kind: outRejected, err: err, progressed: true}
		}
		if err := p.saveMeta(j, m); err != nil {
			return failed(true, "saving export %s's metadata: %v", m.ExportId, err)
		}
		j.meta, j.manifestSHA = m, msha
		os.Remove(p.partPath(j)) // a partial without metadata is of no known export
		j.h = nil
	}
	m := j.meta
	j.prog.ExportID, j.prog.Total, j.prog.SHA256 = m.ExportId, m.Bytes, m.Sha256

	path := p.partPath(j)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return failed(progressed, "opening the partial file: %v", err)
	}
	closed := false
	defer func() {
		if !closed {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return failed(progressed, "reading the partial file: %v", err)
	}
	off := st.Size()
	if off > m.Bytes {
		p.o.Logger.Warn("partial file longer than the export; starting over", "case", j.CaseID, "item", j.ItemID, "bytes", off, "export_bytes", m.Bytes)
		if err := f.Truncate(0); err != nil {
			return failed(progressed, "emptying the partial file: %v", err)
		}
		off, j.h = 0, nil
	}
	if j.h == nil || j.hashed != off {
		// A restart (or a failed write): hash what the partial holds.
		h := sha256.New()
		if _, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, off), buf); err != nil {
			return failed(progressed, "rehashing the partial file: %v", err)
		}
		j.h, j.hashed = h, off
	}
	h := j.h
	j.prog.Bytes = off

	if off < m.Bytes {
		p.setState(j, api.PullPulling)
		stream, err := ctl.ReadExport(ctx, &rondav1.ReadExportRequest{ExportId: m.ExportId, Part: "file", Offset: off, MaxChunk: int32(p.chunk)})
		if err != nil {
			return p.readErr(j, err, progressed)
		}
		var msg rondav1.ExportChunk // reused: RecvMsg decodes into it
		last := p.o.Now()
		for {
			err := stream.RecvMsg(&msg)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return p.readErr(j, err, progressed)
			}
			data := msg.Data
			if msg.Offset != off {
				return failed(progressed, "the node sent export %s's bytes at offset %d; expected %d", m.ExportId, msg.Offset, off)
			}
			if off+int64(len(data)) > m.Bytes {
				p.discard(j, f)
				return failed(true, "size mismatch: node %s sent more than export %s's %d bytes; the partial copy was discarded and is pulled again from byte 0",
					j.NodeID, m.ExportId, m.Bytes)
			}
			if _, err := f.WriteAt(data, off); err != nil {
				j.h = nil // what reached the disk is rehashed next time
				return failed(true, "writing the partial file: %v", err)
			}
			h.Write(data)
			off += int64(len(data))
			j.hashed = off
			progressed = true
			if err := waitN(ctx, lim, len(data)); err != nil {
				return outcome{kind: outLink, err: err, progressed: true}
			}
			j.prog.Bytes = off
			if now := p.o.Now(); now.Sub(last) >= progressEvery {
				last = now
				p.report(j)
			}
		}
		if off < m.Bytes {
			return outcome{kind: outLink, err: fmt.Errorf("node %s ended export %s's stream at byte %d of %d", j.NodeID, m.ExportId, off, m.Bytes), progressed: progressed}
		}
	}

	sum := hex.EncodeToString(h.Sum(buf[:0]))
	if sum != m.Sha256 || sum != j.manifestSHA {
		p.discard(j, f)
		return failed(true, "SHA-256 mismatch: the %d bytes pulled of export %s hash to %s, but the node's ExportMeta says %s and its manifest says %s; the copy was discarded and is pulled again from byte 0",
			m.Bytes, m.ExportId, sum, m.Sha256, j.manifestSHA)
	}
	if err := f.Sync(); err != nil {
		return failed(true, "syncing the pulled file: %v", err)
	}
	closed = true
	if err := f.Close(); err != nil {
		return failed(true, "closing the pulled file: %v", err)
	}
	pctx := context.WithValue(ctx, exportKey{}, exportVal{job: j.Job, meta: m})
	if err := p.o.Sink.Put(pctx, path, sum, m.Bytes); err != nil {
		j.h = nil // the sink may have taken the file
		return failed(true, "storing the verified file: %v", err)
	}
	os.Remove(path)
	os.Remove(p.metaPath(j))
	j.prog.Bytes = m.Bytes
	j.prog.SHA256 = sum
	p.setState(j, api.PullStored)
	p.o.Logger.Info("pulled", "case", j.CaseID, "item", j.ItemID, "node", j.NodeID, "export", m.ExportId, "bytes", m.Bytes, "attempts", j.prog.Attempts)
	return outcome{kind: outStored, progressed: true}
}

// readErr classifies a ReadExport error: the export gone at the node, or
// an offset it does not have, starts over with a new MakeExport.
func (p *Puller) readErr(j *job, err error, progressed bool) outcome {
	out := nodeErr(j, "reading export "+j.meta.ExportId, err, progressed)
	if c := status.Code(err); c == codes.NotFound || c == codes.InvalidArgument || c == codes.OutOfRange {
		os.Remove(p.partPath(j))
		os.Remove(p.metaPath(j))
		j.meta, j.h = nil, nil
		out.kind = outFailed
		out.err = fmt.Errorf("%v; the partial copy was discarded and the export is asked for again", out.err)
	}
	return out
}

// discard empties the partial after a mismatch.
func (p *Puller) discard(j *job, f *os.File) {
	if err := f.Truncate(0); err != nil {
		f.Close()
		os.Remove(p.partPath(j))
	}
	j.h, j.hashed = nil, 0
	j.prog.Bytes = 0
}

func waitN(ctx context.Context, lim *rate.Limiter, n int) error {
	b := lim.Burst()
	for n > 0 {
		k := min(n, b)
		if err := lim.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// checkMeta checks a node's ExportMeta against the job and its own
// manifest, and returns the manifest's SHA-256.
func checkMeta(j *job, m *rondav1.ExportMeta) (string, error) {
	if m.ExportId == "" || m.Bytes < 0 || len(m.Sha256) != 64 {
		return "", fmt.Errorf("node %s answered MakeExport with an incomplete export (id %q, %d bytes, sha256 %q)", j.NodeID, m.ExportId, m.Bytes, m.Sha256)
	}
	if m.CameraId != j.Camera {
		return "", fmt.Errorf("node %s made export %s of camera %s, not %s", j.NodeID, m.ExportId, m.CameraId, j.Camera)
	}
	var man evidence.Manifest
	if err := json.Unmarshal(m.Manifest, &man); err != nil {
		return "", fmt.Errorf("export %s's manifest is not a manifest: %v", m.ExportId, err)
	}
	switch {
	case man.ID != m.ExportId:
		return "", fmt.Errorf("export %s's manifest names export %q", m.ExportId, man.ID)
	case man.SHA256 != m.Sha256:
		return "", fmt.Errorf("SHA-256 mismatch: export %s's manifest says %s, the node's ExportMeta %s", m.ExportId, man.SHA256, m.Sha256)
	case man.Bytes != m.Bytes:
		return "", fmt.Errorf("size mismatch: export %s's manifest says %d bytes, the node's ExportMeta %d", m.ExportId, man.Bytes, m.Bytes)
	case man.Camera != j.Camera || man.NodeID != j.NodeID:
		return "", fmt.Errorf("export %s's manifest is of camera %s at node %s, not %s at %s", m.ExportId, man.Camera, man.NodeID, j.Camera, j.NodeID)
	}
	return man.SHA256, nil
}

// metaFile is what is kept next to a partial: the job it is for and the
// node's ExportMeta (the manifest byte for byte).
type metaFile struct {
	CaseID     string    `json:"case_id"`
	ItemID     string    `json:"item_id"`
	NodeID     string    `json:"node_id"`
	Camera     string    `json:"camera"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	ExportID   string    `json:"export_id"`
	ExportFrom int64     `json:"export_from_unix_nano"`
	ExportTo   int64     `json:"export_to_unix_nano"`
	Bytes      int64     `json:"bytes"`
	SHA256     string    `json:"sha256"`
	Manifest   []byte    `json:"manifest"`
}

func (p *Puller) saveMeta(j *job, m *rondav1.ExportMeta) error {
	b, err := json.Marshal(metaFile{CaseID: j.CaseID, ItemID: j.ItemID, NodeID: j.NodeID, Camera: j.Camera, From: j.From, To: j.To,
		ExportID: m.ExportId, ExportFrom: m.FromUnixNano, ExportTo: m.ToUnixNano, Bytes: m.Bytes, SHA256: m.Sha256, Manifest: m.Manifest})
	if err != nil {
		return err
	}
	return fsutil.WriteAtomic(p.metaPath(j), b, 0o640)
}

// loadMeta picks up the metadata a previous Puller left for this job; one
// that is unreadable or of another request is dropped with its partial.
func (p *Puller) loadMeta(j *job) {
	b, err := os.ReadFile(p.metaPath(j))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var mf metaFile
	if err == nil {
		err = json.Unmarshal(b, &mf)
	}
	if err == nil && (mf.CaseID != j.CaseID || mf.ItemID != j.ItemID || mf.NodeID != j.NodeID || mf.Camera != j.Camera ||
		!mf.From.Equal(j.From) || !mf.To.Equal(j.To)) {
		err = errors.New("it is of another request")
	}
	var m *rondav1.ExportMeta
	var msha string
	if err == nil {
		m = &rondav1.ExportMeta{ExportId: mf.ExportID, CameraId: mf.Camera, FromUnixNano: mf.ExportFrom, ToUnixNano: mf.ExportTo,
			Bytes: mf.Bytes, Sha256: mf.SHA256, Manifest: mf.Manifest}
		msha, err = checkMeta(j, m)
	}
	if err != nil {
		p.o.Logger.Warn("dropping a partial pull's metadata", "case", j.CaseID, "item", j.ItemID, "err", err)
		os.Remove(p.metaPath(j))
		os.Remove(p.partPath(j))
		return
	}
	j.meta, j.manifestSHA, j.h = m, msha, nil
}

// jobQueue is a node's queue: a heap in deadline order.
type jobQueue []*job

func (q jobQueue) Len() int           { return len(q) }
func (q jobQueue) Less(a, b int) bool { return before(q[a], q[b]) }
func (q jobQueue) Swap(a, b int) {
	q[a], q[b] = q[b], q[a]
	q[a].qi, q[b].qi = a, b
}
func (q *jobQueue) Push(x any) {
	j := x.(*job)
	j.qi = len(*q)
	*q = append(*q, j)
}
func (q *jobQueue) Pop() any {
	old := *q
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	j.qi = -1
	return j
}

// sleepQueue holds jobs backing off, soonest due first.
type sleepQueue []*job

func (q sleepQueue) Len() int { return len(q) }
func (q sleepQueue) Less(a, b int) bool {
	if !q[a].notBefore.Equal(q[b].notBefore) {
		return q[a].notBefore.Before(q[b].notBefore)
	}
	return q[a].seq < q[b].seq
}
func (q sleepQueue) Swap(a, b int) {
	q[a], q[b] = q[b], q[a]
	q[a].si, q[b].si = a, b
}
func (q *sleepQueue) Push(x any) {
	j := x.(*job)
	j.si = len(*q)
	*q = append(*q, j)
}
func (q *sleepQueue) Pop() any {
	old := *q
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	j.si = -1
	return j
}
