// Package record is the node's recording engine: fMP4 segment files (one per
// camera per segment, one fragment per GOP) and an index in Pebble that never
// points at bytes that are not fsynced. See DESIGN.md.
package record

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ronda-jakarta/ronda/internal/manifest"

	"github.com/ronda-jakarta/ronda/internal/pebbleutil"
	"github.com/ronda-jakarta/ronda/node/media"
)

// Options configure the store.
type Options struct {
	SegmentDuration time.Duration // default 5m; rotate at the first keyframe after the boundary
	SyncInterval    time.Duration // default 2s: fdatasync written files, then commit their index entries
	MaxFragment     time.Duration // default 2s: a longer GOP is cut into several fragments
	QueueFrames     int           // default 512: per-camera queue between ingest and writer
	Retention       Retention
	Logger          *slog.Logger
	Now             func() time.Time
}

// ErrNoRecordings says there is no footage in a range.
var ErrNoRecordings = errors.New("no recordings of this camera in that time range; GET …/recordings shows what exists")

// Span is a recorded interval.
type Span struct{ Start, End time.Time }

// Gap is an interval without footage.
type Gap struct {
	Start, End time.Time
	Reason     string // one of the Reason* codes
	Detail     string // what exactly happened, for a person
}

// Store owns the index and the segment files.
type Store struct {
	opts    Options
	log     *slog.Logger
	db      *pebble.DB
	segDir  string
	nextSeg uint64

	mu        sync.Mutex
	recorders map[string]*Recorder
	subs      []func(cameraID string, start, end time.Time)
	manSubs   []ManifestSubscriber
	recovered []Closed // segments recovered at open, for manifest subscribers
	alarm     string
	bw        bandwidth

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open opens (or creates) a store in dir, recovers segments left open by a
// crash, and starts the sync loop.
func Open(dir string, opts Options) (*Store, error) {
	if opts.SegmentDuration <= 0 {
		opts.SegmentDuration = 5 * time.Minute
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = 2 * time.Second
	}
	if opts.MaxFragment <= 0 {
		opts.MaxFragment = 2 * time.Second
	}
	if opts.QueueFrames <= 0 {
		opts.QueueFrames = 512
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Retention.Interval <= 0 {
		opts.Retention.Interval = 30 * time.Second
	}
	if opts.Retention.Headroom <= 0 {
		opts.Retention.Headroom = time.Hour
	}
	if opts.Retention.Reserve == 0 {
		opts.Retention.Reserve = 1 << 30
	}
	if opts.Retention.FreeSpace == nil {
		opts.Retention.FreeSpace = statfsFree(filepath.Join(dir, "segments"))
	}
	s := &Store{opts: opts, log: opts.Logger, segDir: filepath.Join(dir, "segments"),
		recorders: map[string]*Recorder{}, stop: make(chan struct{})}
	if err := os.MkdirAll(s.segDir, 0o750); err != nil {
		return nil, err
	}
	db, err := pebble.Open(filepath.Join(dir, "index"), &pebble.Options{Logger: pebbleutil.NewLogger(opts.Logger)})
	if err != nil {
		return nil, fmt.Errorf("record: open index: %w", err)
	}
	s.db = db
	if err := s.checkVersion(); err != nil {
		db.Close()
		return nil, err
	}
	if v, ok, err := s.get(keyNextSeg); err != nil {
		db.Close()
		return nil, err
	} else if ok {
		s.nextSeg = binary.BigEndian.Uint64(v)
	} else {
		s.nextSeg = 1
	}
	if err := s.recover(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.compactAll(); err != nil {
		db.Close()
		return nil, err
	}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.syncLoop() }()
	go func() { defer s.wg.Done(); s.retentionLoop() }()
	return s, nil
}

func (s *Store) checkVersion() error {
	v, ok, err := s.get(keyVersion)
	if err != nil {
		return err
	}
	if !ok {
		return s.db.Set(keyVersion, []byte{schemaVersion}, pebble.Sync)
	}
	if len(v) == 1 && v[0] == 1 {
		// Version 1 had no GOP tables: Open folds closed segments
		// (compactAll) before anything reads the index.
		s.log.Info("upgrading the recording index from schema 1 to 2 (GOP tables)")
		return s.db.Set(keyVersion, []byte{schemaVersion}, pebble.Sync)
	}
	if len(v) != 1 || v[0] != schemaVersion {
		return fmt.Errorf("record: index schema version %v; this build reads %d", v, schemaVersion)
	}
	return nil
}

func (s *Store) get(k []byte) ([]byte, bool, error) { return pebbleutil.Get(s.db, k) }

// allocSegment returns the next segment id (persisted with the next commit;
// ids never repeat because recovery adopts files with higher ids).
func (s *Store) allocSegment() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextSeg
	s.nextSeg++
	return id
}

// Recorder returns the camera's recorder (a media.Consumer), creating it.
func (s *Store) Recorder(cameraID string) media.Consumer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.recorders[cameraID]; ok {
		return r
	}
	r := newRecorder(s, cameraID)
	s.recorders[cameraID] = r
	s.wg.Add(1)
	go func() { defer s.wg.Done(); r.run() }()
	return r
}

// SubscribeCoverage registers fn, called after each synced index commit with
// the newly durable range of each camera.
func (s *Store) SubscribeCoverage(fn func(cameraID string, start, end time.Time)) {
	s.mu.Lock()
	s.subs = append(s.subs, fn)
	rec := append([]Closed(nil), s.recovered...)
	s.mu.Unlock()
	// Footage recovered at open (after a crash) is reported too: part of it
	// became durable after the last report before the crash, or was only
	// in the file's tail. Reporting a span again is harmless (spans merge).
	for _, c := range rec {
		if c.Segment != nil && c.Segment.End.After(c.Segment.Start) {
			fn(c.Segment.Camera, c.Segment.Start, c.Segment.End)
		}
	}
}

// SegmentInfo is a closed segment as the node reports it to the hub.
type SegmentInfo struct {
	Camera     string
	ID         uint64
	Start, End time.Time
	Bytes      int64
	SHA256     []byte
}

// Event is why a camera's recording stopped at a moment.
type Event struct {
	Camera string
	At     time.Time
	Reason string // a Reason* code
	Detail string
}

// Closed is a segment closed (or recovered) and the event that came with it.
type Closed struct {
	Segment *SegmentInfo
	Event   *Event
}

// ManifestSubscriber receives closed segments and gap events after they are
// durable in the index, in order.
type ManifestSubscriber struct {
	Segment func(SegmentInfo)
	Event   func(Event)
}

func (seg *segment) public() *SegmentInfo {
	if seg.Status != SegClosed && seg.Status != SegRecovered {
		return nil
	}
	sum, err := hex.DecodeString(seg.SHA256)
	if err != nil || len(sum) != 32 {
		return nil
	}
	return &SegmentInfo{Camera: seg.Camera, ID: seg.ID, Start: time.Unix(0, seg.StartNs), End: time.Unix(0, seg.EndNs), Bytes: seg.Bytes, SHA256: sum}
}

// SubscribeManifest registers sub. Segments recovered when the store opened
// (after a crash) are delivered at once, then every segment closed and every
// gap event after its index commit.
func (s *Store) SubscribeManifest(sub ManifestSubscriber) {
	s.mu.Lock()
	s.manSubs = append(s.manSubs, sub)
	rec := append([]Closed(nil), s.recovered...)
	s.mu.Unlock()
	for _, c := range rec {
		if c.Segment != nil && sub.Segment != nil {
			sub.Segment(*c.Segment)
		}
		if c.Event != nil && sub.Event != nil {
			sub.Event(*c.Event)
		}
	}
}

// DayManifests folds, per UTC day, the camera's closed and recovered
// segments that started in [from,to), in segment order (internal/manifest):
// the hash the hub holds for the day, as long as retention has not deleted
// any of the day's segments.
func (s *Store) DayManifests(cameraID string, from, to time.Time) (map[time.Time][]byte, map[time.Time]int, error) {
	sums, counts := map[time.Time][]byte{}, map[time.Time]int{}
	lo, hi := camBounds(prefixSegment, cameraID)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		seg, err := decodeSegment(it.Value())
		if err != nil {
			return nil, nil, err
		}
		pub := seg.public()
		if pub == nil || seg.StartNs < from.UnixNano() || seg.StartNs >= to.UnixNano() {
			continue
		}
		day := time.Unix(0, seg.StartNs).UTC().Truncate(24 * time.Hour)
		sums[day] = manifest.Chain(sums[day], pub.ID, seg.StartNs, seg.EndNs, seg.Bytes, pub.SHA256)
		counts[day]++
	}
	return sums, counts, it.Error()
}

func (s *Store) syncLoop() {
	t := time.NewTicker(s.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.syncOnce()
		}
	}
}

// syncOnce is the durability step: fdatasync every file written since the
// last sync, and only then commit the index entries of what was written, in
// one batch with pebble.Sync. A file whose fsync fails is abandoned.
func (s *Store) syncOnce() {
	s.mu.Lock()
	recs := make([]*Recorder, 0, len(s.recorders))
	for _, r := range s.recorders {
		recs = append(recs, r)
	}
	next := s.nextSeg
	s.mu.Unlock()

	b := s.db.NewBatch()
	defer b.Close()
	type cover struct {
		cam        string
		start, end time.Time
	}
	var covers []cover
	var closed []*segment
	var events []Event
	for _, r := range recs {
		p := r.takePending()
		if p.empty() {
			continue
		}
		if bad := p.sync(); bad != nil {
			for id, err := range bad {
				s.log.Error("fsync failed: abandoning the segment; its footage since the last sync is not indexed",
					"camera", r.cam, "segment", id, "err", err)
			}
			p.abandon(bad)
		}
		for _, seg := range p.segments {
			_ = b.Set(segmentKey(r.cam, seg.ID), encodeSegment(seg), nil)
			_ = b.Set(orderKey(seg.ID), []byte(r.cam), nil)
			if seg.Status != SegOpen {
				closed = append(closed, seg)
			}
		}
		for k, v := range p.params {
			_ = b.Set([]byte(k), v, nil)
		}
		for _, f := range p.fragments {
			_ = b.Set(fragmentKey(r.cam, f.start()), encodeFragment(f), nil)
		}
		for _, e := range p.events {
			_ = b.Set(eventKey(r.cam, e.at), []byte(e.reason), nil)
			code, detail := splitReason(e.reason)
			events = append(events, Event{Camera: r.cam, At: e.at, Reason: code, Detail: detail})
		}
		if len(p.fragments) > 0 {
			covers = append(covers, cover{r.cam, p.fragments[0].start(), p.fragments[len(p.fragments)-1].end()})
		}
	}
	_ = b.Set(keyNextSeg, binary.BigEndian.AppendUint64(nil, next), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		s.log.Error("index commit failed; footage of this interval is on disk but not indexed (recovery adopts it at restart)", "err", err)
		return
	}
	for _, seg := range closed {
		if err := s.compact(seg); err != nil {
			s.log.Error("could not fold a closed segment's GOPs into a table (retried at restart)", "segment", seg.ID, "err", err)
		}
	}
	s.mu.Lock()
	subs := append([]func(string, time.Time, time.Time){}, s.subs...)
	manSubs := append([]ManifestSubscriber(nil), s.manSubs...)
	s.mu.Unlock()
	for _, sub := range manSubs {
		for _, seg := range closed {
			if pub := seg.public(); pub != nil && sub.Segment != nil {
				sub.Segment(*pub)
			}
		}
		for _, e := range events {
			if sub.Event != nil {
				sub.Event(e)
			}
		}
	}
	for _, c := range covers {
		for _, fn := range subs {
			fn(c.cam, c.start, c.end)
		}
	}
}

// Close stops the recorders (closing their segments), syncs and closes the index.
func (s *Store) Close() error {
	s.mu.Lock()
	recs := make([]*Recorder, 0, len(s.recorders))
	for _, r := range s.recorders {
		recs = append(recs, r)
	}
	s.mu.Unlock()
	for _, r := range recs {
		r.shutdown()
	}
	close(s.stop)
	s.wg.Wait()
	s.syncOnce()
	return s.db.Close()
}

// mergeGap: fragments closer than this are one span.
const mergeGap = 500 * time.Millisecond

// Spans returns the recorded spans of [from,to) and the gaps between them
// with their recorded reasons.
func (s *Store) Spans(cameraID string, from, to time.Time) ([]Span, []Gap, error) {
	var spans []Span
	err := s.fragments(cameraID, from, to, func(f fragment) bool {
		st, en := maxTime(f.start(), from), minTime(f.end(), to)
		if n := len(spans); n > 0 && st.Sub(spans[n-1].End) <= mergeGap {
			if en.After(spans[n-1].End) {
				spans[n-1].End = en
			}
			return true
		}
		spans = append(spans, Span{Start: st, End: en})
		return true
	})
	if err != nil {
		return nil, nil, err
	}
	var gaps []Gap
	var wm time.Time // footage before it was deleted by retention
	if v, ok, err := s.get(deletedKey(cameraID)); err == nil && ok && len(v) == 8 {
		wm = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
	}
	cursor := from
	for _, sp := range spans {
		if sp.Start.Sub(cursor) > mergeGap {
			gaps = s.gapsIn(gaps, cameraID, cursor, sp.Start, wm)
		}
		cursor = sp.End
	}
	if to.Sub(cursor) > mergeGap && cursor.Before(s.opts.Now()) {
		end := minTime(to, s.opts.Now())
		if end.Sub(cursor) > mergeGap {
			gaps = s.gapsIn(gaps, cameraID, cursor, end, wm)
		}
	}
	if len(spans) == 0 {
		return nil, gaps, ErrNoRecordings
	}
	return spans, gaps, nil
}

// gapsIn explains a hole [a,b) in a camera's footage with the events in it:
// each event (why the stream stopped, the disk failed or filled, the node
// went down, its clock stepped, retention deleted a segment) starts a part
// with its reason, until the next one. The first part's reason is an event
// at its start (within 5 s), else "deleted" before the retention watermark,
// else "not_recorded". Neighbouring parts with the same reason are merged.
func (s *Store) gapsIn(out []Gap, cam string, a, b, wm time.Time) []Gap {
	add := func(g Gap) {
		if !g.End.After(g.Start) {
			return
		}
		if n := len(out); n > 0 && out[n-1].End.Equal(g.Start) && out[n-1].Reason == g.Reason {
			out[n-1].End = g.End
			return
		}
		out = append(out, g)
	}
	cur := Gap{Start: a, Reason: ReasonNotRecorded, Detail: "no event explains it: the node was not running, or the camera was not configured"}
	if a.Before(wm) {
		cur.Reason, cur.Detail = ReasonDeleted, deletedDetail
	}
	lo, hi := camBounds(prefixEvent, cam)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		cur.End = b
		add(cur)
		return out
	}
	defer it.Close()
	for ok := it.SeekGE(eventKey(cam, a.Add(-5*time.Second))); ok; ok = it.Next() {
		at := time.Unix(0, int64(keyUint(it.Key())))
		if !at.Before(b) {
			break
		}
		code, detail := splitReason(string(it.Value()))
		if !at.After(a) {
			cur.Reason, cur.Detail = code, detail // the event that opened this hole
			continue
		}
		cur.End = at
		add(cur)
		cur = Gap{Start: at, Reason: code, Detail: detail}
	}
	cur.End = b
	add(cur)
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// History calls seg for each closed (or recovered) segment of the camera in
// segment order, then ev for each of its recorded events in time order:
// what the node reported to the hub as it happened, to report it again to a
// hub that lost it (restored from an older backup).
func (s *Store) History(cameraID string, seg func(SegmentInfo) error, ev func(Event) error) error {
	lo, hi := camBounds(prefixSegment, cameraID)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		sg, err := decodeSegment(it.Value())
		if err != nil {
			it.Close()
			return err
		}
		if pub := sg.public(); pub != nil {
			if err := seg(*pub); err != nil {
				it.Close()
				return err
			}
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	lo, hi = camBounds(prefixEvent, cameraID)
	it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		code, detail := splitReason(string(it.Value()))
		if err := ev(Event{Camera: cameraID, At: time.Unix(0, int64(keyUint(it.Key()))), Reason: code, Detail: detail}); err != nil {
			return err
		}
	}
	return it.Error()
}
