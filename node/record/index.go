package record

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// This file reads and folds the per-GOP index: "f" keys of open segments and
// "g" tables of closed ones (see schema.go), merged into one time-ordered
// sequence of fragments per camera.

// segInit returns the init size of a segment (GOP tables count offsets from it).
func (s *Store) segInit(cam string, id uint64) int64 {
	v, ok, err := s.get(segmentKey(cam, id))
	if err != nil || !ok {
		return 0
	}
	seg, err := decodeSegment(v)
	if err != nil {
		return 0
	}
	return seg.InitBytes
}

// tableCursor walks the fragments of a camera's GOP tables in time order.
type tableCursor struct {
	s    *Store
	cam  string
	it   *pebble.Iterator
	ok   bool
	buf  []fragment
	i    int
	err  error
	init map[uint64]int64
}

func (c *tableCursor) load() {
	c.buf, c.i = c.buf[:0], 0
	for c.ok && len(c.buf) == 0 {
		// The table's first entry carries the segment id; the init size
		// comes from the segment record (cached per segment).
		id, _ := tableSegment(c.it.Value())
		ib, ok := c.init[id]
		if !ok {
			ib = c.s.segInit(c.cam, id)
			c.init[id] = ib
		}
		c.buf, c.err = decodeTable(c.buf, c.it.Key(), c.it.Value(), ib)
		if c.err != nil {
			c.ok = false
			return
		}
		c.ok = c.it.Next()
	}
}

func (c *tableCursor) peek() (fragment, bool) {
	if c.i >= len(c.buf) {
		c.load()
		if c.i >= len(c.buf) {
			return fragment{}, false
		}
	}
	return c.buf[c.i], true
}

// tableSegment reads the segment id from a table value.
func tableSegment(v []byte) (uint64, bool) {
	var x [2]uint64
	for i := range x {
		n := 0
		x[i], n = uvarint(v)
		if n <= 0 {
			return 0, false
		}
		v = v[n:]
	}
	return x[1], true
}

// fragments calls fn for the camera's fragments that overlap [from,to), in
// time order, until fn returns false.
func (s *Store) fragments(cam string, from, to time.Time, fn func(fragment) bool) error {
	glo, ghi := camBounds(prefixTable, cam)
	git, err := s.db.NewIter(&pebble.IterOptions{LowerBound: glo, UpperBound: ghi})
	if err != nil {
		return err
	}
	defer git.Close()
	flo, fhi := camBounds(prefixFragment, cam)
	fit, err := s.db.NewIter(&pebble.IterOptions{LowerBound: flo, UpperBound: fhi})
	if err != nil {
		return err
	}
	defer fit.Close()

	// Tables: start at the segment containing from.
	tc := &tableCursor{s: s, cam: cam, it: git, init: map[uint64]int64{}}
	if tc.ok = git.SeekLT(tableKey(cam, from.UnixNano()+1)); !tc.ok {
		tc.ok = git.First()
	}
	fok := fit.SeekLT(fragmentKey(cam, from.Add(time.Nanosecond)))
	if !fok {
		fok = fit.First()
	}
	var ff fragment
	if fok {
		if ff, err = decodeFragment(fit.Key(), fit.Value()); err != nil {
			return err
		}
	}
	for {
		tf, tok := tc.peek()
		if tc.err != nil {
			return tc.err
		}
		var f fragment
		switch {
		case tok && (!fok || tf.StartNs <= ff.StartNs):
			f = tf
			tc.i++
		case fok:
			f = ff
			if fok = fit.Next(); fok {
				if ff, err = decodeFragment(fit.Key(), fit.Value()); err != nil {
					return err
				}
			}
		default:
			return fit.Error()
		}
		if !f.start().Before(to) {
			// f is the earlier of both heads: nothing later overlaps.
			return fit.Error()
		}
		if !f.end().After(from) {
			continue
		}
		if !fn(f) {
			return nil
		}
	}
}

// lastFragmentAtOrBefore returns the newest fragment starting at or before t
// for which ok(f) holds, looking back across both index kinds.
func (s *Store) lastFragmentAtOrBefore(cam string, t time.Time, want func(fragment) bool) (fragment, bool) {
	var best fragment
	found := false
	// Open segments' keys.
	flo, fhi := camBounds(prefixFragment, cam)
	if it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: flo, UpperBound: fhi}); err == nil {
		for ok := it.SeekLT(fragmentKey(cam, t.Add(time.Nanosecond))); ok; ok = it.Prev() {
			f, err := decodeFragment(it.Key(), it.Value())
			if err != nil {
				break
			}
			if want(f) {
				best, found = f, true
				break
			}
		}
		it.Close()
	}
	// Closed segments' tables, newest first, stopping at the first table
	// older than a fragment already found.
	glo, ghi := camBounds(prefixTable, cam)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: glo, UpperBound: ghi})
	if err != nil {
		return best, found
	}
	defer it.Close()
	var buf []fragment
	for ok := it.SeekLT(tableKey(cam, t.UnixNano()+1)); ok; ok = it.Prev() {
		if found && int64(keyUint(it.Key())) < best.StartNs {
			break
		}
		id, _ := tableSegment(it.Value())
		buf, err = decodeTable(buf[:0], it.Key(), it.Value(), s.segInit(cam, id))
		if err != nil {
			break
		}
		for i := len(buf) - 1; i >= 0; i-- {
			if f := buf[i]; !f.start().After(t) && want(f) {
				if !found || f.StartNs > best.StartNs {
					best, found = f, true
				}
				break
			}
		}
		if found {
			break
		}
	}
	return best, found
}

// keyframeAtOrBefore returns the start of the last keyframe fragment that
// starts at or before t (however long the camera's GOP), or t itself if
// there is none: playback and export start there.
func (s *Store) keyframeAtOrBefore(cam string, t time.Time) time.Time {
	if f, ok := s.lastFragmentAtOrBefore(cam, t, func(f fragment) bool { return f.Key }); ok {
		return f.start()
	}
	return t
}

// RecordedUntil is the end of the newest durable footage of a camera.
func (s *Store) RecordedUntil(cameraID string) (time.Time, bool) {
	f, ok := s.lastFragmentAtOrBefore(cameraID, time.Unix(0, 1<<62), func(fragment) bool { return true })
	if !ok {
		return time.Time{}, false
	}
	return f.end(), true
}

// compact folds the "f" keys of a segment that is no longer open into its
// GOP table, in one synced batch.
func (s *Store) compact(seg *segment) error {
	lo, hi := camBounds(prefixFragment, seg.Camera)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	var frags []fragment
	for ok := it.SeekGE(fragmentKey(seg.Camera, time.Unix(0, seg.StartNs))); ok; ok = it.Next() {
		f, err := decodeFragment(it.Key(), it.Value())
		if err != nil {
			it.Close()
			return err
		}
		if f.Segment != seg.ID {
			if f.StartNs > seg.EndNs {
				break
			}
			continue
		}
		frags = append(frags, f)
		_ = b.Delete(it.Key(), nil)
	}
	if err := it.Close(); err != nil {
		return err
	}
	if len(frags) == 0 {
		return nil
	}
	_ = b.Set(tableKey(seg.Camera, seg.StartNs), encodeTable(seg.StartNs, seg.InitBytes, frags), nil)
	return b.Commit(pebble.Sync)
}

// compactAll folds every closed segment that still has "f" keys (after a
// crash between a segment's close and its compaction, or an index written by
// schema version 1).
func (s *Store) compactAll() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixFragment}, UpperBound: []byte{prefixFragment + 1}})
	if err != nil {
		return err
	}
	type ref struct {
		cam string
		id  uint64
	}
	var todo []ref
	seen := map[ref]bool{}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		cam := string(k[1 : len(k)-9])
		f, err := decodeFragment(k, it.Value())
		if err != nil {
			continue
		}
		r := ref{cam, f.Segment}
		if !seen[r] {
			seen[r] = true
			todo = append(todo, r)
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, r := range todo {
		v, ok, err := s.get(segmentKey(r.cam, r.id))
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		seg, err := decodeSegment(v)
		if err != nil {
			return err
		}
		if seg.Status == SegOpen {
			continue
		}
		if err := s.compact(seg); err != nil {
			return fmt.Errorf("record: fold the GOPs of segment %d into a table: %w", seg.ID, err)
		}
	}
	return nil
}

// paramsHash names a track's parameter sets.
func paramsHash(p Params) ([8]byte, []byte) {
	b, _ := json.Marshal(p)
	sum := sha256.Sum256(b)
	var h [8]byte
	copy(h[:], sum[:8])
	return h, b
}

// ParamsOf returns the parameter sets stored under a segment's hash.
func (s *Store) paramsOf(hexHash string) (Params, bool) {
	var h [8]byte
	if n, err := hex.Decode(h[:], []byte(hexHash)); err != nil || n != 8 {
		return Params{}, false
	}
	v, ok, err := s.get(paramsKey(h))
	if err != nil || !ok {
		return Params{}, false
	}
	var p Params
	if json.Unmarshal(v, &p) != nil {
		return Params{}, false
	}
	return p, true
}
