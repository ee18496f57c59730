package camsim

import (
	"io"
	"log/slog"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
)

func start(t *testing.T, bitrate int) *Server {
	t.Helper()
	s, err := New(Config{Addr: "127.0.0.1:0", Cameras: 2, ClipPath: "../testdata/clip.h264", Bitrate: bitrate,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

type stats struct {
	mu        sync.Mutex
	aus, idrs int
	bytes     int
	lastPTS   int64
	backwards int
	inbandSPS bool
}

// read pulls a camera over RTSP/TCP for d and collects what a node would see.
func read(t *testing.T, url string, d time.Duration) (*stats, *format.H264) {
	t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.ProtocolTCP
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Protocol: &tcp}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	var f *format.H264
	medi := desc.FindFormat(&f)
	if medi == nil {
		t.Fatal("no H264 in SDP")
	}
	dec, err := f.CreateDecoder()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		t.Fatal(err)
	}
	st := &stats{lastPTS: -1}
	c.OnPacketRTP(medi, f, func(p *rtp.Packet) {
		pts, ok := c.PacketPTS(medi, p)
		au, err := dec.Decode(p)
		if err != nil || !ok {
			return
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		st.aus++
		if pts <= st.lastPTS {
			st.backwards++
		}
		st.lastPTS = pts
		for _, n := range au {
			st.bytes += len(n)
			if h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
				st.inbandSPS = true
			}
		}
		if h264.IsRandomAccess(au) {
			st.idrs++
		}
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	return st, f
}

func TestCameraBehavesLikeACamera(t *testing.T) {
	s := start(t, 0)
	// Longer than the clip, so the loop point is crossed with monotonic timestamps.
	st, f := read(t, s.URL(2), 11*time.Second)
	st.mu.Lock()
	defer st.mu.Unlock()
	if f.SPS == nil || f.PPS == nil {
		t.Fatal("SPS/PPS missing from the SDP")
	}
	if !st.inbandSPS {
		t.Fatal("SPS not sent in-band")
	}
	if st.aus < 140 || st.aus > 175 {
		t.Fatalf("%d frames in 11 s, want about 165 at 15 fps", st.aus)
	}
	if st.idrs < 9 || st.idrs > 12 {
		t.Fatalf("%d keyframes in 11 s, want one per second", st.idrs)
	}
	if st.backwards != 0 {
		t.Fatalf("%d timestamps went backwards across the loop", st.backwards)
	}
}

func TestBitrateProfile(t *testing.T) {
	s := start(t, 4_000_000)
	st, _ := read(t, s.URL(1), 4*time.Second)
	st.mu.Lock()
	defer st.mu.Unlock()
	rate := float64(st.bytes*8) / (float64(st.aus) / 15)
	if rate < 3_400_000 || rate > 4_600_000 {
		t.Fatalf("stream rate %.0f bit/s, want 4 Mbit/s ± 15%%", rate)
	}
}

func TestFFmpegReadsIt(t *testing.T) {
	s := start(t, 0)
	out, err := exec.Command("ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", s.URL(1), "-t", "3", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
}

func TestBadClip(t *testing.T) {
	if _, err := New(Config{Cameras: 1, ClipPath: "nope.h264"}); err == nil {
		t.Fatal("missing clip accepted")
	}
	if _, err := ParseClip([]byte("not video")); err == nil {
		t.Fatal("garbage clip accepted")
	}
}
