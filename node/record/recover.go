package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	amp4 "github.com/abema/go-mp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/cockroachdb/pebble/v2"
)

// recover runs at Open. A segment still marked open was being written when
// the node stopped: keep its whole moof+mdat pairs, truncate the rest, index
// the fragments that survived (the index may lag the file by up to one sync
// interval), and mark it recovered. Files the index never heard of (created
// after the last commit) are adopted from their self-describing init box, or
// removed if they hold no whole fragment.
func (s *Store) recover() error {
	var open []*segment
	known := map[string]bool{}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixSegment}, UpperBound: []byte{prefixSegment + 1}})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		seg, err := decodeSegment(it.Value())
		if err != nil {
			it.Close()
			return err
		}
		known[seg.File] = true
		if seg.Status == SegOpen {
			open = append(open, seg)
		}
	}
	it.Close()
	orphans, err := s.findOrphans(known)
	if err != nil {
		return err
	}
	open = append(open, orphans...)
	for _, seg := range open {
		if err := s.recoverSegment(seg); err != nil {
			s.log.Error("segment recovery failed; its file is kept for inspection", "file", seg.File, "err", err)
		}
	}
	return nil
}

// findOrphans lists segment files the index does not know and reads their
// init box. A file can be unknown whatever its id: an id is allocated (and
// the next-id counter may be committed) before the segment's own record
// reaches a commit, and a crash can fall in between.
func (s *Store) findOrphans(known map[string]bool) ([]*segment, error) {
	cams, err := os.ReadDir(s.segDir)
	if err != nil {
		return nil, err
	}
	var out []*segment
	for _, c := range cams {
		if !c.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(s.segDir, c.Name()))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			id, err := strconv.ParseUint(strings.TrimSuffix(f.Name(), ".mp4"), 10, 64)
			rel := filepath.Join(c.Name(), f.Name())
			if err != nil || known[rel] {
				continue
			}
			meta, initLen, err := readInit(filepath.Join(s.segDir, rel))
			if err != nil || meta.Camera != c.Name() || meta.Segment != id {
				s.log.Warn("removing an orphan segment file without a readable init", "file", rel, "err", err)
				_ = os.Remove(filepath.Join(s.segDir, rel))
				continue
			}
			s.log.Warn("adopting an orphan segment file written after the last index commit", "file", rel)
			out = append(out, &segment{Camera: meta.Camera, ID: id, File: rel, StartNs: meta.StartNs, EndNs: meta.StartNs,
				InitBytes: initLen, Status: SegOpen})
			if id >= s.nextSeg {
				s.nextSeg = id + 1
			}
		}
	}
	return out, nil
}

// readInit reads a segment's init and its self-describing box.
func readInit(path string) (fileMeta, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileMeta{}, 0, err
	}
	defer f.Close()
	end, err := initEnd(f)
	if err != nil {
		return fileMeta{}, 0, err
	}
	var init fmp4.Init
	if err := init.Unmarshal(io.NewSectionReader(f, 0, end)); err != nil {
		return fileMeta{}, 0, err
	}
	for _, b := range init.UserData {
		if fr, ok := b.(*amp4.Free); ok && bytes.HasPrefix(fr.Data, []byte(selfDescribingPrefix)) {
			var m fileMeta
			if err := json.Unmarshal(fr.Data[len(selfDescribingPrefix):], &m); err != nil {
				return fileMeta{}, 0, err
			}
			return m, end, nil
		}
	}
	return fileMeta{}, 0, errors.New("no Ronda box in the init")
}

// initEnd returns the offset after ftyp+moov.
func initEnd(r io.ReaderAt) (int64, error) {
	var off int64
	for i := 0; i < 2; i++ {
		size, typ, hdr, err := boxHeader(r, off)
		if err != nil {
			return 0, err
		}
		if (i == 0 && typ != "ftyp") || (i == 1 && typ != "moov") {
			return 0, fmt.Errorf("box %q at %d, want ftyp then moov", typ, off)
		}
		_ = hdr
		off += size
	}
	return off, nil
}

// boxHeader reads the box header at off: total size, type, header length.
func boxHeader(r io.ReaderAt, off int64) (size int64, typ string, hdr int64, err error) {
	var h [16]byte
	if _, err := r.ReadAt(h[:8], off); err != nil {
		return 0, "", 0, err
	}
	size, typ, hdr = int64(binary.BigEndian.Uint32(h[:4])), string(h[4:8]), 8
	if size == 1 {
		if _, err := r.ReadAt(h[8:16], off+8); err != nil {
			return 0, "", 0, err
		}
		size, hdr = int64(binary.BigEndian.Uint64(h[8:16])), 16
	}
	if size < hdr {
		return 0, "", 0, fmt.Errorf("box %q at %d has impossible size %d", typ, off, size)
	}
	return size, typ, hdr, nil
}

// scanFragments walks whole moof+mdat pairs after the init and returns them
// (with times relative to the segment start) and the end of the last whole pair.
func scanFragments(r io.ReaderAt, fileSize, initLen int64) ([]fragment, int64, error) {
	var out []fragment
	off := initLen
	for off < fileSize {
		// Sizes are compared with what is left of the file, never added up:
		// a corrupt 64-bit box size near 2^63 must not overflow the check.
		msize, mtyp, _, err := boxHeader(r, off)
		if err != nil || mtyp != "moof" || msize > fileSize-off {
			break
		}
		dsize, dtyp, _, err := boxHeader(r, off+msize)
		if err != nil || dtyp != "mdat" || dsize > fileSize-off-msize {
			break
		}
		buf := make([]byte, msize+dsize)
		if _, err := r.ReadAt(buf, off); err != nil {
			return nil, 0, err
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(buf); err != nil || len(parts) != 1 || len(parts[0].Tracks) != 1 {
			break
		}
		tr := parts[0].Tracks[0]
		var ticks uint64
		for _, smp := range tr.Samples {
			ticks += uint64(smp.Duration)
		}
		out = append(out, fragment{
			StartNs: int64(tr.BaseTime * uint64(time.Second) / timescale), // relative; caller adds the segment start
			Offset:  off, Length: uint32(msize + dsize),
			DurNs: int64(ticks * uint64(time.Second) / timescale),
			Key:   len(tr.Samples) > 0 && !tr.Samples[0].IsNonSyncSample,
		})
		off += msize + dsize
	}
	return out, off, nil
}

func (s *Store) recoverSegment(seg *segment) error {
	path := filepath.Join(s.segDir, seg.File)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if seg.InitBytes == 0 {
		if seg.InitBytes, err = initEnd(f); err != nil {
			return err
		}
	}
	frags, end, err := scanFragments(f, st.Size(), seg.InitBytes)
	if err != nil {
		return err
	}
	if len(frags) == 0 {
		// The node stopped before the segment's first whole fragment: there
		// is no footage in it. Forget it in the index, then remove the file.
		b := s.db.NewBatch()
		defer b.Close()
		_ = b.Delete(segmentKey(seg.Camera, seg.ID), nil)
		_ = b.Delete(orderKey(seg.ID), nil)
		_ = b.Set(keyNextSeg, binary.BigEndian.AppendUint64(nil, s.nextSeg), nil)
		if err := b.Commit(pebble.Sync); err != nil {
			return err
		}
		s.log.Info("removed a segment without a whole fragment (the node stopped right after creating it)", "file", seg.File)
		return os.Remove(path)
	}
	if end < st.Size() {
		s.log.Warn("truncating a torn fragment at the end of a segment", "file", seg.File, "from", st.Size(), "to", end)
		if err := f.Truncate(end); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, fr := range frags {
		fr.StartNs += seg.StartNs
		fr.Segment = seg.ID
		_ = b.Set(fragmentKey(seg.Camera, fr.start()), encodeFragment(fr), nil)
		seg.EndNs = fr.StartNs + fr.DurNs
	}
	seg.Bytes, seg.Status = end, SegRecovered
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, end)); err != nil {
		return fmt.Errorf("hash recovered segment: %w", err)
	}
	seg.SHA256 = hex.EncodeToString(h.Sum(nil))
	_ = b.Set(segmentKey(seg.Camera, seg.ID), encodeSegment(seg), nil)
	_ = b.Set(orderKey(seg.ID), []byte(seg.Camera), nil)
	_ = b.Set(eventKey(seg.Camera, time.Unix(0, seg.EndNs)), []byte(ReasonNodeDown+": the node stopped unexpectedly (power cut or crash); the segment was recovered at restart"), nil)
	_ = b.Set(keyNextSeg, binary.BigEndian.AppendUint64(nil, s.nextSeg), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	s.recovered = append(s.recovered, Closed{Segment: seg.public(), Event: &Event{Camera: seg.Camera, At: time.Unix(0, seg.EndNs),
		Reason: ReasonNodeDown, Detail: "the node stopped unexpectedly (power cut or crash); the segment was recovered at restart"}})
	s.log.Info("recovered segment", "file", seg.File, "fragments", len(frags), "bytes", end)
	return nil
}
