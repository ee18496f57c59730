package record

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/cockroachdb/pebble/v2"

	"github.com/ronda-jakarta/ronda/camsim"
)

// segmentPrefix is a valid segment: init and two fragments of the test clip.
func segmentPrefix(t testing.TB) ([]byte, int64) {
	raw, err := os.ReadFile("../../testdata/clip.h264")
	if err != nil {
		t.Fatal(err)
	}
	clip, err := camsim.ParseClip(raw)
	if err != nil {
		t.Fatal(err)
	}
	var buf seekablebuffer.Buffer
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: timescale, Codec: &fmp4.CodecH264{SPS: clip.SPS, PPS: clip.PPS}}}}
	if err := init.Marshal(&buf); err != nil {
		t.Fatal(err)
	}
	initLen := int64(len(buf.Bytes()))
	out := append([]byte(nil), buf.Bytes()...)
	for f := 0; f < 2; f++ {
		var samples []*fmp4.Sample
		for i := 0; i < 3; i++ {
			s, err := fmp4.NewSampleH264(0, clip.AUs[f*15+i])
			if err != nil {
				t.Fatal(err)
			}
			s.Duration, s.IsNonSyncSample = 6000, i > 0
			samples = append(samples, s)
		}
		buf.Reset()
		part := fmp4.Part{SequenceNumber: uint32(f + 1), Tracks: []*fmp4.PartTrack{{ID: 1, BaseTime: uint64(f * 18000), Samples: samples}}}
		if err := part.Marshal(&buf); err != nil {
			t.Fatal(err)
		}
		out = append(out, buf.Bytes()...)
	}
	return out, initLen
}

// FuzzScanFragments damages a segment after its init (a torn write, a cut,
// overwritten bytes) and checks that recovery keeps exactly the whole
// moof+mdat pairs before the damage and never reads past the file.
func FuzzScanFragments(f *testing.F) {
	prefix, initLen := segmentPrefix(f)
	f.Add(uint16(0), []byte{})
	f.Add(uint16(len(prefix)-int(initLen)), []byte{0, 0, 0x10, 0, 'm', 'o', 'o', 'f', 1, 2, 3})
	f.Add(uint16(40), []byte{0xff, 0xff, 0xff, 0xff, 'm', 'd', 'a', 't'})
	f.Add(uint16(8), []byte{0, 0, 0, 1, 'm', 'o', 'o', 'f', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	// A moof, then an mdat whose 64-bit size is just below 2^63 (found by fuzzing).
	f.Add(uint16(len(prefix)-int(initLen)), []byte{0, 0, 0, 16, 'm', 'o', 'o', 'f', 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 1, 'm', 'd', 'a', 't', 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0})
	f.Fuzz(func(t *testing.T, cut uint16, tail []byte) {
		// Keep the init and the first cut bytes after it, then the fuzz tail.
		keep := initLen + int64(cut)
		if keep > int64(len(prefix)) {
			keep = int64(len(prefix))
		}
		file := append(append([]byte(nil), prefix[:keep]...), tail...)
		frags, end, err := scanFragments(bytes.NewReader(file), int64(len(file)), initLen)
		if err != nil {
			t.Fatal(err)
		}
		if end < initLen || end > int64(len(file)) {
			t.Fatalf("end %d outside [%d,%d]", end, initLen, len(file))
		}
		off := initLen
		for _, fr := range frags {
			if fr.Offset != off || fr.DurNs < 0 || fr.Offset+int64(fr.Length) > end {
				t.Fatalf("fragment %+v does not follow %d within end %d", fr, off, end)
			}
			off += int64(fr.Length)
		}
		if off != end {
			t.Fatalf("fragments end at %d, scan says %d", off, end)
		}
		// Whole fragments of the valid prefix that survived the cut are kept.
		if keep == int64(len(prefix)) && len(frags) < 2 {
			t.Fatalf("lost whole fragments: %d kept", len(frags))
		}
	})
}

// TestRecoveryOfDamagedSegmentOnOpen runs the same damage through Open.
func TestRecoveryOfDamagedSegmentOnOpen(t *testing.T) {
	prefix, initLen := segmentPrefix(t)
	dir := t.TempDir()
	st, err := Open(dir, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	rel := filepath.Join("c1", "0000000000000001.mp4")
	os.MkdirAll(filepath.Join(st.segDir, "c1"), 0o750)
	os.WriteFile(filepath.Join(st.segDir, rel), append(append([]byte(nil), prefix...), 0, 0, 0x20, 0, 'm', 'o', 'o', 'f', 9), 0o640)
	start := time.Unix(1_800_000_000, 0)
	_ = st.db.Set(segmentKey("c1", 1), encodeSegment(&segment{Camera: "c1", ID: 1, File: rel, StartNs: start.UnixNano(), InitBytes: initLen, Status: SegOpen}), pebble.Sync)
	st.Close()
	st, err = Open(dir, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fi, _ := os.Stat(filepath.Join(st.segDir, rel))
	if fi.Size() != int64(len(prefix)) {
		t.Fatalf("file %d bytes after recovery, want %d", fi.Size(), len(prefix))
	}
	spans, _, err := st.Spans("c1", start.Add(-time.Second), start.Add(time.Minute))
	if err != nil || len(spans) != 1 || spans[0].End.Sub(spans[0].Start) != 400*time.Millisecond {
		t.Fatalf("recovered spans %v (%v), want one span of the two surviving fragments (0.4 s)", spans, err)
	}
}

// TestRecoveryRemovesEmptySegment: a segment with an init but no whole
// fragment (killed right after rotation) is removed, index entry and file.
func TestRecoveryRemovesEmptySegment(t *testing.T) {
	prefix, initLen := segmentPrefix(t)
	dir := t.TempDir()
	st, err := Open(dir, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	rel := filepath.Join("c1", "0000000000000001.mp4")
	os.MkdirAll(filepath.Join(st.segDir, "c1"), 0o750)
	os.WriteFile(filepath.Join(st.segDir, rel), append(append([]byte(nil), prefix[:initLen]...), 0, 0, 0x20), 0o640)
	_ = st.db.Set(segmentKey("c1", 1), encodeSegment(&segment{Camera: "c1", ID: 1, File: rel, StartNs: 1, InitBytes: initLen, Status: SegOpen}), pebble.Sync)
	_ = st.db.Set(orderKey(1), []byte("c1"), pebble.Sync)
	st.Close()
	st, err = Open(dir, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := os.Stat(filepath.Join(st.segDir, rel)); !os.IsNotExist(err) {
		t.Fatalf("empty segment file still there: %v", err)
	}
	if _, ok, _ := st.get(segmentKey("c1", 1)); ok {
		t.Fatal("empty segment still in the index")
	}
}
