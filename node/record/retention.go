package record

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Retention configures what is deleted, and when. Deletion is driven by the
// index (oldest segment id first), never by walking directories.
type Retention struct {
	MaxAge    time.Duration            // 0: keep until space runs out
	PerCamera map[string]time.Duration // per-camera max age, overriding MaxAge
	Reserve   uint64                   // bytes always kept free, on top of Headroom of writes; default 1 GiB
	Headroom  time.Duration            // this long of the measured write rate is kept free too; default 1 h
	Interval  time.Duration            // default 30 s
	// FreeSpace reports free bytes on the recording filesystem (default statfs).
	FreeSpace func() (uint64, error)
}

// written counts bytes appended to segment files (all cameras), for the
// measured write bandwidth behind the free-space floor.
type bandwidth struct {
	total    atomic.Int64
	lastAt   time.Time
	lastTot  int64
	rate     float64       // bytes/s, smoothed
	rateBits atomic.Uint64 // rate, for readers outside the retention loop
}

func (b *bandwidth) sample(now time.Time) float64 {
	tot := b.total.Load()
	if !b.lastAt.IsZero() {
		if dt := now.Sub(b.lastAt).Seconds(); dt > 0 {
			r := float64(tot-b.lastTot) / dt
			if b.rate == 0 {
				b.rate = r
			} else {
				b.rate = 0.8*b.rate + 0.2*r
			}
		}
	}
	b.lastAt, b.lastTot = now, tot
	b.rateBits.Store(math.Float64bits(b.rate))
	return b.rate
}

// Storage is the recording filesystem's state.
type Storage struct {
	FreeBytes    uint64
	WriteBytesPS float64 // bytes written per second (smoothed over retention passes)
	ReserveBytes uint64  // retention keeps this free (and Headroom of writes)
}

// Storage reports free space, the write rate and the reserve.
func (s *Store) Storage() (Storage, error) {
	free, err := s.opts.Retention.FreeSpace()
	rate := math.Float64frombits(s.bw.rateBits.Load())
	return Storage{FreeBytes: free, WriteBytesPS: rate,
		ReserveBytes: s.opts.Retention.Reserve + uint64(rate*s.opts.Retention.Headroom.Seconds())}, err
}

func statfsFree(dir string) func() (uint64, error) {
	return func() (uint64, error) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			return 0, err
		}
		return st.Bavail * uint64(st.Bsize), nil
	}
}

func (s *Store) retentionLoop() {
	t := time.NewTicker(s.opts.Retention.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if _, err := s.EnforceRetention(); err != nil {
				s.log.Error("retention pass failed", "err", err)
			}
		}
	}
}

// Alarm is non-empty while retention cannot keep the free-space floor
// without touching held footage.
func (s *Store) Alarm() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.alarm
}

func (s *Store) setAlarm(a string) {
	s.mu.Lock()
	changed := s.alarm != a
	s.alarm = a
	s.mu.Unlock()
	if changed && a != "" {
		s.log.Error("retention alarm", "alarm", a)
	}
}

// EnforceRetention runs one retention pass: segments past their camera's max
// age go first, then the oldest segments until free space is back above the
// floor (the reserve plus one hour of measured writes). Footage under an
// active hold is never deleted; if only held footage is left, the alarm is
// raised. It returns the number of segments deleted.
func (s *Store) EnforceRetention() (int, error) {
	now := s.opts.Now()
	ret := s.opts.Retention
	holds, err := s.activeHolds(now)
	if err != nil {
		return 0, err
	}
	deleted := 0
	// 1. Max age. Segment ids follow start time, so the walk stops at the
	// first segment younger than the shortest limit.
	minLimit := ret.MaxAge
	for _, l := range ret.PerCamera {
		if l > 0 && (minLimit <= 0 || l < minLimit) {
			minLimit = l
		}
	}
	if minLimit > 0 {
		horizon := now.Add(-minLimit).UnixNano()
		if err := s.eachSegmentOldestFirst(func(seg *segment) (bool, error) {
			if seg.StartNs >= horizon {
				return false, nil
			}
			limit := ret.MaxAge
			if l, ok := ret.PerCamera[seg.Camera]; ok {
				limit = l
			}
			if limit <= 0 || seg.Status == SegOpen || !time.Unix(0, seg.EndNs).Before(now.Add(-limit)) || held(holds, seg) {
				return true, nil
			}
			if err := s.deleteSegment(seg); err != nil {
				return false, err
			}
			deleted++
			return true, nil
		}); err != nil {
			return deleted, err
		}
	}
	// 2. Free-space floor: the oldest unheld footage goes until free space
	// is back above the floor. When holds make the floor unreachable, only
	// enough goes to keep an emergency margin (a sixth of the headroom of
	// writes, ten minutes by default, plus 64 MiB), so the newest unheld footage keeps rotating instead of all
	// of it being deleted, and the alarm says so.
	free, err := ret.FreeSpace()
	if err != nil {
		return deleted, fmt.Errorf("record: free space of %s: %w", s.segDir, err)
	}
	rate := s.bw.sample(now)
	floor := ret.Reserve + uint64(rate*ret.Headroom.Seconds())
	if free >= floor {
		s.setAlarm("")
		return deleted, nil
	}
	heldBytes, candBytes := uint64(0), uint64(0)
	var cands []*segment
	err = s.eachSegmentOldestFirst(func(seg *segment) (bool, error) {
		if free+candBytes >= floor {
			return false, nil
		}
		if seg.Status == SegOpen {
			return true, nil
		}
		if held(holds, seg) {
			heldBytes += uint64(seg.Bytes)
			return true, nil
		}
		cands = append(cands, seg)
		candBytes += uint64(seg.Bytes)
		return true, nil
	})
	if err != nil {
		return deleted, err
	}
	target := floor
	if free+candBytes < floor {
		target = min(floor, 64<<20+uint64(rate*ret.Headroom.Seconds()/6))
	}
	for _, seg := range cands {
		if free >= target {
			break
		}
		if err := s.deleteSegment(seg); err != nil {
			return deleted, err
		}
		deleted++
		free += uint64(seg.Bytes)
	}
	if free < floor {
		s.setAlarm(fmt.Sprintf("free space %d MiB is below the floor of %d MiB: %d MiB of footage is held, so only the newest unheld footage is kept, rotating; add disk or release holds",
			free>>20, floor>>20, heldBytes>>20))
	} else {
		s.setAlarm("")
	}
	if deleted > 0 {
		s.log.Info("retention deleted footage", "segments", deleted, "free_mib", free>>20, "floor_mib", floor>>20)
	}
	return deleted, nil
}

// eachSegmentOldestFirst visits segments in id order (ids are allocated in
// time order across all cameras).
func (s *Store) eachSegmentOldestFirst(fn func(*segment) (bool, error)) error {
	// The iterator reads a consistent view; deleting behind it is safe.
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixOrder}, UpperBound: []byte{prefixOrder + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		v, found, err := s.get(segmentKey(string(it.Value()), keyUint(it.Key())))
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		seg, err := decodeSegment(v)
		if err != nil {
			return err
		}
		if cont, err := fn(seg); err != nil || !cont {
			return err
		}
	}
	return it.Error()
}

// deleteSegment removes a segment from the index first (synced), then its
// file: the index never points at bytes that are gone.
func (s *Store) deleteSegment(seg *segment) error {
	b := s.db.NewBatch()
	defer b.Close()
	lo, hi := camBounds(prefixFragment, seg.Camera)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.SeekGE(fragmentKey(seg.Camera, time.Unix(0, seg.StartNs))); ok; ok = it.Next() {
		f, err := decodeFragment(it.Key(), it.Value())
		if err != nil || f.Segment != seg.ID {
			break
		}
		_ = b.Delete(it.Key(), nil)
	}
	if err := it.Close(); err != nil {
		return err
	}
	// Say why the hole is there: an event at the segment's start, and the
	// watermark (gaps before it were recorded and deleted, not missed).
	// Events more than a week older than the deleted footage go with it.
	if v, ok, err := s.get(deletedKey(seg.Camera)); err != nil {
		return err
	} else if !ok || len(v) != 8 || int64(binary.BigEndian.Uint64(v)) < seg.EndNs {
		_ = b.Set(deletedKey(seg.Camera), binary.BigEndian.AppendUint64(nil, uint64(seg.EndNs)), nil)
	}
	elo, _ := camBounds(prefixEvent, seg.Camera)
	_ = b.DeleteRange(elo, eventKey(seg.Camera, time.Unix(0, seg.StartNs).Add(-7*24*time.Hour)), nil)
	_ = b.Set(eventKey(seg.Camera, time.Unix(0, seg.StartNs)), []byte(ReasonDeleted+": "+deletedDetail), nil)
	_ = b.Delete(tableKey(seg.Camera, seg.StartNs), nil)
	_ = b.Delete(segmentKey(seg.Camera, seg.ID), nil)
	_ = b.Delete(orderKey(seg.ID), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(s.segDir, seg.File)); err != nil && !os.IsNotExist(err) {
		s.log.Warn("segment removed from the index but its file could not be deleted", "file", seg.File, "err", err)
	}
	return nil
}

// PutHold stores a hold and returns its id.
func (s *Store) PutHold(h Hold) (Hold, error) {
	if h.Camera == "" || !h.To.After(h.From) {
		return h, fmt.Errorf("record: a hold needs a camera and a range with to after from")
	}
	if h.Reason == "" {
		return h, fmt.Errorf("record: a hold needs a reason (e.g. a report or case number)")
	}
	if h.Origin != "" {
		// Placed at the hub: once, however often the directive arrives.
		if hs, err := s.Holds(h.Camera); err != nil {
			return h, err
		} else if i := slices.IndexFunc(hs, func(x Hold) bool { return x.Origin == h.Origin }); i >= 0 {
			return hs[i], nil
		}
	}
	h.ID = uint64(s.opts.Now().UnixNano())
	if h.Created.IsZero() {
		h.Created = s.opts.Now().UTC()
	}
	raw, _ := json.Marshal(h)
	return h, s.db.Set(holdKey(h.Camera, h.ID), raw, pebble.Sync)
}

// Holds lists a camera's holds ("" lists every camera's).
func (s *Store) Holds(cameraID string) ([]Hold, error) {
	lo, hi := []byte{prefixHold}, []byte{prefixHold + 1}
	if cameraID != "" {
		lo, hi = camBounds(prefixHold, cameraID)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Hold
	for ok := it.First(); ok; ok = it.Next() {
		var h Hold
		if err := json.Unmarshal(it.Value(), &h); err != nil {
			return nil, fmt.Errorf("record: corrupt hold: %w", err)
		}
		out = append(out, h)
	}
	return out, it.Error()
}

// ErrNoSuchHold says a hold to release does not exist.
var ErrNoSuchHold = errors.New("no such hold on this camera; GET …/holds lists them")

// DeleteHoldByOrigin releases the hold the hub placed as origin; releasing
// one that is not there (released before) is not an error.
func (s *Store) DeleteHoldByOrigin(cameraID, origin string) error {
	hs, err := s.Holds(cameraID)
	if err != nil {
		return err
	}
	for _, h := range hs {
		if h.Origin == origin {
			return s.db.Delete(holdKey(cameraID, h.ID), pebble.Sync)
		}
	}
	return nil
}

// DeleteHold releases a hold.
func (s *Store) DeleteHold(cameraID string, id uint64) error {
	if _, ok, err := s.get(holdKey(cameraID, id)); err != nil {
		return err
	} else if !ok {
		return ErrNoSuchHold
	}
	return s.db.Delete(holdKey(cameraID, id), pebble.Sync)
}

func (s *Store) activeHolds(now time.Time) (map[string][]Hold, error) {
	all, err := s.Holds("")
	if err != nil {
		return nil, err
	}
	out := map[string][]Hold{}
	for _, h := range all {
		if h.Expires.IsZero() || h.Expires.After(now) {
			out[h.Camera] = append(out[h.Camera], h)
		}
	}
	return out, nil
}

func held(holds map[string][]Hold, seg *segment) bool {
	for _, h := range holds[seg.Camera] {
		if h.From.UnixNano() < seg.EndNs && h.To.UnixNano() > seg.StartNs {
			return true
		}
	}
	return false
}

// PurgeOlderThan deletes every closed segment that ended more than d ago
// and is under no active hold — an operator freeing space at once, or a
// test putting retention under pressure. It returns how many segments went
// and how many were kept because a hold covers them.
func (s *Store) PurgeOlderThan(d time.Duration) (deleted, heldKept int, err error) {
	now := s.opts.Now()
	holds, err := s.activeHolds(now)
	if err != nil {
		return 0, 0, err
	}
	horizon := now.Add(-d)
	err = s.eachSegmentOldestFirst(func(seg *segment) (bool, error) {
		if !time.Unix(0, seg.StartNs).Before(horizon) {
			return false, nil
		}
		if seg.Status == SegOpen || !time.Unix(0, seg.EndNs).Before(horizon) {
			return true, nil
		}
		if held(holds, seg) {
			heldKept++
			return true, nil
		}
		if err := s.deleteSegment(seg); err != nil {
			return false, err
		}
		deleted++
		return true, nil
	})
	return deleted, heldKept, err
}
