package ingest

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/ronda-jakarta/ronda/camsim"
	"github.com/ronda-jakarta/ronda/node/media"
)

type sink struct {
	mu      sync.Mutex
	tracks  []media.Track
	aus     []*media.AccessUnit
	stops   []string
	badPTS  int
	lastPTS time.Duration
}

func (s *sink) OnTrack(t media.Track) { s.mu.Lock(); s.tracks = append(s.tracks, t); s.mu.Unlock() }
func (s *sink) OnStop(r string)       { s.mu.Lock(); s.stops = append(s.stops, r); s.mu.Unlock() }
func (s *sink) OnAccessUnit(au *media.AccessUnit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.aus) > 0 && au.PTS <= s.lastPTS {
		s.badPTS++
	}
	s.lastPTS = au.PTS
	s.aus = append(s.aus, au)
}

func (s *sink) count() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.aus) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startCamsim(t *testing.T, addr string) *camsim.Server {
	t.Helper()
	s, err := camsim.New(camsim.Config{Addr: addr, Cameras: 1, ClipPath: "../../testdata/clip.h264", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestIngestAndReconnect(t *testing.T) {
	sim := startCamsim(t, "127.0.0.1:0")
	addr := sim.Addr()
	out := &sink{}
	cam := New(Config{CameraID: "c1", URL: sim.URL(1), Logger: quiet(), MinBackoff: 100 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}, out)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { cam.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor(t, 10*time.Second, "3 s of frames", func() bool { return out.count() >= 45 })
	out.mu.Lock()
	if len(out.tracks) == 0 || out.tracks[0].Width != 640 || out.tracks[0].Height != 360 || out.tracks[0].Codec != media.CodecH264 {
		t.Fatalf("track %+v", out.tracks)
	}
	first := out.aus[0]
	if !first.Key {
		t.Fatal("first access unit handed on is not a keyframe")
	}
	keys := 0
	for _, au := range out.aus {
		for _, n := range au.NALUs {
			if h264.NALUType(n[0]&0x1f) == h264.NALUTypeAccessUnitDelimiter {
				t.Fatal("AUD not stripped")
			}
		}
		if au.Key != h264.IsRandomAccess(au.NALUs) {
			t.Fatal("key flag disagrees with the NAL units")
		}
		if au.Key {
			keys++
		}
	}
	if keys < 2 || out.badPTS != 0 {
		t.Fatalf("%d keyframes, %d non-increasing PTS", keys, out.badPTS)
	}
	span := out.aus[len(out.aus)-1].Wall.Sub(first.Wall)
	out.mu.Unlock()
	if span < 2500*time.Millisecond || span > 5*time.Second {
		t.Fatalf("wall clock span of %d frames = %s", out.count(), span)
	}
	st := cam.Status()
	if st.State != StateStreaming || st.GOPFrames != 15 || st.FPS < 12 || st.FPS > 18 {
		t.Fatalf("status %+v", st)
	}

	// The camera goes away: failing with a reason, then back on the same address.
	sim.Close()
	waitFor(t, 15*time.Second, "failing state", func() bool { return cam.Status().State == StateFailing })
	if r := cam.Status().Reason; r == "" {
		t.Fatal("failing without a reason")
	}
	out.mu.Lock()
	stops := len(out.stops)
	out.mu.Unlock()
	if stops == 0 {
		t.Fatal("consumer not told the stream stopped")
	}
	sim2 := startCamsim(t, addr)
	defer sim2.Close()
	n := out.count()
	waitFor(t, 15*time.Second, "streaming again", func() bool { return cam.Status().State == StateStreaming && out.count() > n+15 })
	if cam.Status().Reconnects < 1 {
		t.Fatal("reconnect not counted")
	}
}

func TestUnreachableCamera(t *testing.T) {
	out := &sink{}
	cam := New(Config{CameraID: "c1", URL: "rtsp://127.0.0.1:1/cam1", Logger: quiet(), MinBackoff: 50 * time.Millisecond}, out)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { cam.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 10*time.Second, "failing", func() bool { return cam.Status().State == StateFailing })
	if r := cam.Status().Reason; !strings.Contains(r, "unreachable") {
		t.Fatalf("reason %q, want it to say the camera is unreachable", r)
	}
}
