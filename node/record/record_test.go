package record

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ronda-jakarta/ronda/camsim"
	"github.com/ronda-jakarta/ronda/node/ingest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// record runs camsim -> ingest -> recorder for d and returns the closed store's dir.
func record(t *testing.T, dir string, d time.Duration) { recordWith(t, dir, d, 0) }

// recordWith records with a given MaxFragment (0: the default).
func recordWith(t *testing.T, dir string, d, maxFragment time.Duration) {
	t.Helper()
	recordClip(t, dir, "../../testdata/clip.h264", d, maxFragment)
}

// recordClip records the given clip (H.264 or H.265).
func recordClip(t *testing.T, dir, clip string, d, maxFragment time.Duration) {
	t.Helper()
	sim, err := camsim.New(camsim.Config{Addr: "127.0.0.1:0", Cameras: 1, ClipPath: clip, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	st, err := Open(dir, Options{SegmentDuration: 3 * time.Second, SyncInterval: 300 * time.Millisecond, MaxFragment: maxFragment, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var covered []Span
	st.SubscribeCoverage(func(cam string, a, b time.Time) { mu.Lock(); covered = append(covered, Span{a, b}); mu.Unlock() })
	cam := ingest.New(ingest.Config{CameraID: "c1", URL: sim.URL(1), Logger: quiet()}, st.Recorder("c1"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { cam.Run(ctx); close(done) }()
	waitFor(t, 20*time.Second, "durable footage", func() bool {
		until, ok := st.RecordedUntil("c1")
		mu.Lock()
		defer mu.Unlock()
		return ok && len(covered) > 0 && until.Sub(covered[0].Start) >= d
	})
	cancel()
	<-done
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

func ffmpegCheck(t *testing.T, mp4 []byte) float64 {
	t.Helper()
	f := filepath.Join(t.TempDir(), "out.mp4")
	if err := os.WriteFile(f, mp4, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ffmpeg", "-v", "error", "-xerror", "-i", f, "-f", "null", "-").CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("ffmpeg -xerror: %v\n%s", err, out)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", f).Output()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	return d
}

func TestRecordAndPlayback(t *testing.T) {
	dir := t.TempDir()
	record(t, dir, 8*time.Second)
	st, err := Open(dir, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	spans, _, err := st.Spans("c1", now.Add(-time.Minute), now)
	if err != nil || len(spans) != 1 {
		t.Fatalf("spans %v err %v: want one continuous span", spans, err)
	}
	sp := spans[0]
	if d := sp.End.Sub(sp.Start); d < 8*time.Second {
		t.Fatalf("span %s, want ≥ 8 s", d)
	}
	// Several segments were written (3 s each, first one staggered).
	segs, _ := os.ReadDir(filepath.Join(dir, "segments", "c1"))
	if len(segs) < 2 {
		t.Fatalf("%d segment files, want ≥ 2", len(segs))
	}
	cases := []struct {
		name     string
		from, to time.Time
	}{
		{"middle 4 s", sp.Start.Add(2 * time.Second), sp.Start.Add(6 * time.Second)},
		{"across segments", sp.Start.Add(time.Second), sp.End.Add(-500 * time.Millisecond)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := st.WritePlayback(context.Background(), &buf, "c1", c.from, c.to); err != nil {
				t.Fatal(err)
			}
			want := c.to.Sub(c.from).Seconds()
			if d := ffmpegCheck(t, buf.Bytes()); d < want-0.6 || d > want+0.6 {
				t.Fatalf("duration %.2f s, want %.2f ± 0.6", d, want)
			}
		})
	}
	var buf bytes.Buffer
	if err := st.WritePlayback(context.Background(), &buf, "c1", now.Add(-time.Hour), now.Add(-50*time.Minute)); !errors.Is(err, ErrNoRecordings) {
		t.Fatalf("empty range: %v, want ErrNoRecordings", err)
	}
	if _, gaps, _ := st.Spans("c1", sp.Start.Add(-time.Minute), sp.End); len(gaps) == 0 || gaps[0].Reason == "" {
		t.Fatalf("gap before recording: %+v", gaps)
	}
}

// TestRecordH265 records an H.265 camera end to end (RTSP, depacketizing,
// fMP4 with an hvcC sample entry, index) and plays a range across segments
// back through ffmpeg.
func TestRecordH265(t *testing.T) {
	dir := t.TempDir()
	recordClip(t, dir, "../../testdata/clip.h265", 7*time.Second, 0)
	st, err := Open(dir, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	spans, _, err := st.Spans("c1", now.Add(-time.Minute), now)
	if err != nil || len(spans) != 1 {
		t.Fatalf("spans %v err %v: want one continuous span", spans, err)
	}
	sp := spans[0]
	from, to := sp.Start.Add(1500*time.Millisecond), sp.End.Add(-500*time.Millisecond)
	var buf bytes.Buffer
	if err := st.WritePlayback(context.Background(), &buf, "c1", from, to); err != nil {
		t.Fatal(err)
	}
	want := to.Sub(from).Seconds()
	if d := ffmpegCheck(t, buf.Bytes()); d < want-0.6 || d > want+0.6 {
		t.Fatalf("duration %.2f s, want %.2f ± 0.6", d, want)
	}
	f := filepath.Join(t.TempDir(), "h265.mp4")
	if err := os.WriteFile(f, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name,codec_tag_string,width,height", "-of", "csv=p=0", f).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "hevc,640,360,hvc1" && got != "hevc,hvc1,640,360" {
		t.Fatalf("ffprobe says %q, want hevc 640x360 in an hvc1 sample entry", got)
	}
	segs, _ := os.ReadDir(filepath.Join(dir, "segments", "c1"))
	if len(segs) < 2 {
		t.Fatalf("%d segment files, want ≥ 2 (the range crosses segments)", len(segs))
	}
}

func TestCrashRecoveryTruncatesTornFragment(t *testing.T) {
	dir := t.TempDir()
	record(t, dir, 4*time.Second)
	// Simulate a crash mid-write: the last segment is marked open in the
	// index, half a fragment of garbage trails the file, and its last
	// fragments were never indexed.
	db, err := pebble.Open(filepath.Join(dir, "index"), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := camBounds(prefixSegment, "c1")
	it, _ := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	it.Last()
	seg, _ := decodeSegment(it.Value())
	it.Close()
	seg.Status = SegOpen
	_ = db.Set(segmentKey("c1", seg.ID), encodeSegment(seg), pebble.Sync)
	// The closed segment's GOP table becomes the per-fragment keys of an
	// open segment, without the last fragment.
	tk := tableKey("c1", seg.StartNs)
	tv, closer, err := db.Get(tk)
	if err != nil {
		t.Fatalf("no GOP table for the closed segment: %v", err)
	}
	frags, err := decodeTable(nil, tk, tv, seg.InitBytes)
	closer.Close()
	if err != nil || len(frags) < 2 {
		t.Fatalf("table: %d fragments, %v", len(frags), err)
	}
	last := frags[len(frags)-1]
	_ = db.Delete(tk, pebble.Sync)
	for _, f := range frags[:len(frags)-1] {
		_ = db.Set(fragmentKey("c1", f.start()), encodeFragment(f), pebble.Sync)
	}
	db.Close()
	path := filepath.Join(dir, "segments", seg.File)
	before, _ := os.Stat(path)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{0, 0, 0x10, 0, 'm', 'o', 'o', 'f', 1, 2, 3})
	f.Close()

	st, err := Open(dir, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	after, _ := os.Stat(path)
	if after.Size() != before.Size() {
		t.Fatalf("file is %d bytes after recovery, want the %d bytes of whole fragments", after.Size(), before.Size())
	}
	v, _, _ := st.get(segmentKey("c1", seg.ID))
	rs, _ := decodeSegment(v)
	if rs.Status != SegRecovered {
		t.Fatalf("segment status %q, want recovered", rs.Status)
	}
	// Its SHA-256 is of the truncated file, and a manifest subscriber gets
	// it with the node_down event that explains the stop.
	if raw, _ := os.ReadFile(path); fmt.Sprintf("%x", sha256.Sum256(raw)) != rs.SHA256 {
		t.Fatalf("recovered segment's sha256 %q is not the file's", rs.SHA256)
	}
	var gotSeg []SegmentInfo
	var gotEv []Event
	st.SubscribeManifest(ManifestSubscriber{Segment: func(s SegmentInfo) { gotSeg = append(gotSeg, s) }, Event: func(e Event) { gotEv = append(gotEv, e) }})
	if len(gotSeg) != 1 || gotSeg[0].ID != seg.ID || fmt.Sprintf("%x", gotSeg[0].SHA256) != rs.SHA256 || len(gotEv) != 1 || gotEv[0].Reason != ReasonNodeDown {
		t.Fatalf("manifest subscriber after recovery got segments %+v, events %+v", gotSeg, gotEv)
	}
	// A coverage subscriber (the hub's spans) gets the recovered footage,
	// up to the re-indexed last fragment's end: what became durable after the
	// last report before the crash is reported too.
	var covered []Span
	st.SubscribeCoverage(func(cam string, a, b time.Time) { covered = append(covered, Span{Start: a, End: b}) })
	if len(covered) != 1 || !covered[0].Start.Equal(time.Unix(0, seg.StartNs)) || covered[0].End.UnixNano() < last.StartNs+last.DurNs-int64(time.Millisecond) {
		t.Fatalf("coverage after recovery %+v, want [%v, ≥ %v]", covered, time.Unix(0, seg.StartNs), time.Unix(0, last.StartNs+last.DurNs))
	}
	// The un-indexed last fragment was re-indexed from the file (and the
	// recovered segment folded into a table again).
	var got []fragment
	_ = st.fragments("c1", time.Unix(0, seg.StartNs), time.Unix(0, seg.EndNs+1), func(f fragment) bool { got = append(got, f); return true })
	g := got[len(got)-1]
	if len(got) != len(frags) || g.StartNs != last.StartNs || g.Offset != last.Offset || g.Length != last.Length || g.Key != last.Key || absDur(time.Duration(g.DurNs-last.DurNs)) > time.Microsecond {
		t.Fatalf("after recovery %d fragments (last %+v), want %d (last %+v)", len(got), got[len(got)-1], len(frags), last)
	}
	if _, c, err := st.db.Get(tk); err != nil {
		t.Fatalf("recovered segment not folded into a GOP table: %v", err)
	} else {
		c.Close()
	}
	raw, _ := os.ReadFile(path)
	ffmpegCheck(t, raw)
	until, _ := st.RecordedUntil("c1")
	var buf bytes.Buffer
	if err := st.WritePlayback(context.Background(), &buf, "c1", until.Add(-3*time.Second), until); err != nil {
		t.Fatal(err)
	}
	ffmpegCheck(t, buf.Bytes())
}

// TestPlaybackFindsKeyframeFarBeforeFrom: when the keyframe before from lies
// further back than any fixed window (GOPs cut into many fragments), playback
// still starts there instead of answering "no recordings".
func TestPlaybackFindsKeyframeFarBeforeFrom(t *testing.T) {
	dir := t.TempDir()
	recordWith(t, dir, 6*time.Second, 100*time.Millisecond) // 1 s GOPs in 100 ms fragments
	st, err := Open(dir, Options{MaxFragment: 100 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	spans, _, _ := st.Spans("c1", time.Now().Add(-time.Minute), time.Now())
	key := st.keyframeAtOrBefore("c1", spans[0].Start.Add(3*time.Second))
	// 0.5-0.8 s after a keyframe: no keyframe in [from-0.2 s, to].
	from, to := key.Add(500*time.Millisecond), key.Add(800*time.Millisecond)
	var buf bytes.Buffer
	if err := st.WritePlayback(context.Background(), &buf, "c1", from, to); err != nil {
		t.Fatalf("playback %s..%s after the keyframe: %v", from.Sub(key), to.Sub(key), err)
	}
	if d := ffmpegCheck(t, buf.Bytes()); d < 0.7 || d > 0.9 {
		t.Fatalf("duration %.2f s, want the 0.8 s from the keyframe to 'to'", d)
	}
	res, err := st.Export(context.Background(), filepath.Join(t.TempDir(), "e.mp4"), "c1", from, to)
	if err != nil || !res.From.Equal(key) {
		t.Fatalf("export starts at %s (%v), want the keyframe at %s", res.From, err, key)
	}
}
