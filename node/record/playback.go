package record

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
)

// WritePlayback writes [from,to) of a camera as fragmented MP4: the stored
// init, then the fragments from the keyframe nearest from, retimed so the
// output starts at zero and follows wall time (a gap in the recordings is a
// jump in decode time), with samples at or after to dropped.
func (s *Store) WritePlayback(ctx context.Context, w io.Writer, cameraID string, from, to time.Time) error {
	var frags []fragment
	err := s.fragments(cameraID, s.keyframeAtOrBefore(cameraID, from), to, func(f fragment) bool {
		frags = append(frags, f)
		return true
	})
	if err != nil {
		return err
	}
	start := -1
	for i, f := range frags {
		if !f.Key {
			continue
		}
		if start < 0 || absDur(f.start().Sub(from)) < absDur(frags[start].start().Sub(from)) {
			start = i
		}
	}
	if start < 0 {
		return ErrNoRecordings
	}
	frags = frags[start:]
	t0 := frags[0].start()

	files := map[uint64]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	open := func(segID uint64) (*os.File, *segment, error) {
		v, ok, err := s.get(segmentKey(cameraID, segID))
		if err != nil || !ok {
			return nil, nil, fmt.Errorf("record: segment %d of %s is missing from the index: %v", segID, cameraID, err)
		}
		seg, err := decodeSegment(v)
		if err != nil {
			return nil, nil, err
		}
		if f := files[segID]; f != nil {
			return f, seg, nil
		}
		f, err := os.Open(filepath.Join(s.segDir, seg.File))
		if err != nil {
			return nil, nil, fmt.Errorf("record: segment file of %s: %w", cameraID, err)
		}
		files[segID] = f
		return f, seg, nil
	}

	f, seg, err := open(frags[0].Segment)
	if err != nil {
		return err
	}
	init := make([]byte, seg.InitBytes)
	if _, err := f.ReadAt(init, 0); err != nil {
		return fmt.Errorf("record: read init of %s: %w", seg.File, err)
	}
	if _, err := w.Write(init); err != nil {
		return err
	}
	var buf seekablebuffer.Buffer
	var seq uint32
	for _, fr := range frags {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, _, err := open(fr.Segment)
		if err != nil {
			return err
		}
		raw := make([]byte, fr.Length)
		if _, err := f.ReadAt(raw, fr.Offset); err != nil {
			return fmt.Errorf("record: read fragment of %s at %d: %w", cameraID, fr.Offset, err)
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(raw); err != nil || len(parts) != 1 || len(parts[0].Tracks) != 1 {
			return fmt.Errorf("record: fragment of %s at %d does not parse: %v", cameraID, fr.Offset, err)
		}
		tr := parts[0].Tracks[0]
		// Keep the samples that start before to.
		wall := fr.start()
		kept := tr.Samples[:0]
		for _, smp := range tr.Samples {
			if !wall.Before(to) {
				break
			}
			kept = append(kept, smp)
			wall = wall.Add(time.Duration(smp.Duration) * time.Second / timescale)
		}
		if len(kept) == 0 {
			break
		}
		seq++
		tr.Samples = kept
		tr.BaseTime = uint64(fr.start().Sub(t0) * timescale / time.Second)
		parts[0].SequenceNumber = seq
		buf.Reset()
		if err := parts[0].Marshal(&buf); err != nil {
			return err
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
