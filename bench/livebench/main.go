// Command livebench measures live view (make bench), each result next to
// its baseline from the same run:
//
//  1. Time to first frame in headless Chromium for the demo's 2 s-GOP
//     camera, directly at its node and through a hub member, with the GOP
//     cache and without it (?gop_cache=0: the session starts at the next
//     keyframe, as a server without a cache would).
//  2. Glass-to-glass latency: a live camera (ffmpeg encoding frames that
//     carry the wall clock as a barcode, published to an RTSP server in this
//     process) recorded by a ronda node and played in Chromium; the page
//     reads the barcode of every frame it presents. Baseline: ffmpeg reading
//     the camera directly and decoding it (no Ronda, no browser).
//  3. Fan-out: 1 camera to 50 and to 200 WebRTC viewers (pion, in this
//     process): the node's CPU per viewer (against its CPU with no viewer)
//     and whether every viewer received every frame.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	bu "github.com/ronda-jakarta/ronda/bench/internal/benchutil"
	"github.com/ronda-jakarta/ronda/demo"
)

func main() {
	bin := flag.String("ronda", "bin/ronda", "the ronda binary")
	trials := flag.Int("trials", 20, "time-to-first-frame trials per configuration")
	g2gFor := flag.Duration("g2g", 20*time.Second, "glass-to-glass sampling time")
	viewers := flag.String("viewers", "50,200", "fan-out viewer counts")
	window := flag.Duration("window", 20*time.Second, "fan-out measuring window")
	only := flag.String("only", "ttff,g2g,fanout", "which parts to run")
	flag.Parse()
	root, err := os.Getwd()
	bu.Check(err)
	*bin, err = filepath.Abs(*bin)
	bu.Check(err)
	dir, err := os.MkdirTemp("", "livebench-")
	bu.Check(err)
	defer os.RemoveAll(dir)
	fmt.Printf("livebench: %d CPUs, %s\n", bu.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	if strings.Contains(*only, "ttff") {
		ttff(root, *bin, dir, *trials)
	}
	if strings.Contains(*only, "g2g") {
		glassToGlass(root, *bin, dir, *g2gFor)
	}
	if strings.Contains(*only, "fanout") {
		var counts []int
		for _, s := range strings.Split(*viewers, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			bu.Check(err)
			counts = append(counts, n)
		}
		fanout(root, *bin, dir, counts, *window)
	}
}

// ---- 1. time to first frame ----

func ttff(root, bin, dir string, trials int) {
	fmt.Printf("\n== time to first frame (Chromium, click to first presented frame), 2 s-GOP camera, %d trials each ==\n", trials)
	m, stop := startDemo(root, bin, filepath.Join(dir, "demo"))
	defer stop()
	var cam demo.CameraEntry
	for _, c := range m.Cameras {
		if c.GOPSeconds == 2 {
			cam = c
			break
		}
	}
	if cam.ID == "" {
		bu.Fatal("the demo has no 2 s-GOP camera")
	}
	node := m.Nodes[0].URL
	for _, c := range m.Nodes {
		if c.Kelurahan == cam.Kelurahan {
			node = c.URL
		}
	}
	fmt.Printf("%-34s %6s %6s %6s %6s  %s\n", "where", "p50", "p95", "max", "min", "started from")
	for _, cfg := range []struct {
		name, url string
		nocache   bool
	}{
		{"node, GOP cache", node, false},
		{"node, no GOP cache (baseline)", node, true},
		{"hub member, GOP cache", m.Hubs[1].URL, false},
		{"hub member, no GOP cache (baseline)", m.Hubs[1].URL, true},
	} {
		args := []string{"--url", cfg.url, "--user", m.Users[0].User, "--password", m.Users[0].Password, "--camera", cam.ID, "--trials", strconv.Itoa(trials)}
		if cfg.nocache {
			args = append(args, "--no-gop-cache")
		}
		var res struct {
			OK          bool      `json:"ok"`
			Error       string    `json:"error"`
			TTFF        []float64 `json:"ttff_ms"`
			StartedFrom []string  `json:"started_from"`
		}
		browser(root, "ttff.mjs", args, &res)
		if !res.OK {
			bu.Fatal("ttff %s: %s", cfg.name, res.Error)
		}
		from := map[string]int{}
		for _, f := range res.StartedFrom {
			from[f]++
		}
		fmt.Printf("%-34s %6.0f %6.0f %6.0f %6.0f  %v  (ms)\n", cfg.name, pct(res.TTFF, 50), pct(res.TTFF, 95), pct(res.TTFF, 100), pct(res.TTFF, 0), from)
	}
}

// startDemo runs 'ronda demo' and waits until every camera records.
func startDemo(root, bin, dir string) (*demo.Manifest, func()) {
	bu.Check(os.MkdirAll(dir, 0o755))
	base := 30000 + os.Getpid()%200*100
	cmd := bu.Start(dir, "demo", bin, "demo", "--dir", filepath.Join(dir, "d"), "--base-port", strconv.Itoa(base),
		"--clip", filepath.Join(root, "testdata", "clip.h264"))
	stop := func() { bu.Stop(cmd) }
	var m demo.Manifest
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if raw, err := os.ReadFile(filepath.Join(dir, "d", "demo.json")); err == nil && json.Unmarshal(raw, &m) == nil {
			c, err := demo.NewClient(m.Hubs[0].URL, m.CAFile)
			bu.Check(err)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ok := c.Login(ctx, m.Users[0].User, m.Users[0].Password) == nil
			if ok {
				cams, err := c.Cameras(ctx)
				ok = err == nil && len(cams) == len(m.Cameras)
				for _, cm := range cams {
					ok = ok && cm.Recording
				}
			}
			cancel()
			if ok {
				return &m, stop
			}
		}
		if time.Now().After(deadline) {
			stop()
			bu.Fatal("the demo did not come up in 2 minutes (logs in %s)", dir)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// browser runs a test/browser script and decodes its JSON line into out.
func browser(root, script string, args []string, out any) {
	cmd := exec.Command("node", append([]string{filepath.Join(root, "test", "browser", script)}, args...)...)
	cmd.Dir = filepath.Join(root, "test", "browser")
	cmd.Stderr = os.Stderr
	raw, _ := cmd.Output()
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "{") {
			bu.Check(json.Unmarshal([]byte(l), out))
			return
		}
	}
	bu.Fatal("%s printed no result: %s", script, raw)
}

func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(p / 100 * float64(len(s)-1))
	return s[i]
}

// ---- standalone node ----

type nodeProc struct {
	cmd  *exec.Cmd
	url  string
	ca   string
	pass string
}

// startNode runs a ronda node (no hub: it works alone) recording cameras.
func startNode(bin, dir string, cameras map[string]string) nodeProc {
	bu.Check(os.MkdirAll(dir, 0o755))
	n := bu.NodeConfig(dir, "127.0.0.1:1", 0, "")
	f, err := os.OpenFile(n.Config, os.O_APPEND|os.O_WRONLY, 0)
	bu.Check(err)
	names := make([]string, 0, len(cameras))
	for name := range cameras {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(f, "  - {name: %s, url: '%s'}\n", name, cameras[name])
	}
	bu.Check(f.Close())
	cmd := bu.Start(dir, "node", bin, "node", "--config", n.Config)
	bu.WaitPort(n.HTTP)
	return nodeProc{cmd: cmd, url: "https://" + n.HTTP, ca: filepath.Join(n.Dir, "tls", "ca.pem"), pass: n.Password}
}

func (n nodeProc) client() *demo.Client {
	c, err := demo.NewClient(n.url, n.ca)
	bu.Check(err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bu.Check(c.Login(ctx, "bench", n.pass))
	return c
}

// waitStreaming waits until the node's camera streams.
func (n nodeProc) waitStreaming(c *demo.Client, id string) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var cam struct {
			State string `json:"state"`
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.Do(ctx, "GET", "/api/v1/cameras/"+id, nil, "", &cam)
		cancel()
		if err == nil && cam.State == "streaming" {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	bu.Fatal("camera %s never streamed", id)
}

func stopProc(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	bu.Stop(cmd)
}
