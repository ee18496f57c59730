// Command recordbench measures ingest + recording of N camera streams by a
// real `ronda node` process, side by side with ffmpeg recording the same
// streams the way Frigate does (`-c copy -f segment`), in one run:
// CPU seconds per stream-hour and peak RSS per stream, from /proc.
//
//	go run ./bench/recordbench -streams 10,50,110 -duration 60s
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/certs"
)

const clkTck = 100 // USER_HZ on Linux

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
	fmt.Printf("recordbench: %s per run after %s warm-up, %d bit/s per camera, %d cores\n", *dur, *warm, *bitrate, numCPU())
	fmt.Printf("%-7s | %-45s | %-45s | %s\n", "", "ronda node", "ffmpeg -c copy -f segment", "")
	fmt.Printf("%-7s | %10s %11s %11s %10s | %10s %11s %11s %10s | %s\n", "streams", "cpu-s/st-h", "%1core", "RSS MB/st", "rec/expct",
		"cpu-s/st-h", "%1core", "RSS MB/st", "rec/expct", "ronda/ffmpeg CPU")
	for _, f := range strings.Split(*streams, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fatal("bad -streams %q", f)
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

func readSyscalls(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "syscr: "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func run(bin string, n int, dur, warm time.Duration, bitrate int, clip string) {
	dir, err := os.MkdirTemp("", "recordbench-")
	check(err)
	defer os.RemoveAll(dir)
	port := freePort()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	sim := start(dir, "camsim", bin, "camsim", "--addr", addr, "--cameras", strconv.Itoa(n), "--bitrate", strconv.Itoa(bitrate), "--clip", clip)
	defer stop(sim)
	waitPort(addr)

	ours := measureNode(bin, dir, addr, n, dur, warm)
	theirs := measureFFmpeg(dir, addr, n, dur, warm)
	hours := dur.Hours() * float64(n)
	// Both record from warm-up start; what was recorded over what the cameras sent.
	expect := float64(n) * float64(bitrate) / 8 * (dur + warm).Seconds()
	fmt.Printf("%7d | %10.1f %10.1f%% %11.2f %10.2f | %10.1f %10.1f%% %11.2f %10.2f | %.2fx\n", n,
		ours.cpu/hours, 100*ours.cpu/dur.Seconds(), ours.rss/float64(n)/1e6, float64(ours.bytes)/expect,
		theirs.cpu/hours, 100*theirs.cpu/dur.Seconds(), theirs.rss/float64(n)/1e6, float64(theirs.bytes)/expect,
		ours.cpu/theirs.cpu)
	fmt.Printf("%7s   read syscalls/s per stream: ronda %.0f, ffmpeg %.0f\n", "", ours.reads/dur.Seconds()/float64(n), theirs.reads/dur.Seconds()/float64(n))
}

func measureNode(bin, dir, camAddr string, n int, dur, warm time.Duration) result {
	nd := filepath.Join(dir, "node")
	check(certs.InitCA(filepath.Join(dir, "ca"), "bench"))
	ca, err := certs.LoadCA(filepath.Join(dir, "ca"))
	check(err)
	check(ca.Issue(filepath.Join(nd, "tls"), certs.IssueOptions{Identity: certs.Identity{Kind: certs.KindNode, Kelurahan: "31.71.01.1001", NodeID: "bench"}}))
	check(os.WriteFile(filepath.Join(nd, "secret"), []byte(strings.Repeat("s", 40)), 0o600))
	hash, err := auth.HashPassword("bench")
	check(err)
	var b strings.Builder
	fmt.Fprintf(&b, "node_id: bench\nkelurahan: 31.71.01.1001\ndata_dir: %s\n", filepath.Join(nd, "data"))
	fmt.Fprintf(&b, "http: {listen: 127.0.0.1:%d}\nlive: {udp: 127.0.0.1:%d}\n", freePort(), freePort())
	fmt.Fprintf(&b, "tls: {cert: %s, key: %s, ca: %s}\n", filepath.Join(nd, "tls", "cert.pem"), filepath.Join(nd, "tls", "key.pem"), filepath.Join(nd, "tls", "ca.pem"))
	fmt.Fprintf(&b, "auth: {token_secret_file: %s, users: [{name: b, password_hash: '%s', role: admin}]}\ncameras:\n", filepath.Join(nd, "secret"), hash)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  - {name: cam%d, url: 'rtsp://%s/cam%d'}\n", i, camAddr, i)
	}
	cfg := filepath.Join(nd, "node.yaml")
	check(os.WriteFile(cfg, []byte(b.String()), 0o600))
	args := []string{"node", "--config", cfg, "--log-level", "warn"}
	pprofAddr := ""
	if profileDir != "" {
		pprofAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
		args = append(args, "--pprof", pprofAddr)
	}
	p := start(dir, "node", bin, args...)
	defer stop(p)
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
	r.bytes = dirSize(filepath.Join(nd, "data", "recordings", "segments"))
	return r
}

func measureFFmpeg(dir, camAddr string, n int, dur, warm time.Duration) result {
	var ps []*exec.Cmd
	for i := 1; i <= n; i++ {
		out := filepath.Join(dir, "ffmpeg", fmt.Sprintf("cam%d", i))
		check(os.MkdirAll(out, 0o750))
		ps = append(ps, start(dir, fmt.Sprintf("ffmpeg%d", i), "ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp",
			"-i", fmt.Sprintf("rtsp://%s/cam%d", camAddr, i), "-c", "copy", "-f", "segment", "-segment_time", "300",
			"-reset_timestamps", "1", filepath.Join(out, "%03d.mp4")))
	}
	defer func() {
		for _, p := range ps {
			stop(p)
		}
	}()
	r := measure(ps, dur, warm)
	r.bytes = dirSize(filepath.Join(dir, "ffmpeg"))
	return r
}

func measure(ps []*exec.Cmd, dur, warm time.Duration) result {
	time.Sleep(warm)
	c0, s0 := 0.0, 0.0
	for _, p := range ps {
		c0 += cpuSeconds(p.Process.Pid)
		s0 += readSyscalls(p.Process.Pid)
	}
	time.Sleep(dur)
	var r result
	for _, p := range ps {
		r.cpu += cpuSeconds(p.Process.Pid)
		r.rss += peakRSS(p.Process.Pid)
		r.reads += readSyscalls(p.Process.Pid)
	}
	r.cpu -= c0
	r.reads -= s0
	return r
}

func cpuSeconds(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	// Fields after the command name (which may hold spaces) start after ")".
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clkTck
}

func peakRSS(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

func start(dir, name, bin string, args ...string) *exec.Cmd {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	check(err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	check(cmd.Start())
	return cmd
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitPort(addr string) {
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	fatal("camsim did not listen on %s", addr)
}

func numCPU() int {
	raw, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(raw), "processor\t:")
}

func check(err error) {
	if err != nil {
		fatal("%v", err)
	}
}

func fatal(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "recordbench: "+format+"\n", a...)
	os.Exit(1)
}
