package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/ronda-jakarta/ronda/camsim"
)

// TestCameraQuirks runs a simulated camera with each misbehaviour seen in the
// field and checks that the node gets the same clean stream: parameter sets
// known, the first frame a keyframe, no AUD, PTS increasing, wall time
// following the real clock, ~15 fps.
func TestCameraQuirks(t *testing.T) {
	nearWrap := uint32(1<<32 - 90000) // wraps one second in
	cases := []struct {
		name   string
		q      camsim.Quirks
		record time.Duration
		check  func(t *testing.T, s *sink, st Status)
	}{
		{name: "parameter sets only in-band", q: camsim.Quirks{NoSDPParameterSets: true}},
		{name: "parameter sets only in the SDP", q: camsim.Quirks{NoInBandParameterSets: true}},
		{name: "AUD first", q: camsim.Quirks{AUDFirst: true}},
		{name: "SEI first", q: camsim.Quirks{SEIFirst: true}, check: func(t *testing.T, s *sink, _ Status) {
			for _, n := range s.aus[0].NALUs {
				if h264.NALUType(n[0]&0x1f) == h264.NALUTypeSEI {
					return
				}
			}
			t.Fatal("SEI dropped: the recorder must get the stream as sent")
		}},
		{name: "Annex-B inside RTP", q: camsim.Quirks{AnnexBInRTP: true, AUDFirst: true}},
		{name: "timestamp wrap-around", q: camsim.Quirks{StartTimestamp: &nearWrap}, record: 3 * time.Second},
		{name: "no RTCP sender reports", q: camsim.Quirks{NoRTCPSenderReports: true}},
		{name: "clock step", q: camsim.Quirks{ClockStepAfter: 1500 * time.Millisecond, ClockStepBy: time.Hour}, record: 3 * time.Second,
			check: func(t *testing.T, _ *sink, st Status) {
				if st.ClockSteps != 1 {
					t.Fatalf("clock steps %d, want 1", st.ClockSteps)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim, err := camsim.New(camsim.Config{Addr: "127.0.0.1:0", Cameras: 1, ClipPath: "../../testdata/clip.h264", Quirks: c.q, Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			if err := sim.Start(); err != nil {
				t.Fatal(err)
			}
			defer sim.Close()
			out := &sink{}
			cam := New(Config{CameraID: "q", URL: sim.URL(1), Logger: quiet()}, out)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { cam.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			want := c.record
			if want == 0 {
				want = 2 * time.Second
			}
			frames := int(want.Seconds() * 15)
			waitFor(t, 15*time.Second, "frames", func() bool { return out.count() >= frames })
			start := time.Now()
			out.mu.Lock()
			defer out.mu.Unlock()
			if len(out.tracks) == 0 || out.tracks[0].Width != 640 || len(out.tracks[0].SPS) == 0 || len(out.tracks[0].PPS) == 0 {
				t.Fatalf("track %+v", out.tracks)
			}
			if !out.aus[0].Key {
				t.Fatal("first frame is not a keyframe")
			}
			if out.badPTS != 0 {
				t.Fatalf("%d frames with non-increasing PTS", out.badPTS)
			}
			for _, au := range out.aus {
				for _, n := range au.NALUs {
					if len(n) == 0 || h264.NALUType(n[0]&0x1f) == h264.NALUTypeAccessUnitDelimiter {
						t.Fatal("empty NAL or AUD handed on")
					}
				}
			}
			first, last := out.aus[0], out.aus[len(out.aus)-1]
			// Wall time follows the real clock even when the camera's does not.
			if lag := start.Sub(last.Wall); lag < -time.Second || lag > 2*time.Second {
				t.Fatalf("last frame's wall time is %s away from now", lag)
			}
			if span := last.Wall.Sub(first.Wall); span > want+2*time.Second {
				t.Fatalf("%d frames span %s of wall time", len(out.aus), span)
			}
			if c.check != nil {
				c.check(t, out, cam.Status())
			}
		})
	}
}
