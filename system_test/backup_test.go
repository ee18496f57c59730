//go:build e2e

package system_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/demo"
	"github.com/ronda-jakarta/ronda/hub"
	"github.com/ronda-jakarta/ronda/hub/store"
	"github.com/ronda-jakarta/ronda/node"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func runRonda(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(os.Getenv("RONDA_BIN"), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ronda %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// checkBackupRestore takes an online backup of the demo's hub with the CLI,
// restores it into three empty members (new data dirs and ports, the demo's
// member certificates), starts them as a new cluster and checks that its
// catalog is the backup's, key for key: a backup of the new cluster is
// byte-identical to the first, and the API answers the same cameras, nodes
// and searches as the backup's source did for the same window.
func checkBackupRestore(t *testing.T, f *federation, outer *testing.T) {
	m := f.m
	work := t.TempDir()
	backup := filepath.Join(work, "city.backup")
	backupAt := time.Now()
	out := runRonda(t, "hub", "backup", "--demo", f.dir, backup)
	t.Logf("%s", strings.TrimSpace(out))
	if !strings.Contains(out, "checksum ok") {
		t.Fatalf("backup output: %s", out)
	}
	// The same call without the admin role or password is refused clearly.
	cmd := exec.Command(os.Getenv("RONDA_BIN"), "hub", "backup", "--url", m.Hubs[0].URL, "--ca", m.CAFile, filepath.Join(work, "x.backup"))
	cmd.Env = append(os.Environ(), "RONDA_PASSWORD=wrong")
	if msg, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(msg), "401") {
		t.Fatalf("backup with a wrong password: %v %s", err, msg)
	}
	if _, err := os.Stat(filepath.Join(work, "x.backup")); !os.IsNotExist(err) {
		t.Fatal("a refused backup left a file behind")
	}

	// The source's view, read at the same moment as well as we can: nodes
	// keep pushing, so compare what the backup's window can show.
	src := f.client(t, m.Hubs[0].URL)

	// Three new members: the demo's configs with new dirs and ports.
	type member struct {
		cfg  hub.Config
		path string
		cmd  *exec.Cmd
	}
	var members []*member
	var list []hub.Member
	for _, h := range m.Hubs {
		cfg, err := hub.LoadConfig(filepath.Join(f.dir, h.Name, "hub.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.DataDir = filepath.Join(work, h.Name, "data")
		cfg.GRPCListen, cfg.RaftListen, cfg.HTTP.Listen = freePort(t), freePort(t), freePort(t)
		cfg.TURN = hub.TURNConfig{} // the demo's members keep their TURN ports
		list = append(list, hub.Member{ID: cfg.MemberID, Raft: cfg.RaftListen, GRPC: cfg.GRPCListen, HTTP: "https://" + cfg.HTTP.Listen})
		members = append(members, &member{cfg: *cfg, path: filepath.Join(work, h.Name, "hub.yaml")})
	}
	for _, mb := range members {
		mb.cfg.Members = list
		raw, err := yaml.Marshal(&mb.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(mb.path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(mb.path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		out := runRonda(t, "hub", "restore", "--config", mb.path, backup)
		t.Logf("%s", strings.TrimSpace(out))
		// Restoring twice into the same member is refused.
		again := exec.Command(os.Getenv("RONDA_BIN"), "hub", "restore", "--config", mb.path, backup)
		if msg, err := again.CombinedOutput(); err == nil || !strings.Contains(string(msg), "empty data dir") {
			t.Fatalf("second restore into %s: %v %s", mb.cfg.MemberID, err, msg)
		}
	}
	for _, mb := range members {
		logf, err := os.Create(filepath.Join(work, mb.cfg.MemberID+".log"))
		if err != nil {
			t.Fatal(err)
		}
		mb.cmd = exec.Command(os.Getenv("RONDA_BIN"), "hub", "--config", mb.path)
		mb.cmd.Stdout, mb.cmd.Stderr = logf, logf
		if err := mb.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = mb.cmd.Process.Kill()
			_ = mb.cmd.Wait()
			logf.Close()
			if t.Failed() {
				raw, _ := os.ReadFile(logf.Name())
				t.Logf("---- restored member %s log\n%s", mb.cfg.MemberID, tail(string(raw), 40))
			}
		})
	}
	var restored *demo.Client
	poll(t, 30*time.Second, "the restored cluster elects a leader", func() error {
		if restored == nil {
			c, err := demo.NewClient(list[0].HTTP, m.CAFile)
			if err != nil {
				return err
			}
			lctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := c.Login(lctx, m.Users[0].User, m.Users[0].Password); err != nil {
				return err
			}
			restored = c
		}
		cl, err := restored.Cluster(ctx(t))
		if err != nil {
			return err
		}
		if l, _ := cl["leader"].(string); l == "" {
			return fmt.Errorf("no leader yet (%v)", cl["state"])
		}
		if ms, _ := cl["members"].([]any); len(ms) != 3 {
			return fmt.Errorf("members %v", cl["members"])
		}
		return nil
	})

	// Key for key: a backup of the new cluster holds every key of the
	// original with the same value. The hub audits its own API calls in
	// its replicated state, so the logins and the backup call this test
	// made at the new cluster are there too — and nothing else: the only
	// keys added are the hub's audit trail (its events, their Merkle
	// leaves, subtrees and checkpoints), every added event is this test's
	// admin's, and the only keys changed are the applied index and the
	// heads of the hub's audit chain and Merkle log.
	again := filepath.Join(work, "again.backup")
	runRonda(t, "hub", "backup", "--url", list[1].HTTP, "--ca", m.CAFile, "--user", m.Users[0].User, "--password-file", writePassword(t, work, m.Users[0].Password), again)
	a, _ := os.ReadFile(backup)
	b, _ := os.ReadFile(again)
	appliedA, ea, err := store.BackupEntries(bytes.NewReader(a))
	if err != nil || len(ea) == 0 {
		t.Fatalf("the source backup: %v (%d keys)", err, len(ea))
	}
	appliedB, eb, err := store.BackupEntries(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the restored cluster's backup: %v", err)
	}
	heads := map[string]bool{"m/applied": true, "m/hubaudit": true, "m/merkle": true}
	for k, v := range ea {
		if w, ok := eb[k]; !ok {
			t.Fatalf("the restored cluster lost key %q", k)
		} else if !bytes.Equal(v, w) && !heads[k] {
			t.Fatalf("key %q differs in the restored cluster", k)
		}
	}
	var added []string
	for k, v := range eb {
		if _, ok := ea[k]; ok {
			continue
		}
		switch {
		case strings.HasPrefix(k, "u/hub\x00"):
			ev := new(rondav1.StoredAuditEvent)
			if err := proto.Unmarshal(v, ev); err != nil || ev.GetEvent().GetUser() != m.Users[0].User {
				t.Fatalf("the restored cluster holds an audit event that is not this test's: %v %v", err, ev)
			}
			added = append(added, ev.GetEvent().GetAction())
		case strings.HasPrefix(k, "l/"), strings.HasPrefix(k, "t/"), strings.HasPrefix(k, "k/"), strings.HasPrefix(k, "x/"):
		default:
			t.Fatalf("the restored cluster holds key %q the original did not", k)
		}
	}
	t.Logf("the restored cluster's backup (applied %d) holds the original's %d keys (applied %d) unchanged, plus the hub's audit of this test's calls: %v",
		appliedB, len(ea), appliedA, added)

	// Through the API: the same nodes and cameras, each camera's coverage a
	// prefix of the source's (the source went on recording after the backup).
	srcCams, err := src.Cameras(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	newCams, err := restored.Cameras(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	ids := func(cs []api.Camera) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID+"@"+c.NodeID)
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(ids(srcCams), ids(newCams)) || len(newCams) != len(m.Cameras) {
		t.Fatalf("cameras: restored %v, source %v", ids(newCams), ids(srcCams))
	}
	for _, c := range newCams {
		if c.RecordedUntil == nil {
			t.Fatalf("restored camera %s has no coverage", c.ID)
		}
		from, to := c.RecordedUntil.Add(-90*time.Second), *c.RecordedUntil
		rn, err := restored.Recordings(ctx(t), c.ID, from, to)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := src.Recordings(ctx(t), c.ID, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if rn.RecordedSeconds < 25 || rn.RecordedSeconds != rs.RecordedSeconds {
			t.Fatalf("camera %s in [%s, %s): restored %.1f s, source %.1f s", c.ID, from.Format(time.TimeOnly), to.Format(time.TimeOnly), rn.RecordedSeconds, rs.RecordedSeconds)
		}
	}
	srcNodes, _ := src.Nodes(ctx(t))
	newNodes, _ := restored.Nodes(ctx(t))
	if len(newNodes) != len(m.Nodes) || len(srcNodes) != len(newNodes) {
		t.Fatalf("nodes: restored %d, source %d", len(newNodes), len(srcNodes))
	}
	var res api.SearchResult
	if _, err := restored.Do(ctx(t), "GET", "/api/v1/search?"+url.Values{"tag": {"school"}}.Encode(), nil, "", &res); err != nil || res.Total != len(m.Nodes) {
		t.Fatalf("search on the restored cluster: %+v %v", res, err)
	}

	checkResyncToRestoredHub(t, f, outer, work, backupAt, list, restored)
}

// checkResyncToRestoredHub: the restored cluster lacks what nodes sent
// after the backup, which the nodes have dropped from their outboxes. A
// node that meets it notices the hub is behind what it acknowledged and
// re-sends its history; the restored hub then equals the node. The node
// here is a copy of n2 (stopped cleanly, its data copied, restarted), so
// the demo's own n2 goes on with the demo's hub.
func checkResyncToRestoredHub(t *testing.T, f *federation, outer *testing.T, work string, backupAt time.Time, members []hub.Member, restored *demo.Client) {
	n := f.m.Nodes[1]
	time.Sleep(65 * time.Second) // n2 records and reports past the backup
	proc, err := os.FindProcess(n.PID)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop %s: %v", n.NodeID, err)
	}
	poll(t, 30*time.Second, n.NodeID+" stopped", func() error {
		if err := syscall.Kill(n.PID, 0); err == nil {
			return fmt.Errorf("pid %d still running", n.PID)
		}
		return nil
	})
	stoppedAt := time.Now()
	cfg, err := node.LoadConfig(filepath.Join(f.dir, n.NodeID, "node.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	copyDir := filepath.Join(work, "n2-copy", "data")
	err = os.MkdirAll(filepath.Dir(copyDir), 0o700)
	if err == nil {
		var out []byte
		if out, err = exec.Command("cp", "-a", cfg.DataDir, copyDir).CombinedOutput(); err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
	}
	// The demo's n2 goes on either way.
	restartProcess(t, outer, f, n.NodeID, "node", "--config", filepath.Join(f.dir, n.NodeID, "node.yaml"))
	if err != nil {
		t.Fatalf("copy %s's data: %v", n.NodeID, err)
	}

	// What the restored hub lost: n2's footage between the backup and the stop.
	var n2cam string
	for _, c := range f.m.Cameras {
		if c.Kelurahan == n.Kelurahan {
			n2cam = c.ID
			break
		}
	}
	lost := func() float64 {
		rec, err := restored.Recordings(ctx(t), n2cam, backupAt.Add(3*time.Second), stoppedAt.Add(-3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return rec.RecordedSeconds
	}
	if s := lost(); s > 2 {
		t.Fatalf("the restored hub already has %.1f s of %s after the backup; the test needs a hub that is behind", s, n2cam)
	}

	cfg.DataDir = copyDir
	cfg.HTTP.Listen = freePort(t)
	cfg.HTTP.PublicURL = ""
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Live.UDP = udp.LocalAddr().String()
	udp.Close()
	cfg.RTSP.Listen = "" // the demo's n2 keeps its RTSP port
	cfg.Hub.Members = nil
	for _, mb := range members {
		cfg.Hub.Members = append(cfg.Hub.Members, mb.GRPC)
	}
	cfg.Hub.FixedMembers = true
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(work, "n2-copy", "node.yaml")
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(work, "n2-copy.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Getenv("RONDA_BIN"), "node", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			raw, _ := os.ReadFile(logf.Name())
			t.Logf("---- n2 copy log\n%s", tail(string(raw), 40))
		}
	})
	var nc *demo.Client
	poll(t, 30*time.Second, "the copy of "+n.NodeID+" up", func() error {
		c, err := demo.NewClient("https://"+cfg.HTTP.Listen, f.m.CAFile)
		if err != nil {
			return err
		}
		lctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := c.Login(lctx, f.m.Users[0].User, f.m.Users[0].Password); err != nil {
			return err
		}
		nc = c
		return nil
	})
	cams, err := nc.Cameras(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	// Before the re-send the restored hub lacks n2's footage after the backup.
	drained(t, nc, restored, n.NodeID, 90*time.Second)
	hubEqualsNode(t, nc, restored, n.NodeID, cams, backupAt.Add(-time.Minute), stoppedAt.Add(-3*time.Second))
	if s, want := lost(), stoppedAt.Sub(backupAt).Seconds()-8; s < want {
		t.Fatalf("after the re-send the restored hub has %.1f s of %s after the backup, want about %.0f s", s, n2cam, want)
	}
	t.Logf("the restored hub was behind %s by what it recorded in the %.0f s after the backup; the node re-sent its history and the hub equals it",
		n.NodeID, stoppedAt.Sub(backupAt).Seconds())
}

func writePassword(t *testing.T, dir, pw string) string {
	p := filepath.Join(dir, "password")
	if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
