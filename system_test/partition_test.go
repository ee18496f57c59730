//go:build e2e

package system_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/demo"
)

func hubNode(t *testing.T, c *demo.Client, id string) (api.Node, error) {
	nodes, err := c.Nodes(ctx(t))
	if err != nil {
		return api.Node{}, err
	}
	for _, n := range nodes {
		if n.NodeID == id {
			return n, nil
		}
	}
	return api.Node{}, fmt.Errorf("node %s not listed", id)
}

func outbox(t *testing.T, c *demo.Client) (last, acked uint64, err error) {
	cl, err := c.Cluster(ctx(t))
	if err != nil {
		return 0, 0, err
	}
	ob, _ := cl["outbox"].(map[string]any)
	l, _ := ob["last_seq"].(float64)
	a, _ := ob["acked_seq"].(float64)
	return uint64(l), uint64(a), nil
}

// checkPartition cuts one node off the hub (every link blackholed, like a
// cut cable) for outage, checks the node keeps serving its own staff and
// the hub shows it offline, heals the link, and checks the hub then holds
// exactly what the node recorded: every record committed once (acked seq =
// the node's last seq), the same coverage with no gap in the outage, and
// the same segment manifests.
func checkPartition(t *testing.T, f *federation, outage time.Duration) {
	m := f.m
	n := m.Nodes[0]
	nc := f.client(t, n.URL)
	hub := hubSeeing(t, f, n.NodeID)
	cams, err := nc.Cameras(ctx(t))
	if err != nil || len(cams) == 0 {
		t.Fatalf("node cameras: %v %v", cams, err)
	}
	before, _, err := outbox(t, nc)
	if err != nil {
		t.Fatal(err)
	}

	cut := time.Now()
	if _, err := demo.SetLink(context.Background(), f.dir, n.NodeID, "down", 0); err != nil {
		t.Fatal(err)
	}
	healed := false
	defer func() {
		if !healed {
			demo.SetLink(context.Background(), f.dir, n.NodeID, "up", 0)
		}
	}()
	took := poll(t, 30*time.Second, n.NodeID+" shown offline at the hub", func() error {
		hn, err := hubNode(t, hub, n.NodeID)
		if err != nil {
			return err
		}
		if hn.Online || hn.Status != "offline" {
			return fmt.Errorf("still %s", hn.Status)
		}
		if hn.OfflineSince == nil || hn.OfflineSince.Before(cut.Add(-time.Second)) || hn.StatusDetail == "" {
			return fmt.Errorf("offline since %v (cut at %v), detail %q", hn.OfflineSince, cut, hn.StatusDetail)
		}
		return nil
	})
	t.Logf("%s cut off; the hub shows it offline after %.1f s", n.NodeID, time.Since(cut).Seconds())
	_ = took

	// The node's own staff: a fresh login, live view and recorded footage,
	// through the API and through the node's own web UI in Chromium.
	local := f.client(t, n.URL)
	checkWhep(t, local, cams[0].ID)
	checkMedia(t, local, cams[len(cams)-1].ID)
	out := filepath.Join(repoRoot(t), "test-output")
	_ = os.MkdirAll(out, 0o755)
	lv := runBrowser(t, "live.mjs", "--url", n.URL, "--user", m.Users[0].User, "--password", m.Users[0].Password,
		"--camera", cams[0].ID, "--timeout", "30000", "--screenshot", filepath.Join(out, "partition-node-live.png"))
	if lv.VideoWidth == 0 || lv.Frames < 10 {
		t.Fatalf("node UI live view while cut off: %dx%d, %d frames", lv.VideoWidth, lv.VideoHeight, lv.Frames)
	}
	pb := runBrowser(t, "playback.mjs", "--url", n.URL, "--user", m.Users[0].User, "--password", m.Users[0].Password,
		"--camera", cams[len(cams)-1].ID, "--minutes", "1", "--timeout", "30000", "--screenshot", filepath.Join(out, "partition-node-playback.png"))
	if pb.VideoWidth == 0 {
		t.Fatalf("node UI playback while cut off: %+v", pb)
	}
	t.Logf("while cut off, the node's own UI logs in, plays live (%d frames, first after %.0f ms) and recorded video (%dx%d)",
		lv.Frames, lv.TTFFms, pb.VideoWidth, pb.VideoHeight)
	if rest := outage - time.Since(cut); rest > 0 {
		time.Sleep(rest)
	}
	// Still cut off: the hub has not seen anything recorded after the cut.
	for _, c := range cams {
		rec, err := hub.Recordings(ctx(t), c.ID, cut.Add(5*time.Second), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if rec.RecordedSeconds > 0 {
			t.Fatalf("the hub got %.1f s of %s's footage while the node was cut off", rec.RecordedSeconds, c.ID)
		}
	}
	last, acked, err := outbox(t, nc)
	if err != nil || last <= before || acked >= last {
		t.Fatalf("node outbox during the outage: last %d (before %d), acked %d, %v; want records waiting", last, before, acked, err)
	}
	t.Logf("after %.0f s cut off, %d records wait in %s's outbox", time.Since(cut).Seconds(), last-acked, n.NodeID)

	// An auditor places a hold at the hub on the cut-off node's camera: it
	// waits as pending until the node is back.
	held := placeHubHold(t, hub, cams[0].ID, cut)
	if held.State != "pending" || held.NodeID != n.NodeID {
		t.Fatalf("a hold placed at the hub for an offline node: %+v; want pending for %s", held, n.NodeID)
	}

	healAt := time.Now()
	if _, err := demo.SetLink(context.Background(), f.dir, n.NodeID, "up", 0); err != nil {
		t.Fatal(err)
	}
	healed = true
	poll(t, 60*time.Second, n.NodeID+" back and drained", func() error {
		hn, err := hubNode(t, hub, n.NodeID)
		if err != nil {
			return err
		}
		last, acked, err := outbox(t, nc)
		if err != nil {
			return err
		}
		if !hn.Online || hn.Status != "online" || hn.Behind != 0 || acked < last || hn.AckedSeq < last {
			return fmt.Errorf("status %s (%s), behind %d, node outbox last %d acked %d, hub acked %d", hn.Status, hn.StatusDetail, hn.Behind, last, acked, hn.AckedSeq)
		}
		return nil
	})
	t.Logf("%s back online and its backlog committed %.1f s after healing", n.NodeID, time.Since(healAt).Seconds())
	offline := map[string]int{}
	for _, e := range auditEqual(t, nc, hub, n.NodeID) {
		if !e.Time.Before(cut) && e.Time.Before(healAt) {
			offline[e.Action]++
		}
	}
	if offline["login"] == 0 || offline["live"] == 0 || offline["playback"] == 0 {
		t.Fatalf("audit events logged at %s while cut off: %v; want its staff's login, live view and playback", n.NodeID, offline)
	}
	t.Logf("audit events logged offline and now at the hub: %v", offline)

	// The hold reached the node when it reconnected; released at the hub, it
	// is gone from the node too.
	poll(t, 30*time.Second, "the hub hold applied at "+n.NodeID, func() error {
		h, err := findHold(t, hub, cams[0].ID, held.ID)
		if err != nil {
			return err
		}
		if h.State != "applied" {
			return fmt.Errorf("state %s %s", h.State, h.Error)
		}
		at, err := findHold(t, nc, cams[0].ID, held.ID)
		if err != nil {
			return fmt.Errorf("at the node: %w", err)
		}
		if !at.From.Equal(held.From) || !at.To.Equal(held.To) || at.Reason != held.Reason || !at.Active {
			return fmt.Errorf("at the node %+v, at the hub %+v", at, held)
		}
		return nil
	})
	if _, err := hub.Do(ctx(t), "DELETE", "/api/v1/cameras/"+cams[0].ID+"/holds/"+held.ID, nil, "", nil); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "the hub hold released at "+n.NodeID, func() error {
		h, err := findHold(t, hub, cams[0].ID, held.ID)
		if err != nil {
			return err
		}
		if h.State != "released" {
			return fmt.Errorf("state %s", h.State)
		}
		if _, err := findHold(t, nc, cams[0].ID, held.ID); err == nil {
			return fmt.Errorf("the node still holds %s", held.ID)
		}
		return nil
	})
	t.Logf("a hold placed at the hub while %s was cut off was pending, applied when it came back, and released on both", n.NodeID)

	from, to := cut.Add(-10*time.Second), healAt.Add(-2*time.Second)
	hubEqualsNode(t, nc, hub, n.NodeID, cams, from, to)
	if a, _ := nc.Recordings(ctx(t), cams[0].ID, from, to); a.RecordedSeconds < to.Sub(from).Seconds()-3 {
		t.Fatalf("the node itself recorded only %.1f s of the %.0f s window: it did not keep recording through the outage", a.RecordedSeconds, to.Sub(from).Seconds())
	}
}

// liveHub returns a client of a hub member that answers (the leader-kill
// test leaves one member down).
func liveHub(t *testing.T, f *federation) *demo.Client {
	t.Helper()
	for _, h := range f.m.Hubs {
		if c := loginHub(f, h); c != nil {
			return c
		}
	}
	t.Fatal("no hub member answers")
	return nil
}

// loginHub logs in to a hub member, nil if it does not answer (stopped).
func loginHub(f *federation, h demo.HubEntry) *demo.Client {
	c, err := demo.NewClient(h.URL, f.m.CAFile)
	if err != nil {
		return nil
	}
	lctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if c.Login(lctx, f.m.Users[0].User, f.m.Users[0].Password) != nil {
		return nil
	}
	return c
}

// hubEqualsNode waits until, over [from,to), the hub holds what the node
// recorded for each camera: the same recorded seconds (±1 s), no gap the
// node does not have, and the same segment manifests for the days so far.
func hubEqualsNode(t *testing.T, nc, hub *demo.Client, nodeID string, cams []api.Camera, from, to time.Time) {
	t.Helper()
	auditEqual(t, nc, hub, nodeID)
	for _, c := range cams {
		poll(t, 30*time.Second, "the hub's coverage of "+c.ID+" equals the node's", func() error {
			atNode, err := nc.Recordings(ctx(t), c.ID, from, to)
			if err != nil {
				return err
			}
			atHub, err := hub.Recordings(ctx(t), c.ID, from, to)
			if err != nil {
				return err
			}
			if d := atNode.RecordedSeconds - atHub.RecordedSeconds; d > 1 || d < -1 {
				return fmt.Errorf("recorded %.1f s at the node, %.1f s at the hub", atNode.RecordedSeconds, atHub.RecordedSeconds)
			}
			if len(atHub.Gaps) > len(atNode.Gaps) {
				return fmt.Errorf("gaps at the hub %+v, at the node %+v", atHub.Gaps, atNode.Gaps)
			}
			day := from.UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
			mn, err := nc.Recordings(ctx(t), c.ID, day, time.Now())
			if err != nil {
				return err
			}
			mh, err := hub.Recordings(ctx(t), c.ID, day, time.Now())
			if err != nil {
				return err
			}
			if !slices.Equal(mn.Manifests, mh.Manifests) {
				return fmt.Errorf("manifests: node %+v, hub %+v", mn.Manifests, mh.Manifests)
			}
			return nil
		})
	}
}

// auditEqual checks the hub holds the node's audit log exactly: every event
// the node logged (offline too) is at the hub once, with the same fields and
// chain hash, in an unbroken chain. (Reading the node's log is itself an
// audited action, so the hub may hold events logged after the node's list
// was taken; those are checked on the next call.)
func auditEqual(t *testing.T, nc, hub *demo.Client, nodeID string) []api.AuditRecord {
	t.Helper()
	atNode, err := nc.Audit(ctx(t), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(atNode) == 0 {
		t.Fatalf("node %s has an empty audit log (its logins and views are audited)", nodeID)
	}
	for i, e := range atNode {
		if e.Seq != uint64(i+1) {
			t.Fatalf("node %s's audit log skips from %d to %d", nodeID, i, e.Seq)
		}
	}
	poll(t, 30*time.Second, "the hub's audit log of "+nodeID+" equals the node's", func() error {
		atHub, err := hub.Audit(ctx(t), nodeID, 0)
		if err != nil {
			return err
		}
		if len(atHub) < len(atNode) {
			return fmt.Errorf("the hub has %d of the node's %d audit events", len(atHub), len(atNode))
		}
		for i, h := range atHub {
			if h.Seq != uint64(i+1) {
				return fmt.Errorf("hub: audit event %d at position %d (doubled or missing events)", h.Seq, i+1)
			}
			if h.ChainError != "" {
				return fmt.Errorf("hub: event %d: %s", h.Seq, h.ChainError)
			}
			if i >= len(atNode) {
				continue
			}
			n := atNode[i]
			if h.Hash != n.Hash || !h.Time.Equal(n.Time) || h.User != n.User || h.Action != n.Action || h.CameraID != n.CameraID || h.Outcome != n.Outcome {
				return fmt.Errorf("event %d differs: node %+v, hub %+v", n.Seq, n, h)
			}
		}
		return nil
	})
	return atNode
}

// drained waits until the hub has committed every record in the node's
// outbox (each exactly once: the FSM applies a sequence number once).
func drained(t *testing.T, nc, hub *demo.Client, nodeID string, within time.Duration) {
	t.Helper()
	poll(t, within, nodeID+"'s backlog committed at the hub", func() error {
		hn, err := hubNode(t, hub, nodeID)
		if err != nil {
			return err
		}
		last, acked, err := outbox(t, nc)
		if err != nil {
			return err
		}
		if !hn.Online || acked < last || hn.AckedSeq < last {
			return fmt.Errorf("online %v, node outbox last %d acked %d, hub acked %d", hn.Online, last, acked, hn.AckedSeq)
		}
		return nil
	})
}

// backlog cuts a node off for d and heals it with a 1 s delay each way,
// so its backlog drains slowly (the demo pushes one record at a time); it
// returns once the drain has started (some records acknowledged, some
// still waiting) and the time of the cut.
func backlog(t *testing.T, f *federation, nc *demo.Client, nodeID string, d time.Duration) time.Time {
	t.Helper()
	cut := time.Now()
	if _, err := demo.SetLink(context.Background(), f.dir, nodeID, "down", 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	_, ackedAtHeal, err := outbox(t, nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := demo.SetLink(context.Background(), f.dir, nodeID, "up", time.Second); err != nil {
		t.Fatal(err)
	}
	poll(t, 60*time.Second, nodeID+"'s drain under way", func() error {
		last, acked, err := outbox(t, nc)
		if err != nil {
			return err
		}
		if acked <= ackedAtHeal || acked >= last {
			return fmt.Errorf("acked %d (at heal %d), last %d", acked, ackedAtHeal, last)
		}
		return nil
	})
	return cut
}

func findHub(t *testing.T, f *federation, name string) demo.HubEntry {
	for _, h := range f.m.Hubs {
		if h.Name == name {
			return h
		}
	}
	t.Fatalf("no hub member %q", name)
	return demo.HubEntry{}
}

// restartProcess starts `ronda ARGS...` logging into the demo's logs and
// kills it when the whole test ends.
func restartProcess(t, outer *testing.T, f *federation, name string, args ...string) *exec.Cmd {
	logf, err := os.Create(filepath.Join(f.dir, "logs", name+"-restarted-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Getenv("RONDA_BIN"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outer.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
	return cmd
}

func checkLeaderKillDuringDrain(t *testing.T, f *federation, outer *testing.T) {
	n := f.m.Nodes[1]
	nc := f.client(t, n.URL)
	cams, err := nc.Cameras(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	cut := backlog(t, f, nc, n.NodeID, 25*time.Second)
	hub := liveHub(t, f)
	cl, err := hub.Cluster(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	leader, _ := cl["leader"].(string)
	victim := findHub(t, f, leader)
	pid := victim.PID
	if cmd := restartedHubs[leader]; cmd != nil {
		pid = cmd.Process.Pid
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 leader %s (pid %d): %v", leader, pid, err)
	}
	last, acked, _ := outbox(t, nc)
	t.Logf("kill -9 hub leader %s with %d of %s's records still to drain", leader, last-acked, n.NodeID)
	defer func() {
		restartedHubs[leader] = restartProcess(t, outer, f, leader, "hub", "--config", filepath.Join(f.dir, leader, "hub.yaml"))
	}()
	if _, err := demo.SetLink(context.Background(), f.dir, n.NodeID, "up", 0); err != nil {
		t.Fatal(err)
	}
	hub = liveHub(t, f)
	drained(t, nc, hub, n.NodeID, 60*time.Second)
	hubEqualsNode(t, nc, hub, n.NodeID, cams, cut.Add(-10*time.Second), time.Now().Add(-5*time.Second))
}

func checkNodeKillDuringDrain(t *testing.T, f *federation, outer *testing.T) {
	n := f.m.Nodes[2]
	nc := f.client(t, n.URL)
	cams, err := nc.Cameras(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	cut := backlog(t, f, nc, n.NodeID, 25*time.Second)
	last, acked, _ := outbox(t, nc)
	if err := syscall.Kill(n.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	t.Logf("kill -9 node %s with %d records still to drain", n.NodeID, last-acked)
	if _, err := demo.SetLink(context.Background(), f.dir, n.NodeID, "up", 0); err != nil {
		t.Fatal(err)
	}
	restartProcess(t, outer, f, n.NodeID, "node", "--config", filepath.Join(f.dir, n.NodeID, "node.yaml"))
	var back *demo.Client
	poll(t, 30*time.Second, n.NodeID+" back", func() error {
		c, err := demo.NewClient(n.URL, f.m.CAFile)
		if err != nil {
			return err
		}
		lctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := c.Login(lctx, f.m.Users[0].User, f.m.Users[0].Password); err != nil {
			return err
		}
		back = c
		return nil
	})
	hub := liveHub(t, f)
	drained(t, back, hub, n.NodeID, 60*time.Second)
	if l2, _, _ := outbox(t, back); l2 < last {
		t.Fatalf("after the restart the outbox's last seq is %d, before the kill it was %d: records were lost", l2, last)
	}
	// Compare up to the kill: afterwards the node was down (its own gap).
	hubEqualsNode(t, back, hub, n.NodeID, cams, cut.Add(-10*time.Second), killed.Add(-3*time.Second))
}

func rssKiB(pid int) (int, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

func checkFlapping(t *testing.T, f *federation, flapFor time.Duration) {
	n := f.m.Nodes[0]
	nc := f.client(t, n.URL)
	hub := liveHub(t, f)
	cams, err := nc.Cameras(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	rss0, err := rssKiB(n.PID)
	if err != nil {
		t.Fatal(err)
	}
	// Each cycle cuts every link (connections reset, new ones refused), then
	// brings it back until the node has really reconnected to the member we
	// watch (its backoff grows while the link is down, so a fixed "up" time
	// could pass without a reconnect), and samples the hub's view meanwhile.
	start := time.Now()
	degraded := false
	cycles := 0
	sample := func() (online bool) {
		hn, err := hubNode(t, hub, n.NodeID)
		if err != nil {
			return false
		}
		// Count it only once this test's own flapping can explain it (the
		// 5-minute window may still hold reconnects of earlier tests).
		if hn.Status == "degraded" && hn.Reconnects >= 3 && cycles >= 3 {
			if !degraded {
				t.Logf("hub shows %s degraded after %.0f s of flapping (%d cycles): %s", n.NodeID, time.Since(start).Seconds(), cycles, hn.StatusDetail)
			}
			degraded = true
		}
		return hn.Online
	}
	for cycles < 4 || time.Since(start) < flapFor {
		if _, err := demo.SetLink(context.Background(), f.dir, n.NodeID, "reset", 0); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			sample()
		}
		if _, err := demo.SetLink(context.Background(), f.dir, n.NodeID, "up", 0); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		for !sample() {
			if time.Since(back) > 45*time.Second {
				t.Fatalf("cycle %d: %s did not reconnect within 45 s of its link coming back", cycles+1, n.NodeID)
			}
			time.Sleep(250 * time.Millisecond)
		}
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			sample()
		}
		cycles++
	}
	t.Logf("%d down/up cycles in %.0f s", cycles, time.Since(start).Seconds())
	if !degraded {
		t.Fatal("the hub never showed the flapping node as degraded")
	}
	drained(t, nc, hub, n.NodeID, 60*time.Second)
	hubEqualsNode(t, nc, hub, n.NodeID, cams, start.Add(-10*time.Second), time.Now().Add(-5*time.Second))
	rss1, err := rssKiB(n.PID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node %s RSS %d MiB before %.0f s of flapping, %d MiB after", n.NodeID, rss0>>10, flapFor.Seconds(), rss1>>10)
	if rss1 > rss0+64<<10 {
		t.Fatalf("node memory grew from %d to %d MiB over %.0f s of flapping", rss0>>10, rss1>>10, flapFor.Seconds())
	}
}

// restartedHubs holds hub members the tests restarted (by name).
var restartedHubs = map[string]*exec.Cmd{}

// hubSeeing returns a client of a hub member the node is connected to now
// (after a member restarts, the node reconnects to it with backoff).
func hubSeeing(t *testing.T, f *federation, nodeID string) *demo.Client {
	t.Helper()
	var found *demo.Client
	poll(t, 60*time.Second, "a hub member with "+nodeID+" connected", func() error {
		for _, h := range f.m.Hubs {
			c := loginHub(f, h)
			if c == nil {
				continue
			}
			if hn, err := hubNode(t, c, nodeID); err == nil && hn.Online {
				found = c
				return nil
			}
		}
		return fmt.Errorf("no member has %s connected", nodeID)
	})
	return found
}

// checkRelay cuts one node's link to one hub member only: every member
// still shows the node online (the leader's merged heartbeats) and names
// the members it is linked to, and the cut-off member serves the node's
// footage and live view by relaying through a member that has the tunnel.
func checkRelay(t *testing.T, f *federation) {
	n := f.m.Nodes[2]
	nc := f.client(t, n.URL)
	cams, err := nc.Cameras(ctx(t))
	if err != nil || len(cams) == 0 {
		t.Fatalf("node cameras: %v %v", cams, err)
	}
	var via demo.HubEntry
	var vc *demo.Client
	for _, h := range f.m.Hubs {
		if vc = loginHub(f, h); vc != nil {
			via = h
			break
		}
	}
	if vc == nil {
		t.Fatal("no hub member answers")
	}
	if _, err := demo.SetMemberLink(context.Background(), f.dir, n.NodeID, via.Name, "reset", 0); err != nil {
		t.Fatal(err)
	}
	healed := false
	defer func() {
		if !healed {
			demo.SetMemberLink(context.Background(), f.dir, n.NodeID, via.Name, "up", 0)
		}
	}()
	var linked []string
	poll(t, 30*time.Second, via.Name+" shows "+n.NodeID+" online through the other members", func() error {
		hn, err := hubNode(t, vc, n.NodeID)
		if err != nil {
			return err
		}
		if !hn.Online || hn.Status != "online" || hn.StatusFrom != "cluster" || len(hn.LinkedMembers) == 0 || slices.Contains(hn.LinkedMembers, via.Name) {
			return fmt.Errorf("status %s (%s) from %q, linked to %v", hn.Status, hn.StatusDetail, hn.StatusFrom, hn.LinkedMembers)
		}
		linked = hn.LinkedMembers
		return nil
	})
	// Every live member answers alike.
	for _, h := range f.m.Hubs {
		if h.Name == via.Name {
			continue
		}
		c := loginHub(f, h)
		if c == nil {
			continue // a member the tests stopped
		}
		poll(t, 10*time.Second, h.Name+" shows "+n.NodeID+" as "+via.Name+" does", func() error {
			hn, err := hubNode(t, c, n.NodeID)
			if err != nil {
				return err
			}
			if !hn.Online || !slices.Equal(hn.LinkedMembers, linked) {
				return fmt.Errorf("online %v, linked to %v; %s says %v", hn.Online, hn.LinkedMembers, via.Name, linked)
			}
			return nil
		})
	}
	t.Logf("%s cut off from %s only: every member shows it online, linked to %v", n.NodeID, via.Name, linked)
	// Footage and live view of its cameras through the cut-off member.
	checkMedia(t, vc, cams[0].ID)
	checkWhep(t, vc, cams[len(cams)-1].ID)
	t.Logf("%s relayed %s's playback and live view through %v", via.Name, n.NodeID, linked)

	if _, err := demo.SetMemberLink(context.Background(), f.dir, n.NodeID, via.Name, "up", 0); err != nil {
		t.Fatal(err)
	}
	healed = true
	poll(t, 60*time.Second, n.NodeID+" linked to "+via.Name+" again", func() error {
		hn, err := hubNode(t, vc, n.NodeID)
		if err != nil {
			return err
		}
		if !slices.Contains(hn.LinkedMembers, via.Name) {
			return fmt.Errorf("linked to %v", hn.LinkedMembers)
		}
		return nil
	})
}

func placeHubHold(t *testing.T, hub *demo.Client, cam string, from time.Time) api.Hold {
	t.Helper()
	body := fmt.Sprintf(`{"from":%q,"to":%q,"reason":"JAKI-2026-0777"}`, from.Add(-time.Minute).UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	var h api.Hold
	if _, err := hub.Do(ctx(t), "POST", "/api/v1/cameras/"+cam+"/holds", strings.NewReader(body), "application/json", &h); err != nil {
		t.Fatalf("place a hold at the hub: %v", err)
	}
	return h
}

func findHold(t *testing.T, c *demo.Client, cam, id string) (api.Hold, error) {
	t.Helper()
	var list struct{ Holds []api.Hold }
	if _, err := c.Do(ctx(t), "GET", "/api/v1/cameras/"+cam+"/holds", nil, "", &list); err != nil {
		return api.Hold{}, err
	}
	for _, h := range list.Holds {
		if h.ID == id {
			return h, nil
		}
	}
	return api.Hold{}, fmt.Errorf("no hold %s on %s", id, cam)
}
