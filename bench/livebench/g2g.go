package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	bu "github.com/ronda-jakarta/ronda/bench/internal/benchutil"
	"github.com/ronda-jakarta/ronda/kelurahan"
)

const (
	g2gW, g2gH = 640, 360
	g2gFPS     = 25
	bits       = 44 // 40 bits of Unix ms (mod 2^40) + a 4-bit check
	bitW       = 14
	bandH      = 32
)

// stamp draws ms into a yuv420p frame's luma as the barcode g2g.mjs reads.
func stamp(y []byte, ms int64) {
	v := uint64(ms) & (1<<40 - 1)
	var sum uint64
	for n, k := v, 0; k < 10; k, n = k+1, n>>4 {
		sum += n & 15
	}
	word := v<<4 | sum&15
	for i := 0; i < bits; i++ {
		lum := byte(16)
		if word>>(bits-1-i)&1 == 1 {
			lum = 235
		}
		for row := 0; row < bandH; row++ {
			off := row*g2gW + i*bitW
			for x := 0; x < bitW; x++ {
				y[off+x] = lum
			}
		}
	}
}

// read decodes the barcode from a gray frame; ok is false if the check fails.
func read(gray []byte) (ms int64, ok bool) {
	var word uint64
	for i := 0; i < bits; i++ {
		word <<= 1
		if gray[16*g2gW+i*bitW+7] > 128 {
			word |= 1
		}
	}
	v := word >> 4
	var sum uint64
	for n, k := v, 0; k < 10; k, n = k+1, n>>4 {
		sum += n & 15
	}
	return int64(v), sum&15 == word&15
}

// latencyMS is now - the stamped time, both mod 2^40 ms.
func latencyMS(stamped int64) float64 {
	d := (time.Now().UnixMilli() & (1<<40 - 1)) - stamped
	if d < 0 {
		d += 1 << 40
	}
	return float64(d)
}

// relay is a one-path RTSP server: ffmpeg publishes (ANNOUNCE/RECORD), the
// node and the baseline reader play (DESCRIBE/SETUP/PLAY).
type relay struct {
	srv    *gortsplib.Server
	mu     sync.RWMutex
	stream *gortsplib.ServerStream
	pub    *gortsplib.ServerSession
}

func (r *relay) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream != nil && ctx.Session == r.pub {
		r.stream.Close()
		r.stream = nil
	}
}

func (r *relay) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, r.stream, nil
}

func (r *relay) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream != nil {
		r.stream.Close()
		r.pub.Close()
	}
	r.stream = &gortsplib.ServerStream{Server: r.srv, Desc: ctx.Description}
	if err := r.stream.Initialize(); err != nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, err
	}
	r.pub = ctx.Session
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (r *relay) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, r.stream, nil
}

func (r *relay) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (r *relay) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	ctx.Session.OnPacketRTPAny(func(m *description.Media, _ format.Format, p *rtp.Packet) {
		r.mu.RLock()
		s := r.stream
		r.mu.RUnlock()
		if s != nil {
			_ = s.WritePacketRTP(m, p)
		}
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// liveCamera runs the relay and ffmpeg encoding stamped frames into it.
func liveCamera(dir string) (url string, stop func()) {
	r := &relay{}
	addr := fmt.Sprintf("127.0.0.1:%d", bu.FreePort())
	r.srv = &gortsplib.Server{Handler: r, RTSPAddress: addr}
	bu.Check(r.srv.Start())
	url = "rtsp://" + addr + "/glass"
	logf, err := os.Create(filepath.Join(dir, "ffmpeg-camera.log"))
	bu.Check(err)
	ff := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "warning", "-f", "rawvideo", "-pix_fmt", "yuv420p",
		"-s", fmt.Sprintf("%dx%d", g2gW, g2gH), "-framerate", strconv.Itoa(g2gFPS), "-i", "pipe:0",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline", "-g", "50", "-bf", "0", "-b:v", "1500k",
		"-f", "rtsp", "-rtsp_transport", "tcp", url)
	ff.Stderr = logf
	in, err := ff.StdinPipe()
	bu.Check(err)
	bu.Check(ff.Start())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		frame := make([]byte, g2gW*g2gH*3/2)
		for i := range frame {
			frame[i] = 128
		}
		tick := time.NewTicker(time.Second / g2gFPS)
		defer tick.Stop()
		for {
			stamp(frame, time.Now().UnixMilli())
			if _, err := in.Write(frame); err != nil {
				return
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return url, func() {
		close(done)
		wg.Wait()
		in.Close()
		_ = ff.Wait()
		logf.Close()
		r.srv.Close()
	}
}

// ffmpegBaseline decodes the camera directly with ffmpeg (low-delay flags)
// and reads the barcode of every decoded frame.
func ffmpegBaseline(url string, d time.Duration) []float64 {
	ff := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-fflags", "nobuffer", "-flags", "low_delay",
		"-rtsp_transport", "tcp", "-i", url, "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1")
	out, err := ff.StdoutPipe()
	bu.Check(err)
	bu.Check(ff.Start())
	defer func() { _ = ff.Process.Kill(); _ = ff.Wait() }()
	br := bufio.NewReaderSize(out, g2gW*g2gH)
	gray := make([]byte, g2gW*g2gH)
	var lat []float64
	start := time.Now()
	for time.Since(start) < d+2*time.Second {
		if _, err := io.ReadFull(br, gray); err != nil {
			break
		}
		if time.Since(start) < 2*time.Second { // past the start-up burst
			continue
		}
		if ms, ok := read(gray); ok {
			lat = append(lat, latencyMS(ms))
		}
	}
	return lat
}

func glassToGlass(root, bin, dir string, d time.Duration) {
	fmt.Printf("\n== glass-to-glass latency: camera clock burnt into each frame -> page clock at presentation (%s of frames) ==\n", d)
	gdir := filepath.Join(dir, "g2g")
	bu.Check(os.MkdirAll(gdir, 0o755))
	url, stopCam := liveCamera(gdir)
	defer stopCam()
	time.Sleep(time.Second) // ffmpeg announces
	n := startNode(bin, gdir, map[string]string{"glass": url})
	defer stopProc(n.cmd)
	c := n.client()
	id := kelurahan.CompactCode("31.71.01.1001") + "-glass"
	n.waitStreaming(c, id)

	base := ffmpegBaseline(url, d)
	var res struct {
		OK      bool      `json:"ok"`
		Error   string    `json:"error"`
		Latency []float64 `json:"latency_ms"`
		Bad     int       `json:"bad"`
	}
	browser(root, "g2g.mjs", []string{"--url", n.url, "--user", "bench", "--password", n.pass, "--camera", id,
		"--seconds", strconv.Itoa(int(d.Seconds()))}, &res)
	if !res.OK {
		bu.Fatal("g2g: %s", res.Error)
	}
	fmt.Printf("%-52s %6s %6s %6s %7s\n", "path", "p50", "p95", "max", "frames")
	fmt.Printf("%-52s %6.0f %6.0f %6.0f %7d  (ms)\n", "camera -> ronda node -> WebRTC -> Chromium, presented", pct(res.Latency, 50), pct(res.Latency, 95), pct(res.Latency, 100), len(res.Latency))
	fmt.Printf("%-52s %6.0f %6.0f %6.0f %7d  (ms)\n", "camera -> ffmpeg decoding it directly (baseline)", pct(base, 50), pct(base, 95), pct(base, 100), len(base))
	if res.Bad > 0 {
		fmt.Printf("(%d presented frames had an unreadable barcode)\n", res.Bad)
	}
}
