// Command diskfullbench runs a real node recording 4 Mbit/s cameras onto a
// small ext4 filesystem (a loop device, so O_DIRECT and ENOSPC are the real
// thing) and checks what a kelurahan officer would: recording never stops,
// retention frees space oldest first, held footage survives and plays, and
// when holds fill the disk the node keeps the newest footage rotating and
// raises its alarm. Finally another process grabs all the free space at once
// (a log file gone wild): the node loses at most a few seconds, says
// "disk_full" for them, and carries on.
//
// It needs root (mount) and a loop device. Numbers are printed; it exits
// non-zero when a check fails.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	bu "github.com/ronda-jakarta/ronda/bench/internal/benchutil"
	"github.com/ronda-jakarta/ronda/demo"
)

var cleanupOnFatal func()

// must is bu.Check that unmounts and removes the bench's files first.
func must(err error) {
	if err != nil && cleanupOnFatal != nil {
		cleanupOnFatal()
	}
	bu.Check(err)
}

func main() {
	bin := flag.String("ronda", "bin/ronda", "ronda binary")
	cams := flag.Int("cameras", 8, "cameras at 4 Mbit/s")
	sizeMiB := flag.Int("size", 512, "filesystem size, MiB")
	fill := flag.Duration("fill", 150*time.Second, "phase 1: record until the disk has been full for a while")
	held := flag.Duration("held", 90*time.Second, "phase 2: everything recorded so far is held")
	grab := flag.Duration("grab", 40*time.Second, "phase 3: another process takes all free space")
	flag.Parse()

	dir, err := os.MkdirTemp("", "diskfullbench-")
	bu.Check(err)
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		cleanups = nil
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	exit := func(code int) { cleanup(); os.Exit(code) }
	cleanupOnFatal = cleanup
	fmt.Printf("diskfullbench: %d cameras x 4 Mbit/s onto a %d MiB ext4 loop filesystem (retention every 2 s, reserve 64 MiB + 30 s of writes)\n", *cams, *sizeMiB)

	addr := fmt.Sprintf("127.0.0.1:%d", bu.FreePort())
	sim := bu.Start(dir, "camsim", *bin, "camsim", "--addr", addr, "--cameras", strconv.Itoa(*cams), "--bitrate", "4000000")
	cleanups = append(cleanups, func() { bu.Stop(sim) })
	bu.WaitPort(addr)
	node := bu.NodeConfig(dir, addr, *cams, "recording: {segment_duration: 10s, sync_interval: 2s}\nretention: {reserve_mib: 64, headroom: 30s, interval: 2s}\n")
	data := filepath.Join(node.Dir, "data")
	must(os.MkdirAll(data, 0o750))
	img := filepath.Join(dir, "disk.img")
	mustRun("truncate", "-s", fmt.Sprintf("%dM", *sizeMiB), img)
	mustRun("mkfs.ext4", "-q", "-F", "-m", "0", img) // no root reserve: a full disk is full for the node too
	if out, err := exec.Command("mount", "-o", "loop", img, data).CombinedOutput(); err != nil {
		fmt.Printf("bench: mount a loop filesystem (needs root and /dev/loop*): %v %s\n", err, out)
		exit(1)
	}
	cleanups = append(cleanups, func() { _ = exec.Command("umount", "-l", data).Run() })

	p := bu.Start(dir, "node", *bin, "node", "--config", node.Config, "--log-level", "info")
	cleanups = append(cleanups, func() { bu.Stop(p) })
	bu.WaitPort(node.HTTP)
	c, err := demo.NewClient("https://"+node.HTTP, filepath.Join(node.Dir, "tls", "ca.pem"))
	must(err)
	ctx := context.Background()
	must(c.Login(ctx, "bench", node.Password))
	camID := func(i int) string { return fmt.Sprintf("3171011001-cam%d", i) }

	// Once a second: free space, the alarm, and for every camera how far
	// behind now its recordings end (recording never stops: this stays at
	// about the sync interval), per phase.
	var mu sync.Mutex
	phase := 1
	minFree := map[int]uint64{1: 1 << 63, 2: 1 << 63, 3: 1 << 63}
	maxLag := map[int]time.Duration{}
	var alarmAt, grabAt time.Time
	var alarmText string
	resumed := map[int]time.Duration{} // phase 3: when footage newer than the grab appeared, per camera
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t0 := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
			mu.Lock()
			ph := phase
			mu.Unlock()
			var st syscall.Statfs_t
			if syscall.Statfs(data, &st) == nil {
				mu.Lock()
				minFree[ph] = min(minFree[ph], st.Bavail*uint64(st.Bsize))
				mu.Unlock()
			}
			if cl, err := c.Cluster(ctx); err == nil {
				if a, _ := cl["recording_alarm"].(string); a != "" {
					mu.Lock()
					if alarmAt.IsZero() {
						alarmAt, alarmText = time.Now(), a
					}
					mu.Unlock()
				}
			}
			if time.Since(t0) < 15*time.Second {
				continue // the cameras are starting
			}
			now := time.Now()
			for i := 1; i <= *cams; i++ {
				rec, err := c.Recordings(ctx, camID(i), now.Add(-2*time.Minute), now)
				lag := 2 * time.Minute
				if err == nil && len(rec.Spans) > 0 {
					lag = now.Sub(rec.Spans[len(rec.Spans)-1].End)
				}
				mu.Lock()
				maxLag[ph] = max(maxLag[ph], lag)
				if ph == 3 && !grabAt.IsZero() && err == nil && len(rec.Spans) > 0 && rec.Spans[len(rec.Spans)-1].End.After(grabAt.Add(time.Second)) {
					if _, ok := resumed[i]; !ok {
						resumed[i] = now.Sub(grabAt)
					}
				}
				mu.Unlock()
			}
		}
	}()
	// retained: the shortest continuous footage any camera has back from now.
	retained := func() time.Duration {
		worst := time.Hour
		now := time.Now()
		for i := 1; i <= *cams; i++ {
			rec, err := c.Recordings(ctx, camID(i), now.Add(-10*time.Minute), now)
			d := time.Duration(0)
			if err == nil && len(rec.Spans) > 0 {
				last := rec.Spans[len(rec.Spans)-1]
				d = last.End.Sub(last.Start)
			}
			worst = min(worst, d)
		}
		return worst
	}

	start := time.Now()
	cpu0 := bu.CPUSeconds(p.Process.Pid)
	// A citizen's report early on: cam1's first 20 s are held.
	time.Sleep(30 * time.Second)
	holdFrom, holdTo := start.Add(5*time.Second), start.Add(25*time.Second)
	var h api.Hold
	_, err = c.Do(ctx, "POST", "/api/v1/cameras/"+camID(1)+"/holds",
		strings.NewReader(fmt.Sprintf(`{"from":%q,"to":%q,"reason":"JAKI-4711 (diskfullbench)"}`, holdFrom.UTC().Format(time.RFC3339Nano), holdTo.UTC().Format(time.RFC3339Nano))),
		"application/json", &h)
	must(err)
	time.Sleep(*fill - 30*time.Second)
	phase1 := time.Now()
	_, gaps1 := coverage(ctx, c, camID(2), start, phase1)
	ret1 := retained()
	mu.Lock()
	phase = 2
	mu.Unlock()

	// Phase 2: everything recorded so far on every camera is held.
	for i := 1; i <= *cams; i++ {
		_, err := c.Do(ctx, "POST", "/api/v1/cameras/"+camID(i)+"/holds",
			strings.NewReader(fmt.Sprintf(`{"from":%q,"to":%q,"reason":"case 2026-77 (diskfullbench)"}`, start.Add(-time.Minute).UTC().Format(time.RFC3339Nano), phase1.UTC().Format(time.RFC3339Nano))),
			"application/json", nil)
		must(err)
	}
	heldAt := time.Now()
	time.Sleep(*held)
	phase2 := time.Now()
	ret2 := retained()
	mu.Lock()
	phase = 3
	mu.Unlock()

	// Phase 3: another process takes all the free space at once.
	mu.Lock()
	grabAt = time.Now()
	mu.Unlock()
	grabbed := grabAll(data)
	time.Sleep(*grab)
	end := time.Now()
	ret3 := retained()
	close(stop)
	wg.Wait()
	cpu := bu.CPUSeconds(p.Process.Pid) - cpu0

	failed := false
	check := func(ok bool, format string, a ...any) {
		mark := "ok  "
		if !ok {
			mark, failed = "FAIL", true
		}
		fmt.Printf("  %s %s\n", mark, fmt.Sprintf(format, a...))
	}
	mu.Lock()
	fmt.Printf("phase 1 (%s): the disk filled; retention keeps free space at the floor\n", fill.Round(time.Second))
	check(maxLag[1] <= 5*time.Second, "recording never stopped: recordings ended at most %.1f s before now (sync interval 2 s)", maxLag[1].Seconds())
	check(minFree[1] > 0, "lowest free space %d MiB (floor: 64 MiB + 30 s of writes)", minFree[1]>>20)
	check(gaps1["deleted"] > 30*time.Second, "oldest footage deleted first: cam2's first %s is gone, the gap says %q", gaps1["deleted"].Round(time.Second), "deleted")
	fmt.Printf("  newest continuous footage kept per camera: %.0f s\n", ret1.Seconds())
	fmt.Printf("phase 2 (%s): all footage until %s held\n", held.Round(time.Second), phase1.Format("15:04:05"))
	check(!alarmAt.IsZero(), "alarm raised %.0f s after the holds: %q", alarmAt.Sub(heldAt).Seconds(), alarmText)
	check(maxLag[2] <= 5*time.Second, "recording never stopped: recordings ended at most %.1f s before now", maxLag[2].Seconds())
	check(minFree[2] > 0, "lowest free space %d MiB (the emergency margin: 64 MiB + 5 s of writes)", minFree[2]>>20)
	check(ret2 >= 10*time.Second, "the newest unheld footage keeps rotating: %.0f s kept per camera", ret2.Seconds())
	fmt.Printf("phase 3 (%s): another process took the %d MiB left\n", grab.Round(time.Second), grabbed>>20)
	worst := time.Duration(0)
	for i := 1; i <= *cams; i++ {
		d, ok := resumed[i]
		if !ok {
			d = time.Hour
		}
		worst = max(worst, d)
	}
	check(worst <= 15*time.Second, "recording resumed by itself: new footage on every camera within %.1f s of the grab (retention pass every 2 s, sync every 2 s)", worst.Seconds())
	mu.Unlock()
	reasons := map[string]time.Duration{}
	for i := 1; i <= *cams; i++ {
		_, gaps := coverage(ctx, c, camID(i), phase2.Add(-time.Second), end)
		for r, d := range gaps {
			reasons[r] += d.Round(100 * time.Millisecond)
		}
	}
	check(reasons["disk_full"] > 0, "the seconds lost say why (gap time by reason, all cameras): %v", reasons)
	fmt.Printf("  newest continuous footage kept per camera: %.0f s\n", ret3.Seconds())

	// Held footage survived everything and plays.
	rec, _ := coverage(ctx, c, camID(1), holdFrom, holdTo)
	check(rec >= holdTo.Sub(holdFrom)-2*time.Second, "cam1's held report footage is all there: %.1f of %.0f s", rec.Seconds(), holdTo.Sub(holdFrom).Seconds())
	mp4, err := c.Media(ctx, camID(1), holdFrom, holdTo)
	playErr := err
	if err == nil {
		f := filepath.Join(dir, "held.mp4")
		must(os.WriteFile(f, mp4, 0o600))
		if out, err := exec.Command("ffmpeg", "-v", "error", "-xerror", "-i", f, "-f", "null", "-").CombinedOutput(); err != nil || len(out) > 0 {
			playErr = fmt.Errorf("%v %s", err, out)
		}
	}
	check(playErr == nil, "cam1's held footage plays under ffmpeg -xerror (%d bytes) %v", len(mp4), errOrEmpty(playErr))
	heldOK := true
	for i := 2; i <= *cams; i++ {
		r, _ := coverage(ctx, c, camID(i), phase1.Add(-40*time.Second), phase1.Add(-10*time.Second))
		heldOK = heldOK && r >= 28*time.Second
	}
	check(heldOK, "phase 2's holds: the held 30 s before it on every camera survived phases 2 and 3")
	deletions := countLog(filepath.Join(dir, "node.log"), "retention deleted footage")
	fmt.Printf("retention passes that deleted footage: %d; node CPU %.1f%% of one core over %s\n", deletions, 100*cpu/end.Sub(start).Seconds(), end.Sub(start).Round(time.Second))
	if failed {
		exit(1)
	}
	cleanup()
}

// coverage returns how much of [from,to) a camera has, and gap time per reason.
func coverage(ctx context.Context, c *demo.Client, cam string, from, to time.Time) (time.Duration, map[string]time.Duration) {
	rec, err := c.Recordings(ctx, cam, from, to)
	gaps := map[string]time.Duration{}
	if err != nil {
		return 0, gaps
	}
	var d time.Duration
	for _, s := range rec.Spans {
		d += s.End.Sub(s.Start)
	}
	for _, g := range rec.Gaps {
		gaps[g.Reason] += g.End.Sub(g.Start)
	}
	return d, gaps
}

// grabAll takes every free block of the filesystem at dir, as a runaway
// log file would: big fallocate calls first, then ever smaller ones.
func grabAll(dir string) uint64 {
	total := uint64(0)
	for i, step := 0, int64(64<<20); step >= 4<<10; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("junk-%d.bin", i)))
		if err != nil {
			break // not even an inode left
		}
		err = syscall.Fallocate(int(f.Fd()), 0, 0, step)
		f.Close()
		if err != nil {
			os.Remove(f.Name())
			step /= 2
			continue
		}
		total += uint64(step)
	}
	return total
}

func countLog(path, what string) int {
	raw, _ := os.ReadFile(path)
	return strings.Count(string(raw), what)
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func mustRun(name string, args ...string) {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		must(fmt.Errorf("%s %s: %v %s", name, strings.Join(args, " "), err, out))
	}
}
