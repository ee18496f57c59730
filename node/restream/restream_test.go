package restream

import (
	"context"
	"errors"
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

	"github.com/ronda-jakarta/ronda/camsim"
	"github.com/ronda-jakarta/ronda/certs"
	"github.com/ronda-jakarta/ronda/node/media"
)

type auditRec struct{ user, camera, stream, outcome string }

// serve runs a re-stream server for camera "3171011001-cam1" fed from the
// test clip at 15 fps.
func serve(t *testing.T) (*Server, *[]auditRec, *sync.Mutex) {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/clip.h264")
	if err != nil {
		t.Fatal(err)
	}
	clip, err := camsim.ParseClip(raw)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := certs.InitCA(filepath.Join(dir, "ca"), "test"); err != nil {
		t.Fatal(err)
	}
	ca, err := certs.LoadCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Issue(filepath.Join(dir, "tls"), certs.IssueOptions{Identity: certs.Identity{Kind: certs.KindNode, Kelurahan: "31.71.01.1001", NodeID: "n1"}}); err != nil {
		t.Fatal(err)
	}
	b, err := certs.LoadBundle(filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem"), filepath.Join(dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var audits []auditRec
	s, err := New(Options{Listen: "127.0.0.1:0", TLS: b.HTTPSTLS(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Login: func(user, pass string) error {
			if user == "wall" && pass == "s3cret" {
				return nil
			}
			return errors.New("wrong user name or password")
		},
		Audit: func(user, camera, stream, remote, outcome string) {
			mu.Lock()
			audits = append(audits, auditRec{user, camera, stream, outcome})
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	fan := media.NewFanout()
	s.Add("3171011001-cam1", "main", fan)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fan.OnTrack(media.Track{Codec: media.CodecH264, SPS: clip.SPS, PPS: clip.PPS, Width: 640, Height: 360})
		keys := map[int]bool{}
		for _, k := range clip.Keyframes() {
			keys[k] = true
		}
		tick := time.NewTicker(time.Second / 15)
		defer tick.Stop()
		for i := 0; ; i++ {
			j := i % len(clip.AUs)
			fan.OnAccessUnit(&media.AccessUnit{PTS: time.Duration(i) * time.Second / 15, Wall: time.Now(), Key: keys[j], NALUs: clip.AUs[j]})
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait(); s.Close() })
	return s, &audits, &mu
}

// A video wall reads a camera over RTSPS with ffmpeg; a wrong password and
// an unknown camera are refused; each play and refusal is audited.
func TestFFmpegReadsACameraOverRTSPS(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is needed (make test installs it)")
	}
	s, audits, mu := serve(t)
	url := "rtsps://wall:s3cret@" + s.Addr() + "/3171011001-cam1"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-count_frames", "-read_intervals", "%+3",
		"-select_streams", "v", "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "csv=p=0", url).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", url, err, out)
	}
	f := strings.Split(strings.TrimSpace(string(out)), ",")
	if n, _ := strconv.Atoi(f[len(f)-1]); len(f) < 4 || f[0] != "h264" || f[1] != "640" || f[2] != "360" || n < 15 {
		t.Fatalf("ffprobe read %q, want h264,640,360 and ≥ 15 frames in 3 s", out)
	}
	for _, c := range []struct{ url, want string }{
		{"rtsps://wall:wrong@" + s.Addr() + "/3171011001-cam1", "401"},
		{"rtsps://wall:s3cret@" + s.Addr() + "/nope", "404"},
	} {
		out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", c.url).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Fatalf("ffprobe %s: %v %s, want it refused with %s", c.url, err, out, c.want)
		}
	}
	// Plain RTSP (no TLS) is not served.
	if out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-timeout", "3000000",
		"rtsp://wall:s3cret@"+s.Addr()+"/3171011001-cam1").CombinedOutput(); err == nil {
		t.Fatalf("plain RTSP was served: %s", out)
	}
	mu.Lock()
	defer mu.Unlock()
	var ok, denied, missing int
	for _, a := range *audits {
		switch {
		case a.outcome == "ok" && a.user == "wall" && a.camera == "3171011001-cam1" && a.stream == "main":
			ok++
		case strings.HasPrefix(a.outcome, "denied") && a.user == "wall":
			denied++
		case strings.Contains(a.outcome, "no such camera"):
			missing++
		}
	}
	if ok != 1 || denied < 1 || missing != 1 {
		t.Fatalf("audit %+v: want 1 play, the wrong password and the unknown camera", *audits)
	}
}

func TestTLSIsRequired(t *testing.T) {
	if _, err := New(Options{Listen: "127.0.0.1:0"}); err == nil {
		t.Fatal("a server without TLS was made")
	}
}
