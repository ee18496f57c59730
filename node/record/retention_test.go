package record

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	spans, gaps, _ := st.Spans("c1", now.Add(-4*time.Hour), now)
	if len(spans) != 1 || spans[0].Start.Before(now.Add(-11*time.Minute)) {
		t.Fatalf("spans after retention: %+v", spans)
	}
	// The hole says the footage was deleted, not that it was never there.
	if len(gaps) == 0 || gaps[0].Reason != ReasonDeleted || !strings.Contains(gaps[0].Detail, "retention") {
		t.Fatalf("gaps after retention: %+v, want the first to say %s", gaps, ReasonDeleted)
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

	// The disk fills up with held footage: the floor (250 MiB) cannot be
	// reached by deleting unheld footage (b2 + a3 = 200 MiB). Held footage
	// stays, the alarm is raised, and only the oldest unheld footage goes,
	// down to the emergency margin (64 MiB here), so the newest (a3) is
	// kept, rotating, rather than everything unheld being wiped.
	disk.free = 0
	if _, err := st.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	if !exists(st, b1) || exists(st, b2) || !exists(st, a3) {
		t.Fatalf("held b1 %v (want kept), oldest unheld b2 %v (want deleted), newest unheld a3 %v (want kept)", exists(st, b1), exists(st, b2), exists(st, a3))
	}
	if a := st.Alarm(); !strings.Contains(a, "held") || !strings.Contains(a, "release holds") {
		t.Fatalf("alarm %q, want it to say footage is held and what to do", a)
	}
	// Still short on the next pass: the next-oldest unheld goes; held stays.
	if _, err := st.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	if !exists(st, b1) || exists(st, a3) {
		t.Fatal("rotation deleted held footage, or kept unheld footage while short of space")
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

// A hole mixing deleted footage and an outage is explained part by part:
// what retention deleted says "deleted", the time the disk was full says
// "disk_full" — as after a disk that filled while holds kept old footage.
func TestGapsMixingDeletionAndOutage(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	disk := &fakeDisk{free: 100 << 30}
	st := openRetention(t, &now, disk, Retention{MaxAge: time.Hour})
	t0 := now.Add(-2 * time.Hour)
	b := addSegment(t, st, "c1", t0, 10*time.Minute, 1000)                     // deleted (too old)
	outage := t0.Add(10 * time.Minute)                                         // the disk was full for 5 min
	c := addSegment(t, st, "c1", t0.Add(15*time.Minute), 10*time.Minute, 1000) // deleted (too old)
	d := addSegment(t, st, "c1", now.Add(-20*time.Minute), 10*time.Minute, 1000)
	if err := st.db.Set(eventKey("c1", outage), []byte(ReasonDiskFull+": write: no space left on device"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if n, err := st.EnforceRetention(); err != nil || n != 2 || exists(st, b) || exists(st, c) || !exists(st, d) {
		t.Fatalf("deleted %d (%v)", n, err)
	}
	_, gaps, err := st.Spans("c1", t0, now.Add(-15*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		from, to time.Time
		reason   string
	}{
		{t0, outage, ReasonDeleted},
		{outage, t0.Add(15 * time.Minute), ReasonDiskFull},
		{t0.Add(15 * time.Minute), now.Add(-20 * time.Minute), ReasonDeleted},
	}
	if len(gaps) != len(want) {
		t.Fatalf("gaps %+v, want %d parts", gaps, len(want))
	}
	for i, w := range want {
		if g := gaps[i]; !g.Start.Equal(w.from) || !g.End.Equal(w.to) || g.Reason != w.reason {
			t.Fatalf("gap %d: %s–%s %s, want %s–%s %s", i, g.Start.Format("15:04"), g.End.Format("15:04"), g.Reason, w.from.Format("15:04"), w.to.Format("15:04"), w.reason)
		}
	}
}

func TestPurgeOlderThanKeepsHeldFootage(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	disk := &fakeDisk{free: 100 << 30}
	st := openRetention(t, &now, disk, Retention{})
	old := addSegment(t, st, "c1", now.Add(-3*time.Hour), 5*time.Minute, 1000)
	heldSeg := addSegment(t, st, "c1", now.Add(-2*time.Hour), 5*time.Minute, 1000)
	fresh := addSegment(t, st, "c1", now.Add(-10*time.Minute), 5*time.Minute, 1000)
	if _, err := st.PutHold(Hold{Camera: "c1", From: now.Add(-2 * time.Hour), To: now.Add(-2*time.Hour + time.Minute), Reason: "case C-1"}); err != nil {
		t.Fatal(err)
	}
	deleted, kept, err := st.PurgeOlderThan(time.Hour)
	if err != nil || deleted != 1 || kept != 1 {
		t.Fatalf("purge: deleted %d, kept %d held (%v); want 1 and 1", deleted, kept, err)
	}
	if exists(st, old) || !exists(st, heldSeg) || !exists(st, fresh) {
		t.Fatalf("old %v (want gone), held %v, fresh %v (want kept)", exists(st, old), exists(st, heldSeg), exists(st, fresh))
	}
}
