package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/ronda-jakarta/ronda/camsim"
	"github.com/ronda-jakarta/ronda/node/media"
)

const (
	clip264 = "../../testdata/clip.h264"
	clip265 = "../../testdata/clip.h265"
)

func isAUD(codec string, n []byte) bool {
	if codec == media.CodecH265 {
		return h265.NALUType((n[0]>>1)&0x3f) == h265.NALUType_AUD_NUT
	}
	return h264.NALUType(n[0]&0x1f) == h264.NALUTypeAccessUnitDelimiter
}

// bigNALU finds a NAL unit of at least n bytes in the frames.
func bigNALU(aus []*media.AccessUnit, n int) []byte {
	for _, au := range aus {
		for _, nalu := range au.NALUs {
			if len(nalu) >= n {
				return nalu
			}
		}
	}
	return nil
}

// TestCameraQuirks runs a simulated camera with each misbehaviour seen in the
// field, for H.264 and H.265, over TCP and UDP, with and without Basic and
// Digest auth, and checks that the node gets the same clean stream:
// parameter sets known, the first frame a keyframe, no AUD, PTS increasing,
// wall time following the real clock, ~15 fps.
func TestCameraQuirks(t *testing.T) {
	nearWrap := uint32(1<<32 - 90000) // wraps one second in
	const big = 3 << 20
	oversized := func(t *testing.T, s *sink, _ Status) {
		n := bigNALU(s.aus, big)
		if n == nil {
			t.Fatalf("no %d-byte NAL unit arrived", big)
		}
		if len(n) != big || n[len(n)-1] != 0x80 || n[len(n)-2] != 0xff {
			t.Fatalf("the %d-byte NAL unit arrived as %d bytes or altered", big, len(n))
		}
	}
	cases := []struct {
		name   string
		clip   string
		q      camsim.Quirks
		udp    bool
		user   string
		auth   string
		record time.Duration
		check  func(t *testing.T, s *sink, st Status)
	}{
		{name: "H.265", clip: clip265},
		{name: "H.265 parameter sets only in-band", clip: clip265, q: camsim.Quirks{NoSDPParameterSets: true}},
		{name: "H.265 parameter sets only in the SDP", clip: clip265, q: camsim.Quirks{NoInBandParameterSets: true}},
		{name: "H.265 AUD and SEI first", clip: clip265, q: camsim.Quirks{AUDFirst: true, SEIFirst: true}},
		{name: "H.265 Annex-B inside RTP", clip: clip265, q: camsim.Quirks{AnnexBInRTP: true}},
		{name: "H.265 oversized NAL units", clip: clip265, q: camsim.Quirks{KeyframeNALUBytes: big}, check: oversized},
		{name: "UDP transport", udp: true},
		{name: "H.265 over UDP", clip: clip265, udp: true},
		{name: "Basic auth", user: "admin", auth: "basic"},
		{name: "Digest auth", user: "admin", auth: "digest"},
		{name: "Digest auth over UDP", user: "admin", auth: "digest", udp: true},
		{name: "oversized NAL units", q: camsim.Quirks{KeyframeNALUBytes: big}, check: oversized},
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
			t.Parallel()
			clip := c.clip
			if clip == "" {
				clip = clip264
			}
			sim, err := camsim.New(camsim.Config{Addr: "127.0.0.1:0", Cameras: 1, ClipPath: clip, Quirks: c.q, Logger: quiet(),
				UDP: c.udp, User: c.user, Pass: "s3cret p@ss/w0rd", AuthMethod: c.auth})
			if err != nil {
				t.Fatal(err)
			}
			if err := sim.Start(); err != nil {
				t.Fatal(err)
			}
			defer sim.Close()
			out := &sink{}
			transport := "tcp"
			if c.udp {
				transport = "udp"
			}
			cam := New(Config{CameraID: "q", URL: sim.URL(1), Transport: transport, Logger: quiet()}, out)
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
			codec := out.tracks[0].Codec
			if want := sim.Codec(); codec != want || (codec == media.CodecH265) != (len(out.tracks[0].VPS) > 0) {
				t.Fatalf("track codec %s (VPS %d bytes), the camera sends %s", codec, len(out.tracks[0].VPS), want)
			}
			if !out.aus[0].Key {
				t.Fatal("first frame is not a keyframe")
			}
			if out.badPTS != 0 {
				t.Fatalf("%d frames with non-increasing PTS", out.badPTS)
			}
			for _, au := range out.aus {
				for _, n := range au.NALUs {
					if len(n) == 0 || isAUD(codec, n) {
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
