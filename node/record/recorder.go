package record

import (
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

// openFile is a segment file being written. closed files were fsynced by
// the writer before closing.
type openFile struct {
	f      *os.File
	closed bool
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
	files     map[*openFile]bool
	openSeg   *segment
	mu        *sync.Mutex // the recorder's file lock, held while fsyncing
}

func (p *pending) empty() bool {
	return len(p.segments) == 0 && len(p.fragments) == 0 && len(p.events) == 0
}

// sync fdatasyncs every file written since the last sync.
func (p *pending) sync() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for of := range p.files {
		if of.closed {
			continue
		}
		if err := of.f.Sync(); err != nil {
			return err
		}
	}
	return nil
}

// dropOpenSegment forgets the fragments of the open segment (their bytes are
// not known to be durable) and records the segment as abandoned.
func (p *pending) dropOpenSegment() {
	if p.openSeg == nil {
		return
	}
	kept := p.fragments[:0]
	for _, f := range p.fragments {
		if f.Segment != p.openSeg.ID {
			kept = append(kept, f)
		}
	}
	p.fragments = kept
	s := *p.openSeg
	s.Status = SegAbandoned
	p.segments = append(p.segments, &s)
}

type item struct {
	au       *media.AccessUnit
	stop     string
	shutdown bool
}

// Recorder writes one camera's stream. OnAccessUnit never blocks: it queues
// (bounded) and, when the queue is full, drops frames until the next keyframe.
type Recorder struct {
	s     *Store
	cam   string
	log   *slog.Logger
	queue chan item
	done  chan struct{}
	once  sync.Once

	mu        sync.Mutex // guards the fields below, shared with the sync loop
	pend      pending
	track     *media.Track
	abandonID uint64
	dropping  bool
	dropped   int

	fileMu sync.Mutex // held while fsyncing or closing files

	// writer goroutine only
	cur       *openSegment
	curTrack  *media.Track
	frag      []*media.AccessUnit
	seq       uint32
	buf       seekablebuffer.Buffer
	firstSeg  bool
	lastDurNs int64
}

type openSegment struct {
	seg     *segment
	file    *openFile
	basePTS time.Duration
	offset  int64
}

func newRecorder(s *Store, cam string) *Recorder {
	r := &Recorder{s: s, cam: cam, log: s.log.With("camera", cam), queue: make(chan item, s.opts.QueueFrames),
		done: make(chan struct{}), firstSeg: true, lastDurNs: int64(time.Second / 15)}
	r.pend.files = map[*openFile]bool{}
	r.pend.mu = &r.fileMu
	return r
}

// OnTrack implements media.Consumer.
func (r *Recorder) OnTrack(t media.Track) {
	r.mu.Lock()
	r.track = &t
	r.mu.Unlock()
}

// OnAccessUnit implements media.Consumer.
func (r *Recorder) OnAccessUnit(au *media.AccessUnit) {
	r.mu.Lock()
	if r.dropping && !au.Key {
		r.dropped++
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	select {
	case r.queue <- item{au: au}:
		r.mu.Lock()
		if r.dropping {
			r.log.Warn("recorder caught up; dropped frames while the disk was slow", "dropped", r.dropped)
			r.dropping, r.dropped = false, 0
		}
		r.mu.Unlock()
	default:
		r.mu.Lock()
		if !r.dropping {
			r.log.Warn("recorder queue full; dropping frames until the next keyframe")
		}
		r.dropping = true
		r.dropped++
		r.mu.Unlock()
	}
}

// OnStop implements media.Consumer.
func (r *Recorder) OnStop(reason string) {
	select {
	case r.queue <- item{stop: reason}:
	case <-r.done:
	case <-time.After(time.Second):
		r.log.Warn("recorder queue full; stream stop not recorded", "reason", reason)
	}
}

func (r *Recorder) shutdown() {
	r.once.Do(func() {
		select {
		case r.queue <- item{shutdown: true}:
		case <-r.done:
		}
	})
	<-r.done
}

// takePending hands what was written since the last sync to the sync loop.
func (r *Recorder) takePending() pending {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pend
	if r.cur != nil {
		s := *r.cur.seg
		p.openSeg = &s
	}
	r.pend = pending{files: map[*openFile]bool{}, mu: &r.fileMu}
	return p
}

func (r *Recorder) abandon(segID uint64) {
	r.mu.Lock()
	r.abandonID = segID
	r.mu.Unlock()
}

func (r *Recorder) run() {
	defer close(r.done)
	for it := range r.queue {
		switch {
		case it.shutdown:
			r.flush(0)
			r.closeSegment()
			return
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
	}
}

func (r *Recorder) write(au *media.AccessUnit) {
	r.mu.Lock()
	track, abandon := r.track, r.abandonID
	r.mu.Unlock()
	if r.cur != nil && r.cur.seg.ID == abandon {
		r.frag = r.frag[:0]
		r.closeFile()
		r.cur = nil
	}
	if track == nil {
		return
	}
	if r.curTrack != nil && (string(track.SPS) != string(r.curTrack.SPS) || string(track.PPS) != string(r.curTrack.PPS)) {
		// New parameter sets need a new init: end the segment here.
		r.flush(au.PTS)
		r.closeSegment()
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
			r.log.Error("cannot open a segment file; frames are not recorded until this is fixed", "err", err)
			return
		}
	}
	r.frag = append(r.frag, au)
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
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	// The new file's directory entry must be durable before the index can
	// name it (once per segment, not per frame).
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			f.Close()
			return fmt.Errorf("fsync of %s: %w", filepath.Dir(path), err)
		}
	}
	meta, _ := json.Marshal(fileMeta{Camera: r.cam, Segment: id, StartNs: au.Wall.UnixNano()})
	init := fmp4.Init{
		Tracks:   []*fmp4.InitTrack{{ID: 1, TimeScale: timescale, Codec: &fmp4.CodecH264{SPS: t.SPS, PPS: t.PPS}}},
		UserData: []amp4.IBox{&amp4.Free{Data: append([]byte(selfDescribingPrefix), meta...)}},
	}
	r.buf.Reset()
	if err := init.Marshal(&r.buf); err != nil {
		f.Close()
		return err
	}
	n, err := f.Write(r.buf.Bytes())
	if err != nil {
		f.Close()
		return err
	}
	seg := &segment{Camera: r.cam, ID: id, File: rel, StartNs: au.Wall.UnixNano(), EndNs: au.Wall.UnixNano(),
		Bytes: int64(n), InitBytes: int64(n), Status: SegOpen}
	of := &openFile{f: f}
	r.cur = &openSegment{seg: seg, file: of, basePTS: au.PTS, offset: int64(n)}
	r.curTrack = t
	r.seq = 0
	r.mu.Lock()
	s := *seg
	r.pend.segments = append(r.pend.segments, &s)
	r.pend.files[of] = true
	r.mu.Unlock()
	return nil
}

// flush writes the buffered frames as one fragment with one write().
// nextPTS is the PTS of the frame after them (0: estimate the last duration).
func (r *Recorder) flush(nextPTS time.Duration) {
	if len(r.frag) == 0 || r.cur == nil {
		r.frag = r.frag[:0]
		return
	}
	first := r.frag[0]
	samples := make([]*fmp4.Sample, len(r.frag))
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
		s, err := fmp4.NewSampleH264(0, au.NALUs)
		if err != nil {
			r.log.Error("cannot pack a frame; dropping the fragment", "err", err)
			r.frag = r.frag[:0]
			return
		}
		s.Duration = uint32((d*timescale + time.Second/2) / time.Second) // rounded: 66.67 ms is 6000 ticks, not 5999
		s.IsNonSyncSample = !au.Key
		samples[i] = s
	}
	r.seq++
	part := fmp4.Part{SequenceNumber: r.seq, Tracks: []*fmp4.PartTrack{{
		ID: 1, BaseTime: uint64((first.PTS - r.cur.basePTS) * timescale / time.Second), Samples: samples}}}
	r.buf.Reset()
	if err := part.Marshal(&r.buf); err != nil {
		r.log.Error("cannot marshal a fragment", "err", err)
		r.frag = r.frag[:0]
		return
	}
	n, err := r.cur.file.f.Write(r.buf.Bytes())
	if err != nil {
		r.log.Error("segment write failed; abandoning the segment", "err", err, "segment", r.cur.seg.ID)
		reason := "write failed: " + err.Error()
		if errors.Is(err, syscall.ENOSPC) {
			reason = "disk full: " + err.Error()
		}
		r.frag = r.frag[:0]
		r.closeFile()
		r.mu.Lock()
		s := *r.cur.seg
		s.Status = SegAbandoned
		r.pend.segments = append(r.pend.segments, &s)
		r.pend.events = append(r.pend.events, event{at: first.Wall, reason: reason})
		r.mu.Unlock()
		r.cur = nil
		return
	}
	r.s.bw.total.Add(int64(n))
	fr := fragment{StartNs: first.Wall.UnixNano(), Segment: r.cur.seg.ID, Offset: r.cur.offset, Length: uint32(n), DurNs: durNs, Key: first.Key}
	r.cur.offset += int64(n)
	r.cur.seg.Bytes = r.cur.offset
	r.cur.seg.EndNs = fr.StartNs + durNs
	r.mu.Lock()
	r.pend.fragments = append(r.pend.fragments, fr)
	r.pend.files[r.cur.file] = true
	r.mu.Unlock()
	r.frag = r.frag[:0]
}

// closeSegment fsyncs and closes the open segment and records it closed.
func (r *Recorder) closeSegment() {
	if r.cur == nil {
		return
	}
	if err := r.closeFile(); err != nil {
		r.log.Error("fsync at segment close failed; abandoning its unsynced footage", "err", err)
		r.abandon(r.cur.seg.ID)
	}
	s := *r.cur.seg
	s.Status = SegClosed
	r.mu.Lock()
	r.pend.segments = append(r.pend.segments, &s)
	r.mu.Unlock()
	r.cur = nil
	r.firstSeg = false
}

func (r *Recorder) closeFile() error {
	r.fileMu.Lock()
	defer r.fileMu.Unlock()
	of := r.cur.file
	if of.closed {
		return nil
	}
	err := of.f.Sync()
	cerr := of.f.Close()
	of.closed = true
	return errors.Join(err, cerr)
}
