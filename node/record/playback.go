package record

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Media is a camera's footage of [from,to) as one fragmented MP4 whose
// length is known before the first byte, readable at any offset (HTTP Range
// and seeking players).
//
// It is planned from the index alone, plus two reads: the init of the first
// segment and the moof of the last fragment. Whole fragments are copied from
// the segment files as they are, with only the moof's sequence number and
// decode time patched in place (the same size), so the mdat bytes are never
// parsed or re-packed. The output starts at the keyframe at or before from;
// an edit list in the init makes players start showing at from exactly. The
// last fragment is cut at to: its moof is rebuilt with the samples before to
// and its mdat is the matching prefix. A gap in the footage is a jump in
// decode time (players hold the last frame), and Gaps lists them.
type Media struct {
	From, To     time.Time // what the file shows (to may be earlier than asked, see Truncated)
	KeyframeFrom time.Time // where its first fragment starts (the edit list skips to From)
	Size         int64
	Gaps         int    // holes in the footage inside the range
	Truncated    string // why the file ends before the requested to ("" if it does not)

	s      *Store
	cam    string
	pieces []piece
	files  map[uint64]*os.File

	mu     sync.Mutex
	off    int64
	cached int // index of the piece in buf (-1: none)
	buf    []byte
}

// piece is a run of output bytes: literal data, or a fragment from a file.
type piece struct {
	at   int64 // output offset
	n    int64
	data []byte // literal (the init, a rebuilt moof+mdat header)
	seg  uint64 // else file bytes [fileAt, fileAt+n) of this segment ...
	at0  int64
	seq  uint32 // ... with the moof patched: sequence number ...
	base uint64 // ... and decode time (patch true)
	frag bool
}

// OpenPlayback plans the playback of [from,to). Close it when done.
func (s *Store) OpenPlayback(cameraID string, from, to time.Time) (*Media, error) {
	var frags []fragment
	err := s.fragments(cameraID, s.keyframeAtOrBefore(cameraID, from), to, func(f fragment) bool {
		frags = append(frags, f)
		return true
	})
	if err != nil {
		return nil, err
	}
	start := -1
	for i, f := range frags {
		if f.Key {
			start = i // the first keyframe fragment: at or before from, or the first after it
			break
		}
	}
	if start < 0 {
		return nil, ErrNoRecordings
	}
	frags = frags[start:]
	m := &Media{s: s, cam: cameraID, files: map[uint64]*os.File{}, cached: -1, To: to}
	ok := false
	defer func() {
		if !ok {
			m.Close()
		}
	}()

	// One set of parameter sets per file: stop where they change.
	segs := map[uint64]*segment{}
	first, err := m.segment(frags[0].Segment, segs)
	if err != nil {
		return nil, err
	}
	for i, f := range frags {
		sg, err := m.segment(f.Segment, segs)
		if err != nil {
			return nil, err
		}
		if sg.Params != first.Params && sg.Params != "" && first.Params != "" {
			m.To = f.start()
			m.Truncated = fmt.Sprintf("the camera's stream changed (codec or resolution) at %s; request again from there for the rest",
				f.start().UTC().Format(time.RFC3339Nano))
			frags = frags[:i]
			break
		}
	}

	t0 := frags[0].start()
	m.KeyframeFrom = t0
	m.From = from
	if from.Before(t0) {
		m.From = t0 // the footage begins after from
	}
	// The init, with an edit list that skips to From.
	fh, err := m.file(first)
	if err != nil {
		return nil, err
	}
	init := make([]byte, first.InitBytes)
	if _, err := fh.ReadAt(init, 0); err != nil {
		return nil, fmt.Errorf("record: read the init of %s: %w", first.File, err)
	}
	skip := uint64(m.From.Sub(t0) * timescale / time.Second)
	init, err = withEditList(init, skip)
	if err != nil {
		return nil, fmt.Errorf("record: init of %s: %w", first.File, err)
	}
	m.add(piece{data: init})

	for i, f := range frags {
		base := uint64(f.start().Sub(t0) * timescale / time.Second)
		if i > 0 && f.StartNs-(frags[i-1].StartNs+frags[i-1].DurNs) > int64(mergeGap) {
			m.Gaps++
		}
		if f.end().After(m.To) {
			// The last fragment: keep its samples that start before To.
			sg := segs[f.Segment]
			hdr, at, n, err := m.cutFragment(sg, f, uint32(i+1), base)
			if err != nil {
				return nil, err
			}
			if n > 0 {
				m.add(piece{data: hdr})
				m.add(piece{seg: f.Segment, at0: at, n: n})
			}
			break
		}
		m.add(piece{seg: f.Segment, at0: f.Offset, n: int64(f.Length), seq: uint32(i + 1), base: base, frag: true})
	}
	if end := frags[len(frags)-1].end(); end.Before(m.To) && m.Truncated == "" {
		m.To = end // the footage ends before to
	}
	ok = true
	return m, nil
}

func (m *Media) add(p piece) {
	if p.data != nil {
		p.n = int64(len(p.data))
	}
	p.at = m.Size
	m.Size += p.n
	m.pieces = append(m.pieces, p)
}

func (m *Media) segment(id uint64, cache map[uint64]*segment) (*segment, error) {
	if sg := cache[id]; sg != nil {
		return sg, nil
	}
	v, ok, err := m.s.get(segmentKey(m.cam, id))
	if err != nil || !ok {
		return nil, fmt.Errorf("record: segment %d of %s is missing from the index: %v", id, m.cam, err)
	}
	sg, err := decodeSegment(v)
	if err != nil {
		return nil, err
	}
	cache[id] = sg
	return sg, nil
}

func (m *Media) file(sg *segment) (*os.File, error) {
	if f := m.files[sg.ID]; f != nil {
		return f, nil
	}
	f, err := os.Open(filepath.Join(m.s.segDir, sg.File))
	if err != nil {
		return nil, fmt.Errorf("record: segment file of %s: %w", m.cam, err)
	}
	m.files[sg.ID] = f
	return f, nil
}

// cutFragment reads a fragment's moof and returns a rebuilt moof plus mdat
// header for the samples that start before m.To, and the file range of
// those samples (n = 0: none does).
func (m *Media) cutFragment(sg *segment, f fragment, seq uint32, base uint64) (hdr []byte, at, n int64, err error) {
	fh, err := m.file(sg)
	if err != nil {
		return nil, 0, 0, err
	}
	raw := make([]byte, min(int64(f.Length), 64<<10))
	if _, err := fh.ReadAt(raw, f.Offset); err != nil {
		return nil, 0, 0, fmt.Errorf("record: read a fragment of %s: %w", m.cam, err)
	}
	fr, err := parseMoof(raw)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("record: fragment of %s at %d: %w", m.cam, f.Offset, err)
	}
	var kept []sampleEntry
	wall := f.start()
	for _, smp := range fr.samples {
		if !wall.Before(m.To) {
			break
		}
		kept = append(kept, smp)
		n += int64(smp.size)
		wall = wall.Add(time.Duration(smp.dur) * time.Second / timescale)
	}
	if len(kept) == 0 {
		return nil, 0, 0, nil
	}
	hdr = appendMoof(nil, seq, base, kept)
	hdr = box(hdr, int(8+n), "mdat")
	return hdr, f.Offset + int64(fr.mdatPayload), n, nil
}

// Read implements io.Reader.
func (m *Media) Read(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.readAt(p, m.off)
	m.off += int64(n)
	return n, err
}

// Seek implements io.Seeker.
func (m *Media) Seek(offset int64, whence int) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += m.off
	case io.SeekEnd:
		offset += m.Size
	default:
		return 0, errors.New("record: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("record: seek before the start")
	}
	m.off = offset
	return offset, nil
}

func (m *Media) readAt(p []byte, off int64) (int, error) {
	if off >= m.Size {
		return 0, io.EOF
	}
	i := sort.Search(len(m.pieces), func(i int) bool { return m.pieces[i].at+m.pieces[i].n > off })
	pc := &m.pieces[i]
	rel := off - pc.at
	switch {
	case pc.data != nil:
		return copy(p, pc.data[rel:]), nil
	case pc.frag:
		if m.cached != i {
			if err := m.loadFragment(pc); err != nil {
				return 0, err
			}
			m.cached = i
		}
		return copy(p, m.buf[rel:]), nil
	default:
		f := m.files[pc.seg]
		if f == nil {
			var err error
			if f, err = m.openSeg(pc.seg); err != nil {
				return 0, err
			}
		}
		n := min(int64(len(p)), pc.n-rel)
		k, err := f.ReadAt(p[:n], pc.at0+rel)
		if err == io.EOF && int64(k) == n {
			err = nil
		}
		return k, err
	}
}

func (m *Media) openSeg(id uint64) (*os.File, error) {
	sg, err := m.segment(id, map[uint64]*segment{})
	if err != nil {
		return nil, err
	}
	return m.file(sg)
}

// loadFragment reads a whole fragment and patches its sequence number and
// decode time in place.
func (m *Media) loadFragment(pc *piece) error {
	f := m.files[pc.seg]
	if f == nil {
		var err error
		if f, err = m.openSeg(pc.seg); err != nil {
			return err
		}
	}
	if int64(cap(m.buf)) < pc.n {
		m.buf = make([]byte, pc.n)
	}
	m.buf = m.buf[:pc.n]
	if _, err := f.ReadAt(m.buf, pc.at0); err != nil {
		return fmt.Errorf("record: read a fragment of %s at %d: %w", m.cam, pc.at0, err)
	}
	return patchMoof(m.buf, pc.seq, pc.base)
}

// Close releases the segment files.
func (m *Media) Close() error {
	for _, f := range m.files {
		f.Close()
	}
	m.files = map[uint64]*os.File{}
	return nil
}

// WritePlayback writes [from,to) of a camera to w (see Media).
func (s *Store) WritePlayback(ctx context.Context, w io.Writer, cameraID string, from, to time.Time) error {
	m, err := s.OpenPlayback(cameraID, from, to)
	if err != nil {
		return err
	}
	defer m.Close()
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := m.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// --- boxes ---

type sampleEntry struct{ dur, size, flags uint32 }

type parsedMoof struct {
	samples     []sampleEntry
	mdatPayload int // offset of the mdat payload from the moof start
}

// boxAt reads the box header at off in b.
func boxAt(b []byte, off int) (size int, typ string, hdr int, ok bool) {
	if off+8 > len(b) {
		return 0, "", 0, false
	}
	size, typ, hdr = int(binary.BigEndian.Uint32(b[off:])), string(b[off+4:off+8]), 8
	if size == 1 {
		if off+16 > len(b) {
			return 0, "", 0, false
		}
		s64 := binary.BigEndian.Uint64(b[off+8:])
		if s64 > 1<<40 {
			return 0, "", 0, false
		}
		size, hdr = int(s64), 16
	}
	if size < hdr {
		return 0, "", 0, false
	}
	return size, typ, hdr, true
}

var errMoof = errors.New("moof does not parse")

// parseMoof reads the samples of a one-track fragment (defaults in tfhd,
// any trun layout) and where its mdat payload starts.
func parseMoof(b []byte) (parsedMoof, error) {
	var out parsedMoof
	msize, typ, _, ok := boxAt(b, 0)
	if !ok || typ != "moof" || msize > len(b) {
		return out, errMoof
	}
	var defDur, defSize, defFlags uint32
	for off := 8; off < msize; {
		size, typ, _, ok := boxAt(b, off)
		if !ok || off+size > msize {
			return out, errMoof
		}
		if typ == "traf" {
			for c := off + 8; c < off+size; {
				cs, ct, _, ok := boxAt(b, c)
				if !ok || c+cs > off+size || cs < 12 {
					return out, errMoof
				}
				body := b[c+12 : c+cs]
				flags := binary.BigEndian.Uint32(b[c+8:]) & 0xffffff
				switch ct {
				case "tfhd":
					p := 4 // track id
					if flags&0x1 != 0 {
						p += 8
					}
					if flags&0x2 != 0 {
						p += 4
					}
					rd := func() uint32 {
						if p+4 > len(body) {
							return 0
						}
						v := binary.BigEndian.Uint32(body[p:])
						p += 4
						return v
					}
					if flags&0x8 != 0 {
						defDur = rd()
					}
					if flags&0x10 != 0 {
						defSize = rd()
					}
					if flags&0x20 != 0 {
						defFlags = rd()
					}
				case "trun":
					if len(body) < 4 {
						return out, errMoof
					}
					n := int(binary.BigEndian.Uint32(body))
					p := 4
					if flags&0x1 != 0 {
						p += 4
					}
					first, hasFirst := uint32(0), flags&0x4 != 0
					if hasFirst {
						if p+4 > len(body) {
							return out, errMoof
						}
						first = binary.BigEndian.Uint32(body[p:])
						p += 4
					}
					per := 0
					for _, bit := range []uint32{0x100, 0x200, 0x400, 0x800} {
						if flags&bit != 0 {
							per += 4
						}
					}
					if n < 0 || n > (len(body)-p)/max(per, 1) {
						return out, errMoof
					}
					for i := 0; i < n; i++ {
						e := sampleEntry{dur: defDur, size: defSize, flags: defFlags}
						if i == 0 && hasFirst {
							e.flags = first
						}
						if flags&0x100 != 0 {
							e.dur = binary.BigEndian.Uint32(body[p:])
							p += 4
						}
						if flags&0x200 != 0 {
							e.size = binary.BigEndian.Uint32(body[p:])
							p += 4
						}
						if flags&0x400 != 0 {
							e.flags = binary.BigEndian.Uint32(body[p:])
							p += 4
						}
						if flags&0x800 != 0 {
							p += 4 // composition offsets: none in Ronda's recordings (no B-frames are reordered)
						}
						out.samples = append(out.samples, e)
					}
				}
				c += cs
			}
		}
		off += size
	}
	dsize, dtyp, dhdr, ok := boxAt(b, msize)
	if !ok || dtyp != "mdat" {
		return out, errMoof
	}
	_ = dsize
	out.mdatPayload = msize + dhdr
	return out, nil
}

// patchMoof sets a fragment's sequence number and decode time in place.
func patchMoof(b []byte, seq uint32, base uint64) error {
	msize, typ, _, ok := boxAt(b, 0)
	if !ok || typ != "moof" || msize > len(b) {
		return errMoof
	}
	for off := 8; off < msize; {
		size, typ, _, ok := boxAt(b, off)
		if !ok || off+size > msize || size < 16 {
			return errMoof
		}
		switch typ {
		case "mfhd":
			binary.BigEndian.PutUint32(b[off+12:], seq)
		case "traf":
			for c := off + 8; c < off+size; {
				cs, ct, _, ok := boxAt(b, c)
				if !ok || c+cs > off+size || cs < 12 {
					return errMoof
				}
				if ct == "tfdt" {
					if b[c+8] == 1 && cs >= 20 {
						binary.BigEndian.PutUint64(b[c+12:], base)
					} else if cs >= 16 && base <= 0xffffffff {
						binary.BigEndian.PutUint32(b[c+12:], uint32(base))
					} else {
						return errMoof
					}
				}
				c += cs
			}
		}
		off += size
	}
	return nil
}

// withEditList returns the init with an edit list in its track that starts
// presentation skip ticks into the media (the frames before from are decoded
// but not shown). skip 0 returns the init unchanged.
func withEditList(init []byte, skip uint64) ([]byte, error) {
	if skip == 0 {
		return init, nil
	}
	// ftyp, then moov > trak > tkhd: insert edts after tkhd.
	off := 0
	for off < len(init) {
		size, typ, _, ok := boxAt(init, off)
		if !ok || off+size > len(init) {
			return nil, errors.New("init does not parse")
		}
		if typ != "moov" {
			off += size
			continue
		}
		moov := off
		for c := off + 8; c < off+size; {
			cs, ct, _, ok := boxAt(init, c)
			if !ok || c+cs > off+size {
				return nil, errors.New("moov does not parse")
			}
			if ct == "trak" {
				trak := c
				tk, tt, _, ok := boxAt(init, c+8)
				if !ok || tt != "tkhd" {
					return nil, errors.New("trak without tkhd")
				}
				at := c + 8 + tk
				edts := box(nil, 8+36, "edts")
				edts = box(edts, 36, "elst")
				edts = binary.BigEndian.AppendUint32(edts, 1<<24) // version 1
				edts = binary.BigEndian.AppendUint32(edts, 1)     // one entry
				edts = binary.BigEndian.AppendUint64(edts, 0)     // segment duration: the whole (fragmented) track
				edts = binary.BigEndian.AppendUint64(edts, skip)  // media time
				edts = binary.BigEndian.AppendUint32(edts, 1<<16) // rate 1.0
				out := make([]byte, 0, len(init)+len(edts))
				out = append(out, init[:at]...)
				out = append(out, edts...)
				out = append(out, init[at:]...)
				binary.BigEndian.PutUint32(out[moov:], uint32(size+len(edts)))
				binary.BigEndian.PutUint32(out[trak:], uint32(cs+len(edts)))
				return out, nil
			}
			c += cs
		}
		return nil, errors.New("moov without trak")
	}
	return nil, errors.New("init without moov")
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
