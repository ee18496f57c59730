// Command recordbench measures ingest + recording of N camera streams by a
// real `ronda node` process, side by side with ffmpeg recording the same
// streams the way Frigate does (`-c copy -f segment`), in one run:
// CPU seconds per stream-hour, peak RSS per stream, bytes recorded.
//
//	go run ./bench/recordbench -streams 10,50,110 -duration 60s
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bu "github.com/ronda-jakarta/ronda/bench/internal/benchutil"
)

var profileDir string

func main() {
	bin := flag.String("ronda", "bin/ronda", "ronda binary")
	streams := flag.String("streams", "10,50,110", "stream counts to measure")
	dur := flag.Duration("duration", 60*time.Second, "measured interval per run")
	warm := flag.Duration("warmup", 10*time.Second, "time before measuring")
	bitrate := flag.Int("bitrate", 4_000_000, "bits/s per camera")
	clip := flag.String("clip", "testdata/clip.h264", "camera clip")
	flag.StringVar(&profileDir, "profile", "", "write a CPU profile of the node for each run into this directory")
	flag.Parse()
	fmt.Printf("recordbench: %s per run after %s warm-up, %d bit/s per camera, %d cores\n", *dur, *warm, *bitrate, bu.NumCPU())
	fmt.Printf("%-7s | %-45s | %-45s | %s\n", "", "ronda node", "ffmpeg -c copy -f segment", "")
	fmt.Printf("%-7s | %10s %11s %11s %10s | %10s %11s %11s %10s | %s\n", "streams", "cpu-s/st-h", "%1core", "RSS MB/st", "rec/expct",
		"cpu-s/st-h", "%1core", "RSS MB/st", "rec/expct", "ronda/ffmpeg CPU")
	for _, f := range strings.Split(*streams, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			bu.Fatal("bad -streams %q", f)
		}
		run(*bin, n, *dur, *warm, *bitrate, *clip)
	}
}

type result struct {
	cpu   float64 // CPU seconds over the interval
	rss   float64 // peak RSS, bytes (sum over processes)
	bytes int64   // bytes recorded on disk
	reads float64 // read syscalls over the interval
}

func run(bin string, n int, dur, warm time.Duration, bitrate int, clip string) {
	dir, err := os.MkdirTemp("", "recordbench-")
	bu.Check(err)
	defer os.RemoveAll(dir)
	addr := fmt.Sprintf("127.0.0.1:%d", bu.FreePort())
	sim := bu.Start(dir, "camsim", bin, "camsim", "--addr", addr, "--cameras", strconv.Itoa(n), "--bitrate", strconv.Itoa(bitrate), "--clip", clip)
	defer bu.Stop(sim)
	bu.WaitPort(addr)

	ours := measureNode(bin, dir, addr, n, dur, warm)
	theirs := measureFFmpeg(dir, addr, n, dur, warm)
	hours := dur.Hours() * float64(n)
	// Both record from warm-up start; what was recorded over what the cameras sent.
	expect := float64(n) * float64(bitrate) / 8 * (dur + warm).Seconds()
	fmt.Printf("%7d | %10.1f %10.1f%% %11.2f %10.2f | %10.1f %10.1f%% %11.2f %10.2f | %.2fx\n", n,
		ours.cpu/hours, 100*ours.cpu/dur.Seconds(), ours.rss/float64(n)/1e6, float64(ours.bytes)/expect,
		theirs.cpu/hours, 100*theirs.cpu/dur.Seconds(), theirs.rss/float64(n)/1e6, float64(theirs.bytes)/expect,
		ours.cpu/theirs.cpu)
	fmt.Printf("%7s   read syscalls/s per stream: ronda %.0f\n", "", ours.reads/dur.Seconds()/float64(n))
}

func measureNode(bin, dir, camAddr string, n int, dur, warm time.Duration) result {
	node := bu.NodeConfig(dir, camAddr, n, "")
	args := []string{"node", "--config", node.Config, "--log-level", "warn"}
	pprofAddr := ""
	if profileDir != "" {
		pprofAddr = fmt.Sprintf("127.0.0.1:%d", bu.FreePort())
		args = append(args, "--pprof", pprofAddr)
	}
	p := bu.Start(dir, "node", bin, args...)
	defer bu.Stop(p)
	if pprofAddr != "" {
		go func() {
			time.Sleep(warm)
			out := filepath.Join(profileDir, fmt.Sprintf("node-%d.pprof", n))
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, int(dur.Seconds())-1)
			if err := exec.Command("curl", "-s", "-o", out, url).Run(); err != nil {
				fmt.Fprintln(os.Stderr, "profile:", err)
			}
		}()
	}
	r := measure([]*exec.Cmd{p}, dur, warm)
	r.bytes = bu.DirSize(filepath.Join(node.Dir, "data", "recordings", "segments"))
	return r
}

func measureFFmpeg(dir, camAddr string, n int, dur, warm time.Duration) result {
	var ps []*exec.Cmd
	for i := 1; i <= n; i++ {
		out := filepath.Join(dir, "ffmpeg", fmt.Sprintf("cam%d", i))
		bu.Check(os.MkdirAll(out, 0o750))
		ps = append(ps, bu.Start(dir, fmt.Sprintf("ffmpeg%d", i), "ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp",
			"-i", fmt.Sprintf("rtsp://%s/cam%d", camAddr, i), "-c", "copy", "-f", "segment", "-segment_time", "300",
			"-reset_timestamps", "1", filepath.Join(out, "%03d.mp4")))
	}
	defer func() {
		for _, p := range ps {
			bu.Stop(p)
		}
	}()
	r := measure(ps, dur, warm)
	r.bytes = bu.DirSize(filepath.Join(dir, "ffmpeg"))
	return r
}

func measure(ps []*exec.Cmd, dur, warm time.Duration) result {
	time.Sleep(warm)
	c0, s0 := 0.0, 0.0
	for _, p := range ps {
		c0 += bu.CPUSeconds(p.Process.Pid)
		s0 += bu.ReadSyscalls(p.Process.Pid)
	}
	time.Sleep(dur)
	var r result
	for _, p := range ps {
		r.cpu += bu.CPUSeconds(p.Process.Pid)
		r.rss += bu.PeakRSS(p.Process.Pid)
		r.reads += bu.ReadSyscalls(p.Process.Pid)
	}
	r.cpu -= c0
	r.reads -= s0
	return r
}
