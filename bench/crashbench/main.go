// Command crashbench kills a recording `ronda node` with SIGKILL at random
// moments, restarts it (crash recovery runs at every start), and then checks
// what a power cut would cost: how much footage each camera lost before each
// kill (camera time before the kill that is not in the index), and whether
// every segment file on disk plays under `ffmpeg -v error -xerror`.
//
//	go run ./bench/crashbench -kills 20
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	bu "github.com/ronda-jakarta/ronda/bench/internal/benchutil"
	"github.com/ronda-jakarta/ronda/demo"
)

func main() {
	bin := flag.String("ronda", "bin/ronda", "ronda binary")
	kills := flag.Int("kills", 20, "how many times to kill the node")
	cams := flag.Int("cameras", 4, "cameras")
	minUp := flag.Duration("min", 4*time.Second, "shortest time between start and kill")
	maxUp := flag.Duration("max", 12*time.Second, "longest time between start and kill")
	sync := flag.Duration("sync", 2*time.Second, "the node's sync interval")
	clip := flag.String("clip", "testdata/clip.h264", "camera clip")
	flag.Parse()

	dir, err := os.MkdirTemp("", "crashbench-")
	bu.Check(err)
	defer os.RemoveAll(dir)
	addr := fmt.Sprintf("127.0.0.1:%d", bu.FreePort())
	sim := bu.Start(dir, "camsim", *bin, "camsim", "--addr", addr, "--cameras", strconv.Itoa(*cams), "--clip", *clip)
	defer bu.Stop(sim)
	bu.WaitPort(addr)
	node := bu.NodeConfig(dir, addr, *cams, fmt.Sprintf("recording: {segment_duration: 10s, sync_interval: %s}\n", *sync))

	fmt.Printf("crashbench: %d kills of a node recording %d cameras (sync interval %s, 10 s segments, kill after %s–%s)\n",
		*kills, *cams, *sync, *minUp, *maxUp)
	var killedAt []time.Time
	for i := 0; i < *kills; i++ {
		p := bu.Start(dir, "node", *bin, "node", "--config", node.Config, "--log-level", "warn")
		bu.WaitPort(node.HTTP)
		up := *minUp + time.Duration(rand.Int64N(int64(*maxUp-*minUp)))
		time.Sleep(up)
		_ = p.Process.Signal(syscall.SIGKILL)
		killedAt = append(killedAt, time.Now())
		_ = p.Wait()
	}

	// One more start: recovery of the last kill; then look at what survived.
	p := bu.Start(dir, "node", *bin, "node", "--config", node.Config, "--log-level", "warn")
	bu.WaitPort(node.HTTP)
	c, err := demo.NewClient("https://"+node.HTTP, filepath.Join(node.Dir, "tls", "ca.pem"))
	bu.Check(err)
	ctx := context.Background()
	bu.Check(c.Login(ctx, "bench", node.Password))
	var lost []time.Duration
	for _, k := range killedAt {
		for i := 1; i <= *cams; i++ {
			rec, err := c.Recordings(ctx, fmt.Sprintf("3171011001-cam%d", i), k.Add(-time.Minute), k.Add(time.Second))
			bu.Check(err)
			end := time.Time{}
			for _, s := range rec.Spans {
				if !s.End.After(k.Add(500 * time.Millisecond)) {
					end = s.End
				}
			}
			if end.IsZero() {
				bu.Fatal("camera %d has no footage before the kill at %s", i, k)
			}
			lost = append(lost, k.Sub(end))
		}
	}
	bu.Stop(p)

	// Every file must play cleanly.
	files, _ := filepath.Glob(filepath.Join(node.Dir, "data", "recordings", "segments", "*", "*.mp4"))
	bad := 0
	for _, f := range files {
		out, err := exec.Command("ffmpeg", "-v", "error", "-xerror", "-i", f, "-f", "null", "-").CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			bad++
			fmt.Printf("  does not play cleanly: %s: %v %s\n", filepath.Base(f), err, strings.TrimSpace(string(out)))
		}
	}
	sort.Slice(lost, func(i, j int) bool { return lost[i] < lost[j] })
	q := func(p float64) time.Duration { return lost[int(p*float64(len(lost)-1))].Round(10 * time.Millisecond) }
	fmt.Printf("footage lost per camera per kill (%d samples): p50 %s, p95 %s, max %s (sync interval %s)\n",
		len(lost), q(0.5), q(0.95), q(1), *sync)
	fmt.Printf("segment files: %d, playing cleanly under ffmpeg -xerror: %d, not: %d\n", len(files), len(files)-bad, bad)
	if bad > 0 {
		os.Exit(1)
	}
}
