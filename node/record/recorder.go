package record

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	amp4 "github.com/abema/go-mp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"github.com/ronda-jakarta/ronda/node/media"
)

const timescale = 90000

// selfDescribingPrefix starts the private box (a 'free' box in moov/udta)
// that names the camera, segment and start time, so a file explains itself
// even if the index is lost.
const selfDescribingPrefix = "RONDA1"

type fileMeta struct {
	Camera  string `json:"camera"`
	Segment uint64 `json:"segment"`
	StartNs int64  `json:"start_ns"`
}

type event struct {
	at     time.Time
	reason string
}

// pending is what was written since the last sync and is not yet indexed.
type pending struct {
	segments  []*segment
	fragments []fragment
	events    []event
	files     map[*segFile]bool
	params    map[string][]byte // "p" keys of parameter sets first used
	openSeg   *segment
	mu        *sync.Mutex // the recorder's file lock, held while fsyncing
}

func (p *pending) empty() bool {
	return len(p.segments) == 0 && len(p.fragments) == 0 && len(p.events) == 0
}

// sync fdatasyncs every file written since the last sync and returns the
// segments whose bytes cannot be trusted because an fsync on them failed
// (now or when the writer closed them). After a failed fsync the kernel may
// have dropped the dirty pages and a later fsync can report success, so a
// failed segment stays failed.
func (p *pending) sync() map[uint64]error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var bad map[uint64]error
	for f := range p.files {
		if f.failed == nil && !f.closed {
			if err := f.sync(); err != nil {
				f.failed = err
				f.bad.Store(true)
			}
		}
		if f.failed != nil {
			if bad == nil {
				bad = map[uint64]error{}
			}
			bad[f.segID] = f.failed
		}
	}
	return bad
}

// abandon forgets the fragments of failed segments written since the last
// sync (their bytes are not known to be durable), records the segments as
// abandoned, and records why footage is missing.
func (p *pending) abandon(bad map[uint64]error) {
	kept := p.fragments[:0]
	gapAt := map[uint64]time.Time{}
	for _, f := range p.fragments {
		if _, ok := bad[f.Segment]; !ok {
			kept = append(kept, f)
		} else if _, seen := gapAt[f.Segment]; !seen {
			gapAt[f.Segment] = f.start()
		}
	}
	p.fragments = kept
	found := map[uint64]bool{}
	for _, s := range p.segments {
		if _, ok := bad[s.ID]; ok {
			s.Status = SegAbandoned
			found[s.ID] = true
		}
	}
	if p.openSeg != nil && !found[p.openSeg.ID] {
		if _, ok := bad[p.openSeg.ID]; ok {
			s := *p.openSeg
			s.Status = SegAbandoned
			p.segments = append(p.segments, &s)
		}
	}
	for id, err := range bad {
		if at, ok := gapAt[id]; ok {
			p.events = append(p.events, event{at: at, reason: ReasonWriteFailed + ": fsync failed: " + err.Error()})
		}
	}
}

type item struct {
	au       *media.AccessUnit
	track    *media.Track // new parameter sets, from the frame after
	stop     string
	shutdown bool
	barrier  chan struct{} // closed when the writer reaches it (tests)
}

// Recorder writes one camera's stream. OnAccessUnit never blocks: it puts
// the frame in a bounded inbox and, when the inbox is full, drops frames
// until the next keyframe. The writer goroutine is woken only when there is
// work worth waking for (a keyframe, which ends a fragment, or a batch of
// wakeBatch frames), not once per frame: at 110 cameras the per-frame
// hand-off cost more in scheduler wake-ups than writing the frames.
type Recorder struct {
	s    *Store
	cam  string
	log  *slog.Logger
	kick chan struct{} // wakes the writer to drain the inbox (capacity 1)
	done chan struct{}
	once sync.Once

	mu       sync.Mutex // guards the fields below, shared with the sync loop
	inbox    []item     // frames and control items (stop, shutdown, test barriers), in order
	spare    []item     // the writer's last drained inbox, reused
	frames   int        // frames in the inbox (bounded by QueueFrames)
	pend     pending
	openSeg  *segment // a copy of the open segment's record, for the sync loop
	dropping bool
	dropped  int

	fileMu sync.Mutex // held while fsyncing or closing files

	// writer goroutine only
	track     *media.Track // the stream's current track
	cur       *openSegment
	curTrack  *media.Track
	frag      []*media.AccessUnit
	seq       uint32
	entries   []sampleEntry
	firstSeg  bool
	openErr   bool          // a failed segment open was reported (once per outage)
	lastWall  time.Time     // wall time of the last frame written
	lastPTS   time.Duration // its PTS
	lastDurNs int64
}

type openSegment struct {
	seg     *segment
	file    *segFile
	basePTS time.Duration
	offset  int64
}

func newRecorder(s *Store, cam string) *Recorder {
	r := &Recorder{s: s, cam: cam, log: s.log.With("camera", cam), kick: make(chan struct{}, 1),
		done: make(chan struct{}), firstSeg: true, lastDurNs: int64(time.Second / 15)}
	r.pend.files = map[*segFile]bool{}
	r.pend.mu = &r.fileMu
	return r
}

// OnTrack implements media.Consumer.
func (r *Recorder) OnTrack(t media.Track) { r.send(item{track: &t}) }

// wakeBatch is how many frames may wait in the inbox before the writer is
// woken without a keyframe (a long GOP is still cut at MaxFragment).
const wakeBatch = 16

// OnAccessUnit implements media.Consumer.
func (r *Recorder) OnAccessUnit(au *media.AccessUnit) {
	r.mu.Lock()
	switch {
	case r.dropping && !au.Key:
		r.dropped++
		r.mu.Unlock()
		return
	case r.frames >= r.s.opts.QueueFrames:
		if !r.dropping {
			r.log.Warn("recorder queue full; dropping frames until the next keyframe")
		}
		r.dropping = true
		r.dropped++
		r.mu.Unlock()
		r.wake()
		return
	case r.dropping:
		r.log.Warn("recorder caught up; dropped frames while the disk was slow", "dropped", r.dropped)
		r.dropping, r.dropped = false, 0
	}
	r.inbox = append(r.inbox, item{au: au})
	r.frames++
	wake := au.Key || r.frames%wakeBatch == 0
	r.mu.Unlock()
	if wake {
		r.wake()
	}
}

// send queues a control item after every frame handed over before it.
func (r *Recorder) send(it item) {
	r.mu.Lock()
	r.inbox = append(r.inbox, it)
	r.mu.Unlock()
	r.wake()
}

func (r *Recorder) wake() {
	select {
	case r.kick <- struct{}{}:
	default: // already woken
	}
}

// take hands the writer everything waiting in the inbox, in order.
func (r *Recorder) take() []item {
	r.mu.Lock()
	defer r.mu.Unlock()
	batch := r.inbox
	r.inbox, r.spare, r.frames = r.spare[:0], nil, 0
	return batch
}

// give back a processed batch for reuse.
func (r *Recorder) giveBack(batch []item) {
	clear(batch)
	r.mu.Lock()
	r.spare = batch[:0]
	r.mu.Unlock()
}

// OnStop implements media.Consumer.
func (r *Recorder) OnStop(reason string) { r.send(item{stop: reason}) }

func (r *Recorder) shutdown() {
	r.once.Do(func() { r.send(item{shutdown: true}) })
	<-r.done
}

// takePending hands what was written since the last sync to the sync loop.
func (r *Recorder) takePending() pending {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pend
	if r.openSeg != nil {
		s := *r.openSeg
		p.openSeg = &s
	}
	r.pend = pending{files: map[*segFile]bool{}, mu: &r.fileMu}
	return p
}

func (r *Recorder) run() {
	defer close(r.done)
	for range r.kick {
		batch := r.take()
		for _, it := range batch {
			if r.handle(it) {
				return
			}
		}
		r.giveBack(batch)
	}
}

// handle processes one item; true when the recorder has shut down.
func (r *Recorder) handle(it item) bool {
	switch {
	case it.barrier != nil:
		close(it.barrier)
	case it.track != nil:
		r.track = it.track
	case it.shutdown:
		r.flush(0)
		r.closeSegment()
		return true
	case it.stop != "":
		end := time.Now()
		if n := len(r.frag); n > 0 {
			end = r.frag[n-1].Wall
		}
		r.flush(0)
		r.closeSegment()
		r.mu.Lock()
		r.pend.events = append(r.pend.events, event{at: end, reason: it.stop})
		r.mu.Unlock()
	default:
		r.write(it.au)
	}
	return false
}

// clockStep is how far wall time may run away from media time between two
// frames before the recorder calls it a step of the node's clock.
const clockStep = time.Second

func (r *Recorder) write(au *media.AccessUnit) {
	track := r.track
	if r.cur != nil && r.cur.file.bad.Load() {
		// The sync loop saw an fsync of this segment fail and abandoned it:
		// start a new segment (and file) at the next keyframe.
		r.frag = r.frag[:0]
		r.closeSegment()
	}
	if track == nil {
		return
	}
	if r.curTrack != nil && (string(track.SPS) != string(r.curTrack.SPS) || string(track.PPS) != string(r.curTrack.PPS) || string(track.VPS) != string(r.curTrack.VPS)) {
		// New parameter sets need a new init: end the segment here.
		r.flush(au.PTS)
		r.closeSegment()
	}
	if r.cur != nil && !r.lastWall.IsZero() {
		if step := au.Wall.Sub(r.lastWall) - (au.PTS - r.lastPTS); step > clockStep || step < -clockStep {
			// The node's clock stepped (the ingest re-anchored wall time).
			// A segment's frames must follow one clock: end it, and say why
			// the timeline jumps.
			at := r.lastWall
			r.flush(0)
			r.closeSegment()
			r.mu.Lock()
			r.pend.events = append(r.pend.events, event{at: at, reason: ReasonClockStep + ": wall clock stepped by " + step.Round(time.Millisecond).String()})
			r.mu.Unlock()
		}
	}
	if r.cur == nil && !au.Key {
		return // a segment starts at a keyframe
	}
	if len(r.frag) > 0 {
		first := r.frag[0]
		if au.Key || au.PTS-first.PTS >= r.s.opts.MaxFragment {
			r.flush(au.PTS)
		}
	}
	if au.Key && r.cur != nil && au.Wall.Sub(time.Unix(0, r.cur.seg.StartNs)) >= r.segmentTarget() {
		r.closeSegment()
	}
	if r.cur == nil {
		if err := r.openSegment(track, au); err != nil {
			r.openFailed(au, err)
			return
		}
	}
	r.frag = append(r.frag, au)
	r.lastWall, r.lastPTS = au.Wall, au.PTS
}

// openFailed records why a segment could not be opened, once per outage.
func (r *Recorder) openFailed(au *media.AccessUnit, err error) {
	if r.openErr {
		return
	}
	r.openErr = true
	reason := ReasonWriteFailed + ": cannot create a segment file: " + err.Error()
	if errors.Is(err, syscall.ENOSPC) {
		reason = ReasonDiskFull + ": " + err.Error()
	}
	r.log.Error("cannot open a segment file; frames are not recorded until this is fixed", "err", err)
	r.mu.Lock()
	r.pend.events = append(r.pend.events, event{at: au.Wall, reason: reason})
	r.mu.Unlock()
}

// segmentTarget staggers the first segment of each camera so that cameras
// do not all rotate (and write inits) at the same moment.
func (r *Recorder) segmentTarget() time.Duration {
	d := r.s.opts.SegmentDuration
	if !r.firstSeg {
		return d
	}
	h := fnv.New32a()
	h.Write([]byte(r.cam))
	return d/2 + time.Duration(uint64(h.Sum32())%uint64(d/2+1))
}

func (r *Recorder) openSegment(t *media.Track, au *media.AccessUnit) error {
	id := r.s.allocSegment()
	rel := filepath.Join(r.cam, fmt.Sprintf("%016d.mp4", id))
	path := filepath.Join(r.s.segDir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := createSegFile(path, id)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		_ = f.f.Close()
		_ = os.Remove(path)
		return err
	}
	// The new file's directory entry must be durable before the index can
	// name it (once per segment, not per frame).
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fail(fmt.Errorf("fsync of %s: %w", filepath.Dir(path), err))
		}
	}
	meta, _ := json.Marshal(fileMeta{Camera: r.cam, Segment: id, StartNs: au.Wall.UnixNano()})
	codec, err := initCodec(t)
	if err != nil {
		return fail(err)
	}
	init := fmp4.Init{
		Tracks:   []*fmp4.InitTrack{{ID: 1, TimeScale: timescale, Codec: codec}},
		UserData: []amp4.IBox{&amp4.Free{Data: append([]byte(selfDescribingPrefix), meta...)}},
	}
	var ib seekablebuffer.Buffer
	if err := init.Marshal(&ib); err != nil {
		return fail(err)
	}
	n, err := f.commit(append(f.begin(), ib.Bytes()...))
	if err != nil {
		return fail(err)
	}
	ph, pv := paramsHash(Params{Codec: t.Codec, VPS: t.VPS, SPS: t.SPS, PPS: t.PPS})
	seg := &segment{Camera: r.cam, ID: id, File: rel, StartNs: au.Wall.UnixNano(), EndNs: au.Wall.UnixNano(),
		Bytes: int64(n), InitBytes: int64(n), Status: SegOpen, Params: hex.EncodeToString(ph[:])}
	r.cur = &openSegment{seg: seg, file: f, basePTS: au.PTS, offset: int64(n)}
	r.curTrack = t
	r.seq = 0
	r.openErr = false
	r.mu.Lock()
	s := *seg
	r.pend.segments = append(r.pend.segments, &s)
	r.pend.files[f] = true
	if r.pend.params == nil {
		r.pend.params = map[string][]byte{}
	}
	r.pend.params[string(paramsKey(ph))] = pv
	r.openSeg = seg
	r.mu.Unlock()
	return nil
}

// initCodec is the init's sample description for a track.
func initCodec(t *media.Track) (fmp4.Codec, error) {
	switch t.Codec {
	case media.CodecH264, "":
		return &fmp4.CodecH264{SPS: t.SPS, PPS: t.PPS}, nil
	case media.CodecH265:
		return &fmp4.CodecH265{VPS: t.VPS, SPS: t.SPS, PPS: t.PPS}, nil
	}
	return nil, fmt.Errorf("cannot record codec %q", t.Codec)
}

// flush writes the buffered frames as one fragment with one write().
// nextPTS is the PTS of the frame after them (0: estimate the last duration).
func (r *Recorder) flush(nextPTS time.Duration) {
	if len(r.frag) == 0 || r.cur == nil {
		r.frag = r.frag[:0]
		return
	}
	first := r.frag[0]
	r.entries = r.entries[:0]
	var durNs int64
	for i, au := range r.frag {
		var d time.Duration
		switch {
		case i+1 < len(r.frag):
			d = r.frag[i+1].PTS - au.PTS
		case nextPTS > au.PTS:
			d = nextPTS - au.PTS
		default:
			d = time.Duration(r.lastDurNs)
		}
		if d <= 0 || d > 10*time.Second {
			d = time.Duration(r.lastDurNs) // a clock step: keep the stream playable
		}
		r.lastDurNs = int64(d)
		durNs += int64(d)
		r.entries = append(r.entries, sampleEntry{dur: uint32((d*timescale + time.Second/2) / time.Second)}) // rounded: 66.67 ms is 6000 ticks, not 5999
	}
	r.seq++
	f := r.cur.file
	b, err := appendFragment(f.begin(), r.seq, uint64((first.PTS-r.cur.basePTS)*timescale/time.Second), r.frag, r.entries)
	var n int
	if err == nil {
		n, err = f.commit(b)
	}
	clear(r.frag) // let the frames' buffers go
	r.frag = r.frag[:0]
	if err != nil {
		r.log.Error("segment write failed; closing the segment", "err", err, "segment", r.cur.seg.ID)
		reason := ReasonWriteFailed + ": " + err.Error()
		if errors.Is(err, syscall.ENOSPC) {
			reason = ReasonDiskFull + ": " + err.Error()
		}
		r.mu.Lock()
		r.pend.events = append(r.pend.events, event{at: first.Wall, reason: reason})
		r.mu.Unlock()
		r.closeSegment()
		return
	}
	r.s.bw.total.Add(int64(n))
	fr := fragment{StartNs: first.Wall.UnixNano(), Segment: r.cur.seg.ID, Offset: r.cur.offset, Length: uint32(n), DurNs: durNs, Key: first.Key}
	r.cur.offset += int64(n)
	r.mu.Lock()
	r.cur.seg.Bytes = r.cur.offset
	r.cur.seg.EndNs = fr.StartNs + durNs
	r.pend.fragments = append(r.pend.fragments, fr)
	r.pend.files[f] = true
	r.mu.Unlock()
}

// closeSegment fsyncs and closes the open segment and records it closed.
// If the fsync fails the sync loop abandons what it had not indexed yet.
func (r *Recorder) closeSegment() {
	if r.cur == nil {
		return
	}
	f := r.cur.file
	r.fileMu.Lock()
	if !f.closed {
		if err := f.close(); err != nil && f.failed == nil {
			f.failed = err
			f.bad.Store(true)
			r.log.Error("fsync at segment close failed; abandoning its unsynced footage", "err", err, "segment", f.segID)
		}
		f.closed = true
	}
	r.fileMu.Unlock()
	r.mu.Lock()
	s := *r.cur.seg
	s.Status = SegClosed
	if f.failed == nil {
		s.SHA256 = hex.EncodeToString(f.digest())
	}
	r.pend.segments = append(r.pend.segments, &s)
	r.pend.files[f] = true // the sync loop must see a failed close
	r.openSeg = nil
	r.mu.Unlock()
	r.cur = nil
	r.firstSeg = false
	r.lastWall = time.Time{}
}
