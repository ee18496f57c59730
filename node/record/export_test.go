package record

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	amp4 "github.com/abema/go-mp4"
)

func TestExportProgressiveMP4(t *testing.T) {
	dir := t.TempDir()
	record(t, dir, 8*time.Second)
	st, err := Open(dir, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	spans, _, _ := st.Spans("c1", time.Now().Add(-time.Minute), time.Now())
	from, to := spans[0].Start.Add(1500*time.Millisecond), spans[0].End.Add(-time.Second)
	out := filepath.Join(t.TempDir(), "export.mp4")
	res, err := st.Export(context.Background(), out, "c1", from, to)
	if err != nil {
		t.Fatal(err)
	}
	// Starts at the keyframe at or before from (1 s GOP), ends at to.
	if res.From.After(from) || from.Sub(res.From) > 1100*time.Millisecond || res.To.After(to.Add(100*time.Millisecond)) {
		t.Fatalf("export covers %s..%s for a request of %s..%s", res.From, res.To, from, to)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if res.SHA256 != hex.EncodeToString(sum[:]) || res.Bytes != int64(len(raw)) {
		t.Fatal("reported SHA-256 or size does not match the file")
	}
	want := res.To.Sub(res.From).Seconds()
	if d := ffmpegCheck(t, raw); d < want-0.2 || d > want+0.2 {
		t.Fatalf("ffprobe duration %.2f, want %.2f", d, want)
	}
	// Progressive (ftyp, mdat, moov), 64-bit mdat size, co64 offsets.
	if string(raw[28:32]) != "mdat" || raw[24] != 0 || raw[27] != 1 {
		t.Fatalf("mdat is not a 64-bit box: % x", raw[24:40])
	}
	boxes, err := amp4.ExtractBox(bytes.NewReader(raw), nil, amp4.BoxPath{amp4.BoxTypeMoov(), amp4.BoxTypeTrak(), amp4.BoxTypeMdia(),
		amp4.BoxTypeMinf(), amp4.BoxTypeStbl(), amp4.BoxTypeCo64()})
	if err != nil || len(boxes) != 1 {
		t.Fatalf("no co64 box: %v", err)
	}
	// Every source segment's digest matches its bytes.
	if len(res.Segments) == 0 {
		t.Fatal("no source segments listed")
	}
	for _, sd := range res.Segments {
		b, err := os.ReadFile(filepath.Join(dir, "segments", sd.File))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b[:sd.Bytes])
		if sd.SHA256 != hex.EncodeToString(h[:]) {
			t.Fatalf("segment %s digest mismatch", sd.File)
		}
	}
	if _, err := st.Export(context.Background(), filepath.Join(t.TempDir(), "x.mp4"), "c1", time.Now().Add(-time.Hour), time.Now().Add(-50*time.Minute)); err != ErrNoRecordings {
		t.Fatalf("empty range: %v", err)
	}
}
