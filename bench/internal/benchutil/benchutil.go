// Package benchutil holds what the benchmarks share: running ronda and
// ffmpeg processes, a node configured for N simulated cameras, and reading
// CPU, memory and syscalls from /proc.
package benchutil

import (
	"bufio"
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

// Start runs bin with args, logging to dir/name.log; it dies with the caller.
func Start(dir, name, bin string, args ...string) *exec.Cmd {
	logf, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	Check(err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	Check(cmd.Start())
	return cmd
}

// Stop sends SIGTERM and waits up to 10 s, then kills.
func Stop(cmd *exec.Cmd) {
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

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Check(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitPort waits until addr accepts connections.
func WaitPort(addr string) {
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	Fatal("nothing listens on %s", addr)
}

// Node is a node's files for a benchmark.
type Node struct {
	Dir, Config, HTTP, Password string
}

// NodeConfig writes certificates, a secret and a config for a node recording
// n cameras of camsim at camAddr; extra is appended to the YAML.
func NodeConfig(dir, camAddr string, n int, extra string) Node {
	nd := filepath.Join(dir, "node")
	if _, err := os.Stat(filepath.Join(dir, "ca", certs.CAFile)); err != nil {
		Check(certs.InitCA(filepath.Join(dir, "ca"), "bench"))
	}
	ca, err := certs.LoadCA(filepath.Join(dir, "ca"))
	Check(err)
	Check(ca.Issue(filepath.Join(nd, "tls"), certs.IssueOptions{Identity: certs.Identity{Kind: certs.KindNode, Kelurahan: "31.71.01.1001", NodeID: "bench"}}))
	Check(os.WriteFile(filepath.Join(nd, "secret"), []byte(strings.Repeat("s", 40)), 0o600))
	hash, err := auth.HashPassword("bench")
	Check(err)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", FreePort())
	var b strings.Builder
	fmt.Fprintf(&b, "node_id: bench\nkelurahan: 31.71.01.1001\ndata_dir: %s\n", filepath.Join(nd, "data"))
	fmt.Fprintf(&b, "http: {listen: %s}\nlive: {udp: 127.0.0.1:%d}\n", httpAddr, FreePort())
	fmt.Fprintf(&b, "tls: {cert: %s, key: %s, ca: %s}\n", filepath.Join(nd, "tls", "cert.pem"), filepath.Join(nd, "tls", "key.pem"), filepath.Join(nd, "tls", "ca.pem"))
	fmt.Fprintf(&b, "auth: {token_secret_file: %s, users: [{name: bench, password_hash: '%s', role: admin}]}\n", filepath.Join(nd, "secret"), hash)
	b.WriteString(extra)
	b.WriteString("cameras:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  - {name: cam%d, url: 'rtsp://%s/cam%d'}\n", i, camAddr, i)
	}
	cfg := filepath.Join(nd, "node.yaml")
	Check(os.WriteFile(cfg, []byte(b.String()), 0o600))
	return Node{Dir: nd, Config: cfg, HTTP: httpAddr, Password: "bench"}
}

// CPUSeconds is a process's user+system CPU time.
func CPUSeconds(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	Check(err)
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clkTck
}

// PeakRSS is a process's peak resident set, in bytes.
func PeakRSS(pid int) float64 { return statusKB(pid, "VmHWM:") * 1024 }

// RSS is a process's resident set now, in bytes.
func RSS(pid int) float64 { return statusKB(pid, "VmRSS:") * 1024 }

// ResetPeakRSS restarts a process's peak-RSS accounting (VmHWM) from now.
func ResetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

func statusKB(pid int, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	Check(err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb
		}
	}
	return 0
}

// ReadSyscalls is a process's count of read syscalls.
func ReadSyscalls(pid int) float64 {
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

// DirSize sums the sizes of the files under dir.
func DirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// NumCPU counts the machine's processors.
func NumCPU() int {
	raw, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(raw), "processor\t:")
}

// Check stops the benchmark on an error.
func Check(err error) {
	if err != nil {
		Fatal("%v", err)
	}
}

// Fatal prints and exits.
func Fatal(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
	os.Exit(1)
}
