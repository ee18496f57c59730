package record

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

type fakeDisk struct{ free uint64 }

// addSegment writes a closed segment of size bytes for cam covering
// [start, start+dur) straight into the index, with its file and fragments.
func addSegment(t *testing.T, s *Store, cam string, start time.Time, dur time.Duration, size int64) *segment {
	t.Helper()
	id := s.allocSegment()
	rel := filepath.Join(cam, fmt.Sprintf("%016d.mp4", id))
	if err := os.MkdirAll(filepath.Join(s.segDir, cam), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.segDir, rel), make([]byte, size), 0o640); err != nil {
		t.Fatal(err)
	}
	seg := &segment{Camera: cam, ID: id, File: rel, StartNs: start.UnixNano(), EndNs: start.Add(dur).UnixNano(), Bytes: size, Status: SegClosed}
	b := s.db.NewBatch()
	_ = b.Set(segmentKey(cam, id), encodeSegment(seg), nil)
	_ = b.Set(orderKey(id), []byte(cam), nil)
	for at := start; at.Before(start.Add(dur)); at = at.Add(time.Second) {
		_ = b.Set(fragmentKey(cam, at), encodeFragment(fragment{StartNs: at.UnixNano(), Segment: id, DurNs: int64(time.Second), Key: true}), nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	return seg
}

func exists(s *Store, seg *segment) bool {
	_, err := os.Stat(filepath.Join(s.segDir, seg.File))
	_, ok, _ := s.get(segmentKey(seg.Camera, seg.ID))
	return err == nil && ok
}

func openRetention(t *testing.T, now *time.Time, disk *fakeDisk, r Retention) *Store {
	t.Helper()
	r.FreeSpace = func() (uint64, error) { return disk.free, nil }
	r.Interval = time.Hour // passes are run by the test
	st, err := Open(t.TempDir(), Options{Logger: quiet(), Now: func() time.Time { return *now }, Retention: r})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestRetentionMaxAge(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	disk := &fakeDisk{free: 100 << 30}
	st := openRetention(t, &now, disk, Retention{MaxAge: time.Hour, PerCamera: map[string]time.Duration{"keep": 48 * time.Hour}})
	old := addSegment(t, st, "c1", now.Add(-3*time.Hour), 5*time.Minute, 1000)
	older := addSegment(t, st, "c1", now.Add(-2*time.Hour), 5*time.Minute, 1000)
	fresh := addSegment(t, st, "c1", now.Add(-10*time.Minute), 5*time.Minute, 1000)
	kept := addSegment(t, st, "keep", now.Add(-3*time.Hour), 5*time.Minute, 1000)
	n, err := st.EnforceRetention()
	if err != nil || n != 2 {
		t.Fatalf("deleted %d (%v), want the 2 segments older than an hour", n, err)
	}
	if exists(st, old) || exists(st, older) || !exists(st, fresh) || !exists(st, kept) {
		t.Fatal("max age deleted the wrong segments")
	}
	// Their fragments are gone from the index too: no span points at a deleted file.
	spans, _, _ := st.Spans("c1", now.Add(-4*time.Hour), now)
	if len(spans) != 1 || spans[0].Start.Before(now.Add(-11*time.Minute)) {
		t.Fatalf("spans after retention: %+v", spans)
	}
}

func TestRetentionFreeSpaceOldestFirstAndHolds(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	const seg = 100 << 20
	disk := &fakeDisk{}
	st := openRetention(t, &now, disk, Retention{Reserve: 250 << 20})
	// Interleaved cameras, oldest first: a1 b1 a2 b2 a3.
	a1 := addSegment(t, st, "a", now.Add(-50*time.Minute), 5*time.Minute, seg)
	b1 := addSegment(t, st, "b", now.Add(-45*time.Minute), 5*time.Minute, seg)
	a2 := addSegment(t, st, "a", now.Add(-40*time.Minute), 5*time.Minute, seg)
	b2 := addSegment(t, st, "b", now.Add(-35*time.Minute), 5*time.Minute, seg)
	a3 := addSegment(t, st, "a", now.Add(-30*time.Minute), 5*time.Minute, seg)

	// A hold over b1 (a citizen's report): never deleted while it is active.
	if _, err := st.PutHold(Hold{Camera: "b", From: now.Add(-44 * time.Minute), To: now.Add(-43 * time.Minute),
		Reason: "JAKI-123", Expires: now.Add(6 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutHold(Hold{Camera: "b", From: now, To: now.Add(-time.Minute), Reason: "x"}); err == nil {
		t.Fatal("a hold with to before from was accepted")
	}
	// Free space 60 MiB, floor 250 MiB: three unheld segments must go, oldest first.
	disk.free = 60 << 20
	n, err := st.EnforceRetention()
	if err != nil || n != 2 {
		t.Fatalf("deleted %d (%v)", n, err)
	}
	if exists(st, a1) || !exists(st, b1) || exists(st, a2) || !exists(st, b2) || !exists(st, a3) {
		t.Fatalf("wrong order: a1 %v b1 %v a2 %v b2 %v a3 %v", exists(st, a1), exists(st, b1), exists(st, a2), exists(st, b2), exists(st, a3))
	}
	if st.Alarm() != "" {
		t.Fatalf("alarm %q while the floor could be kept", st.Alarm())
	}

	// Disk still short and only held footage plus what is needed is left:
	// unheld footage keeps rotating, held footage stays, the alarm is raised.
	disk.free = 0
	if _, err := st.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	if !exists(st, b1) || exists(st, b2) || exists(st, a3) {
		t.Fatal("held footage deleted, or unheld footage kept while short of space")
	}
	if st.Alarm() == "" {
		t.Fatal("no alarm when only held footage is left")
	}

	// An expired hold protects nothing.
	now = now.Add(7 * 24 * time.Hour)
	if _, err := st.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	if exists(st, b1) {
		t.Fatal("footage of an expired hold was kept while short of space")
	}
}
