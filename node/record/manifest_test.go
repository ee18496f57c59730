package record

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/camsim"
	"github.com/ronda-jakarta/ronda/internal/manifest"
	"github.com/ronda-jakarta/ronda/node/ingest"
)

// Every closed segment is reported with the SHA-256 of its file (hashed as
// it was written, no read-back), after its index commit; the camera going
// away is reported as a gap event with its reason; and the day manifests the
// store computes from its index are the chain of what was reported.
func TestClosedSegmentsAreReportedWithTheirFileHash(t *testing.T) {
	dir := t.TempDir()
	sim, err := camsim.New(camsim.Config{Addr: "127.0.0.1:0", Cameras: 1, ClipPath: "../../testdata/clip.h264", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	st, err := Open(dir, Options{SegmentDuration: 2 * time.Second, SyncInterval: 200 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var segs []SegmentInfo
	var events []Event
	st.SubscribeManifest(ManifestSubscriber{
		Segment: func(s SegmentInfo) { mu.Lock(); segs = append(segs, s); mu.Unlock() },
		Event:   func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() },
	})
	cam := ingest.New(ingest.Config{CameraID: "c1", URL: sim.URL(1), Logger: quiet()}, st.Recorder("c1"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { cam.Run(ctx); close(done) }()
	waitFor(t, 30*time.Second, "3 closed segments", func() bool { mu.Lock(); defer mu.Unlock(); return len(segs) >= 3 })
	sim.Close() // the camera goes away while recording
	waitFor(t, 20*time.Second, "a gap event", func() bool { mu.Lock(); defer mu.Unlock(); return len(events) > 0 })
	cancel()
	<-done
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	var want []byte
	sameDay := 0
	for i, s := range segs {
		if i > 0 && s.ID <= segs[i-1].ID {
			t.Fatalf("segments reported out of order: %d after %d", s.ID, segs[i-1].ID)
		}
		file, _ := os.ReadFile(filepath.Join(dir, "segments", "c1", fmt.Sprintf("%016d.mp4", s.ID)))
		sum := sha256.Sum256(file)
		if len(file) == 0 || int64(len(file)) != s.Bytes || !bytes.Equal(sum[:], s.SHA256) {
			t.Fatalf("segment %d: reported %d bytes, sha256 %x; the file has %d bytes, sha256 %x", s.ID, s.Bytes, s.SHA256, len(file), sum)
		}
		if s.Start.UTC().Truncate(24*time.Hour) == segs[0].Start.UTC().Truncate(24*time.Hour) {
			want = manifest.Chain(want, s.ID, s.Start.UnixNano(), s.End.UnixNano(), s.Bytes, s.SHA256)
			sameDay++
		}
	}
	if e := events[0]; e.Camera != "c1" || (e.Reason != ReasonNetwork && e.Reason != ReasonCameraOffline) || e.Detail == "" {
		t.Fatalf("gap event %+v: want the camera's stream breaking, with a detail", e)
	}

	st2, err := Open(dir, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	day := segs[0].Start.UTC().Truncate(24 * time.Hour)
	sums, counts, err := st2.DayManifests("c1", day, day.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if counts[day] != sameDay || !bytes.Equal(sums[day], want) {
		t.Fatalf("day manifest from the index: %d segments %x; reported %d segments chaining to %x", counts[day], sums[day], sameDay, want)
	}
}
