package record

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/camsim"
	"github.com/ronda-jakarta/ronda/node/media"
)

// feeder hands a real clip's frames to a recorder with times the test
// controls: wall = base + PTS + offset.
type feeder struct {
	t      testing.TB
	clip   *camsim.Clip
	rec    *Recorder
	i      int
	pts    time.Duration
	base   time.Time
	offset time.Duration
}

func newFeeder(t testing.TB, st *Store, cam string, base time.Time) *feeder {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/clip.h264")
	if err != nil {
		t.Fatal(err)
	}
	clip, err := camsim.ParseClip(raw)
	if err != nil {
		t.Fatal(err)
	}
	r := st.Recorder(cam).(*Recorder)
	r.OnTrack(media.Track{Codec: media.CodecH264, SPS: clip.SPS, PPS: clip.PPS, Width: 640, Height: 360})
	return &feeder{t: t, clip: clip, rec: r, base: base}
}

// feed sends d of frames (15 fps) and waits until the writer has them.
func (f *feeder) feed(d time.Duration) {
	frame := time.Second / 15
	for end := f.pts + d; f.pts < end; f.pts += frame {
		au := f.clip.AUs[f.i%len(f.clip.AUs)]
		f.i++
		key := false
		for _, n := range au {
			key = key || n[0]&0x1f == 5
		}
		f.rec.OnAccessUnit(&media.AccessUnit{PTS: f.pts, Wall: f.base.Add(f.pts + f.offset), Key: key, NALUs: au})
	}
	f.barrier()
}

func (f *feeder) barrier() {
	ch := make(chan struct{})
	f.rec.send(item{barrier: ch})
	<-ch
}

func (f *feeder) wall() time.Time { return f.base.Add(f.pts + f.offset) }

// A step of the node's clock ends the segment and leaves a gap whose reason
// says so; footage on both sides plays.
func TestClockStepIsAGapWithItsReason(t *testing.T) {
	base := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	st, err := Open(t.TempDir(), Options{Logger: quiet(), SyncInterval: time.Hour, Now: func() time.Time { return base.Add(2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFeeder(t, st, "c1", base)
	f.feed(4 * time.Second)
	stepAt := f.wall()
	f.offset = time.Hour // the node's clock jumps an hour ahead
	f.feed(4 * time.Second)
	f.rec.OnStop(media.StopReason(media.StopNodeDown, "test ends"))
	f.barrier()
	st.syncOnce()

	spans, gaps, err := st.Spans("c1", base, base.Add(90*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) != 2 {
		t.Fatalf("spans %v: want the footage before and after the step", spans)
	}
	var step *Gap
	for i := range gaps {
		if gaps[i].Start.Before(stepAt.Add(time.Second)) && gaps[i].End.After(stepAt.Add(50*time.Minute)) {
			step = &gaps[i]
		}
	}
	if step == nil || step.Reason != ReasonClockStep || step.Detail == "" {
		t.Fatalf("gaps %+v: want a clock_step gap of about an hour at %s", gaps, stepAt)
	}
	for _, sp := range spans {
		var buf bytes.Buffer
		if err := st.WritePlayback(context.Background(), &buf, "c1", sp.Start, sp.End); err != nil {
			t.Fatal(err)
		}
		if d := ffmpegCheck(t, buf.Bytes()); d < 3 {
			t.Fatalf("span %v plays %.2f s", sp, d)
		}
	}
}

// A failed fsync abandons the segment: what was written since the last good
// sync is never indexed, even though a later fsync of the same file reports
// success (Linux forgets the error once reported), the gap says why, and
// recording goes on in a new segment.
func TestFailedFsyncAbandonsSegment(t *testing.T) {
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	st, err := Open(t.TempDir(), Options{Logger: quiet(), SyncInterval: time.Hour, SegmentDuration: time.Hour, Now: func() time.Time { return base.Add(30 * time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFeeder(t, st, "c1", base)
	f.feed(3 * time.Second)
	st.syncOnce()
	good, _ := st.RecordedUntil("c1")

	failing := true
	fdatasync = func(fl *os.File) error {
		if failing {
			failing = false
			return errors.New("input/output error")
		}
		return fl.Sync()
	}
	defer func() { fdatasync = (*os.File).Sync }()
	f.feed(3 * time.Second)
	st.syncOnce() // fails: the 3 s just written must not be indexed
	if until, _ := st.RecordedUntil("c1"); until.After(good) {
		t.Fatalf("recorded until %s after a failed fsync, want %s", until, good)
	}
	f.feed(3 * time.Second) // written to the abandoned file before the writer notices, then to a new one
	st.syncOnce()           // succeeds
	f.feed(3 * time.Second)
	st.syncOnce()

	spans, gaps, err := st.Spans("c1", base, base.Add(13*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) != 2 || len(gaps) == 0 {
		t.Fatalf("spans %v gaps %+v: want footage, a gap, footage", spans, gaps)
	}
	var failed *Gap
	for i := range gaps {
		if !gaps[i].Start.After(good.Add(time.Second)) && gaps[i].End.Sub(gaps[i].Start) >= 3*time.Second {
			failed = &gaps[i]
		}
	}
	if failed == nil || failed.Reason != ReasonWriteFailed {
		t.Fatalf("gaps %+v: want a write_failed gap from %s", gaps, good)
	}
	// The first segment is abandoned, a later one carries on.
	var statuses []string
	if err := st.eachSegmentOldestFirst(func(s *segment) (bool, error) { statuses = append(statuses, s.Status); return true, nil }); err != nil {
		t.Fatal(err)
	}
	if len(statuses) < 2 || statuses[0] != SegAbandoned {
		t.Fatalf("segment statuses %v: want the first abandoned and a new one after it", statuses)
	}
	// What is indexed plays.
	var buf bytes.Buffer
	if err := st.WritePlayback(context.Background(), &buf, "c1", spans[1].Start, spans[1].End); err != nil {
		t.Fatal(err)
	}
	ffmpegCheck(t, buf.Bytes())
}
