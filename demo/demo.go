// Package demo starts a whole local federation — hub members, kelurahan
// nodes and simulated cameras — as separate processes of the ronda binary,
// with a fresh city CA, and describes it in DIR/demo.json.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/certs"
	"github.com/ronda-jakarta/ronda/kelurahan"
)

// Options configure the demo.
type Options struct {
	Dir      string
	Nodes    int
	Cameras  int // per node
	Hubs     int // default 3
	BasePort int
	Clip     string
	Binary   string // the ronda executable to spawn
	Logger   *slog.Logger
	// Ready, if set, is called once the federation is up (tests use it).
	Ready func(*Manifest)
}

// Manifest is DIR/demo.json.
type Manifest struct {
	Hubs    []HubEntry    `json:"hubs"`
	Nodes   []NodeEntry   `json:"nodes"`
	Cameras []CameraEntry `json:"cameras"`
	CAFile  string        `json:"ca_file"`
	Users   []UserEntry   `json:"users"`
	// Control changes the nodes' links to the hub (demo/links.go), with
	// ControlToken as a bearer token: `ronda demo link NODE down|up`.
	Control      string `json:"control"`
	ControlToken string `json:"control_token"`
	// ReportClient and ReportToken: the complaint system's credential for
	// POST /api/v1/reports.
	ReportClient string `json:"report_client"`
	ReportToken  string `json:"report_token"`
}

// HubEntry is one hub member in the manifest.
type HubEntry struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	GRPC string `json:"grpc"`
	Raft string `json:"raft"`
	PID  int    `json:"pid"`
}

// NodeEntry is one node in the manifest.
type NodeEntry struct {
	Kelurahan string `json:"kelurahan"`
	Name      string `json:"name"`
	NodeID    string `json:"node_id"`
	URL       string `json:"url"`
	RTSP      string `json:"rtsp"` // the RTSPS re-stream: RTSP/<camera id>[/sub], node users
	PID       int    `json:"pid"`
}

// CameraEntry is one simulated camera.
type CameraEntry struct {
	ID         string  `json:"id"`
	Kelurahan  string  `json:"kelurahan"`
	RTSP       string  `json:"rtsp"`
	GOPSeconds float64 `json:"gop_seconds"` // keyframe interval of the simulated camera
	Lat        float64 `json:"lat"`
	Lon        float64 `json:"lon"`
}

// UserEntry is a demo login.
type UserEntry struct {
	User     string     `json:"user"`
	Password string     `json:"password"`
	Role     string     `json:"role"`
	Scope    auth.Scope `json:"scope,omitzero"`
	// Kelurahan is the user's home kelurahan, for scoped users.
	Kelurahan string `json:"kelurahan,omitempty"`
}

// preferred kelurahan: one per kota of the mainland, then the rest in order.
var preferred = []string{"31.71.01.1001", "31.74.01.1001", "31.72.01.1001", "31.73.01.1001", "31.75.01.1001"}

func pickKelurahan(n int) []kelurahan.Kelurahan {
	var out []kelurahan.Kelurahan
	seen := map[string]bool{}
	for _, c := range preferred {
		if len(out) == n {
			return out
		}
		k, _ := kelurahan.ByCode(c)
		out = append(out, k)
		seen[c] = true
	}
	for _, k := range kelurahan.All() {
		if len(out) == n {
			break
		}
		if !seen[k.Code] {
			out = append(out, k)
		}
	}
	return out
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// Run builds the federation's files, starts every process and waits for ctx;
// then it stops them all (SIGTERM, then SIGKILL after 10 s).
func Run(ctx context.Context, o Options) error {
	if o.Hubs == 0 {
		o.Hubs = 3
	}
	if o.Nodes < 1 || o.Nodes > len(kelurahan.All()) || o.Cameras < 1 || o.Hubs < 1 {
		return fmt.Errorf("demo: --nodes must be 1..267 and --cameras at least 1 (got %d, %d)", o.Nodes, o.Cameras)
	}
	clip, err := filepath.Abs(o.Clip)
	if err != nil {
		return err
	}
	if _, err := os.Stat(clip); err != nil {
		return fmt.Errorf("demo: camera clip: %w (run from the repository root or pass --clip)", err)
	}
	// Every node's second camera has a 2-second GOP (many real cameras
	// do): live view must still start at once, from the GOP cache.
	clip2 := filepath.Join(filepath.Dir(clip), "clip-gop2.h264")
	if _, err := os.Stat(clip2); err != nil {
		return fmt.Errorf("demo: the 2 s-GOP camera clip next to %s: %w", clip, err)
	}
	// Every camera also has a 320x180 sub stream, for grids.
	clipSub := filepath.Join(filepath.Dir(clip), "clip-sub.h264")
	if _, err := os.Stat(clipSub); err != nil {
		return fmt.Errorf("demo: the sub-stream clip next to %s: %w", clip, err)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o750); err != nil {
		return err
	}
	log := o.Logger
	p := o.BasePort
	caDir := filepath.Join(dir, "ca")
	if _, err := os.Stat(filepath.Join(caDir, certs.CAFile)); err != nil {
		if err := certs.InitCA(caDir, "jakarta"); err != nil {
			return err
		}
	}
	ca, err := certs.LoadCA(caDir)
	if err != nil {
		return err
	}

	// One admin login for the demo, valid on the hub and on every node.
	password := randomString(12)
	hash, err := auth.HashPassword(password)
	if err != nil {
		return err
	}
	users := []auth.User{{Name: "admin", PasswordHash: hash, Role: "admin"}}
	m := &Manifest{CAFile: filepath.Join(caDir, certs.CAFile), Users: []UserEntry{{User: "admin", Password: password, Role: "admin"}}}

	// The city complaint system's credential for citizen reports
	// (POST /api/v1/reports; ronda reportsim --demo uses it).
	m.ReportClient, m.ReportToken = "jaki", randomString(40)
	hubSecret := filepath.Join(dir, "hub-token-secret")
	if err := os.WriteFile(hubSecret, []byte(randomString(48)), 0o600); err != nil {
		return err
	}
	var members []map[string]string
	for i := 1; i <= o.Hubs; i++ {
		name := fmt.Sprintf("h%d", i)
		e := HubEntry{Name: name, GRPC: fmt.Sprintf("127.0.0.1:%d", p+i), Raft: fmt.Sprintf("127.0.0.1:%d", p+10+i),
			URL: fmt.Sprintf("https://127.0.0.1:%d", p+20+i)}
		m.Hubs = append(m.Hubs, e)
		members = append(members, map[string]string{"id": name, "raft": e.Raft, "grpc": e.GRPC, "http": e.URL})
	}
	var hubGRPC []string
	for i, e := range m.Hubs {
		hdir := filepath.Join(dir, e.Name)
		if err := ca.Issue(filepath.Join(hdir, "tls"), certs.IssueOptions{Identity: certs.Identity{Kind: certs.KindHub, Member: e.Name}}); err != nil {
			return err
		}
		hubGRPC = append(hubGRPC, e.GRPC)
		cfg := map[string]any{
			"member_id": e.Name, "data_dir": filepath.Join(hdir, "data"),
			"grpc_listen": e.GRPC, "raft_listen": e.Raft,
			"http":    map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", p+21+i)},
			"tls":     tlsFiles(hdir),
			"members": members,
			// New nodes enroll with a join token (ronda certs token / ronda node enroll).
			// Short-lived node certificates: the demo's nodes renew theirs
			// over their links about once a minute (node.yaml tls.renew_before).
			"enrollment": map[string]any{"ca_dir": caDir, "node_cert_validity": demoNodeCertValidity.String()},
			"auth":       map[string]any{"token_secret_file": hubSecret, "users": users},
			"reports": map[string]any{"clients": []map[string]string{{"name": m.ReportClient, "token_sha256": api.ReportTokenHash(m.ReportToken)}},
				// A flood covers a district: 4 km (the tests' report between two kelurahan).
				"radius_m": map[string]float64{"default": 150, "theft": 300, "violence": 300, "flood": 4000}},
			// Pulls capped at 2 Mbit/s per node: a demo pull takes long enough to watch.
			"cases": map[string]any{"release_grace": "20s", "pull_rate_per_node": 250000},
			// A node cut off shows offline within ~15 s (the tests play outages).
			"node_keepalive": "10s",
			// Live view relayed through the hub for browsers that cannot
			// reach a node (the tests force it with iceTransportPolicy relay).
			"turn": map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", p+31+i),
				"relay_ports": fmt.Sprintf("%d-%d", p+400+100*i, p+499+100*i)},
		}
		if err := writeYAML(filepath.Join(hdir, "hub.yaml"), cfg); err != nil {
			return err
		}
	}

	lk := newLinks()
	defer lk.close()
	if m.Control, err = lk.serve(); err != nil {
		return err
	}
	m.ControlToken = lk.token

	camsimAddr := fmt.Sprintf("127.0.0.1:%d", p+99)
	camsim2Addr := fmt.Sprintf("127.0.0.1:%d", p+98)   // the 2 s-GOP cameras
	camsimSubAddr := fmt.Sprintf("127.0.0.1:%d", p+97) // every camera's sub stream
	for i, k := range pickKelurahan(o.Nodes) {
		id := fmt.Sprintf("n%d", i+1)
		ndir := filepath.Join(dir, id)
		if err := ca.Issue(filepath.Join(ndir, "tls"), certs.IssueOptions{Identity: certs.Identity{Kind: certs.KindNode, Kelurahan: k.Code, NodeID: id},
			Validity: demoNodeCertValidity}); err != nil {
			return err
		}
		secret := filepath.Join(ndir, "token-secret")
		if err := os.WriteFile(secret, []byte(randomString(48)), 0o600); err != nil {
			return err
		}
		e := NodeEntry{Kelurahan: k.Code, Name: k.Name, NodeID: id, URL: fmt.Sprintf("https://127.0.0.1:%d", p+101+i),
			RTSP: fmt.Sprintf("rtsps://127.0.0.1:%d", p+301+i)}
		var viaProxy []string // the node reaches each member through its own fault proxy
		for hi, g := range hubGRPC {
			a, err := lk.proxy(id, m.Hubs[hi].Name, g)
			if err != nil {
				return err
			}
			viaProxy = append(viaProxy, a)
		}
		var cams []map[string]any
		demoTags := [][]string{{"school"}, {"park"}, {"market", "flood-prone"}, {"intersection"}}
		for c := 1; c <= o.Cameras; c++ {
			n := i*o.Cameras + c
			rtsp, gop := fmt.Sprintf("rtsp://%s/cam%d", camsimAddr, n), 1.0
			if c == 2 {
				rtsp, gop = fmt.Sprintf("rtsp://%s/cam%d", camsim2Addr, n), 2.0
			}
			name := fmt.Sprintf("cam%d", c)
			// Placed around the kelurahan's centre, ~150 m apart, so the
			// city search has positions, RT/RW and tags to work with.
			cams = append(cams, map[string]any{"name": name, "url": rtsp, "sub_url": fmt.Sprintf("rtsp://%s/cam%d", camsimSubAddr, n),
				"lat": k.Lat + 0.0013*float64(c%3), "lon": k.Lon + 0.0013*float64(c/3),
				"rt": fmt.Sprintf("%03d", c), "rw": "001", "tags": demoTags[(c-1)%len(demoTags)]})
			m.Cameras = append(m.Cameras, CameraEntry{ID: kelurahan.CompactCode(k.Code) + "-" + name, Kelurahan: k.Code, RTSP: rtsp, GOPSeconds: gop,
				Lat: k.Lat + 0.0013*float64(c%3), Lon: k.Lon + 0.0013*float64(c/3)})
		}
		cfg := map[string]any{
			"node_id": id, "kelurahan": k.Code, "data_dir": filepath.Join(ndir, "data"),
			"http": map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", p+101+i)},
			"tls":  nodeTLS(ndir),
			// Small pushes make a backlog's drain take a few round trips
			// (visible on the demo, and long enough for the fault tests to
			// kill something in the middle of it).
			// fixed_members: the node reaches each member through its fault
			// proxy; dialling the addresses the hub announces would bypass it.
			"hub": map[string]any{"members": viaProxy, "keepalive": "10s", "push_batch": 1, "fixed_members": true},
			// The last node plays one behind NAT: live view through the hub
			// gets a relay candidate of its own on the member's TURN server.
			"live":      map[string]any{"udp": fmt.Sprintf("127.0.0.1:%d", p+201+i), "relay_via_hub": i == o.Nodes-1 && o.Nodes > 1},
			"rtsp":      map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", p+301+i)},
			"recording": map[string]any{"segment_duration": "1m", "sync_interval": "2s"},
			"auth":      map[string]any{"token_secret_file": secret, "users": users},
			"cameras":   cams,
		}
		if err := writeYAML(filepath.Join(ndir, "node.yaml"), cfg); err != nil {
			return err
		}
		m.Nodes = append(m.Nodes, e)
	}

	// Start everything: cameras first, then the hub, then the nodes.
	var procs []*proc
	var mu sync.Mutex
	stopAll := func() {
		mu.Lock()
		defer mu.Unlock()
		stop(procs, log)
	}
	spawn := func(name string, args ...string) (*proc, error) {
		logf, err := os.OpenFile(filepath.Join(dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(o.Binary, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, fmt.Errorf("demo: start %s: %w", name, err)
		}
		pr := &proc{name: name, cmd: cmd, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); logf.Close(); close(pr.done) }()
		mu.Lock()
		procs = append(procs, pr)
		mu.Unlock()
		return pr, nil
	}
	defer stopAll()
	if _, err := spawn("camsim", "camsim", "--addr", camsimAddr, "--cameras", fmt.Sprint(o.Nodes*o.Cameras), "--clip", clip); err != nil {
		return err
	}
	if _, err := spawn("camsim-gop2", "camsim", "--addr", camsim2Addr, "--cameras", fmt.Sprint(o.Nodes*o.Cameras), "--clip", clip2); err != nil {
		return err
	}
	if _, err := spawn("camsim-sub", "camsim", "--addr", camsimSubAddr, "--cameras", fmt.Sprint(o.Nodes*o.Cameras), "--clip", clipSub); err != nil {
		return err
	}
	for i := range m.Hubs {
		pr, err := spawn(m.Hubs[i].Name, "hub", "--config", filepath.Join(dir, m.Hubs[i].Name, "hub.yaml"))
		if err != nil {
			return err
		}
		m.Hubs[i].PID = pr.cmd.Process.Pid
	}
	for i := range m.Nodes {
		pr, err := spawn(m.Nodes[i].NodeID, "node", "--config", filepath.Join(dir, m.Nodes[i].NodeID, "node.yaml"))
		if err != nil {
			return err
		}
		m.Nodes[i].PID = pr.cmd.Process.Pid
	}
	raw, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "demo.json"), raw, 0o600); err != nil {
		return err
	}
	log.Info("federation starting", "dir", dir, "hubs", len(m.Hubs), "nodes", len(m.Nodes), "cameras", len(m.Cameras), "logs", filepath.Join(dir, "logs"))

	readyCtx, cancelReady := context.WithTimeout(ctx, 2*time.Minute)
	err = waitReady(readyCtx, m)
	cancelReady()
	if err != nil && ctx.Err() == nil {
		log.Warn("federation not fully up yet; see the logs", "err", err)
	}
	if err == nil {
		uctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = createUsers(uctx, m)
		cancel()
		if err != nil {
			log.Warn("creating the demo's users", "err", err)
		}
		raw, _ := json.MarshalIndent(m, "", "  ")
		if err := os.WriteFile(filepath.Join(dir, "demo.json"), raw, 0o600); err != nil {
			return err
		}
	}
	if err == nil {
		printBanner(m, dir)
		if o.Ready != nil {
			o.Ready(m)
		}
	}
	<-ctx.Done()
	log.Info("stopping the federation")
	return nil
}

// demoNodeCertValidity is how long the demo's node certificates last; with
// renew_before 9m every node renews about once a minute, so the demo (and
// the end-to-end tests) run with renewals going on all the time.
const demoNodeCertValidity = 10 * time.Minute

func nodeTLS(d string) map[string]string {
	m := tlsFiles(d)
	m["renew_before"] = "9m"
	return m
}

func tlsFiles(d string) map[string]string {
	return map[string]string{
		"cert": filepath.Join(d, "tls", certs.CertFile),
		"key":  filepath.Join(d, "tls", certs.KeyFile),
		"ca":   filepath.Join(d, "tls", certs.CAFile),
	}
}

func writeYAML(path string, v any) error {
	raw, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o600)
}

// stop sends SIGTERM to every process, in reverse start order, and SIGKILLs
// whatever is still running after 10 s.
func stop(procs []*proc, log *slog.Logger) {
	for i := len(procs) - 1; i >= 0; i-- {
		_ = procs[i].cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(10 * time.Second)
	for _, pr := range procs {
		select {
		case <-pr.done:
		case <-deadline:
			log.Warn("process did not stop in time; killing", "name", pr.name)
			_ = pr.cmd.Process.Kill()
			<-pr.done
		}
	}
}

var errNotReady = errors.New("not ready")

func printBanner(m *Manifest, dir string) {
	fmt.Printf("\nRonda demo federation is up (data in %s, description in %s)\n\n", dir, filepath.Join(dir, "demo.json"))
	fmt.Println("City hub (any member serves the whole city):")
	for _, h := range m.Hubs {
		fmt.Printf("  %-4s %s\n", h.Name, h.URL)
	}
	fmt.Println("Kelurahan nodes:")
	for _, n := range m.Nodes {
		fmt.Printf("  %-4s %-28s %s   RTSPS %s/<camera id>\n", n.NodeID, n.Name, n.URL, n.RTSP)
	}
	fmt.Printf("\nLogins (HTTPS with the demo city CA %s: accept the certificate warning):\n", m.CAFile)
	for _, u := range m.Users {
		fmt.Printf("  %-22s %-14s %-14s %s\n", u.User, u.Password, u.Role, u.Scope)
	}
	fmt.Println("Ctrl-C stops everything.")
}

// createUsers makes one user of each role through the hub's users API
// (a re-run of the demo gives the existing ones new passwords), scoped to
// the first node's kelurahan, and lists them in the manifest.
func createUsers(ctx context.Context, m *Manifest) error {
	if len(m.Hubs) == 0 || len(m.Nodes) == 0 || len(m.Users) == 0 {
		return nil
	}
	c, err := NewClient(m.Hubs[0].URL, m.CAFile)
	if err != nil {
		return err
	}
	if err := c.Login(ctx, m.Users[0].User, m.Users[0].Password); err != nil {
		return err
	}
	n1 := m.Nodes[0]
	kel, _ := kelurahan.ByCode(n1.Kelurahan)
	cam1 := kelurahan.CompactCode(n1.Kelurahan) + "-cam1"
	wanted := []UserEntry{
		{User: "operator", Role: auth.RoleOperator},
		{User: "camat-" + strings.ReplaceAll(kel.KecamatanCode, ".", ""), Role: auth.RoleAreaOperator, Scope: auth.Scope{Areas: []string{kel.KecamatanCode}}, Kelurahan: n1.Kelurahan},
		{User: "rtrw-" + n1.NodeID, Role: auth.RoleViewer, Scope: auth.Scope{Cameras: []string{cam1}, PlaybackHours: 24}, Kelurahan: n1.Kelurahan},
		{User: "auditor", Role: auth.RoleAuditor},
		{User: "lurah-" + n1.NodeID, Role: auth.RoleNodeAdmin, Scope: auth.Scope{Areas: []string{n1.Kelurahan}}, Kelurahan: n1.Kelurahan},
	}
	for _, u := range wanted {
		u.Password = randomString(14)
		scope := u.Scope
		body, _ := json.Marshal(api.UserRequest{Name: u.User, Password: u.Password, Role: u.Role, Scope: &scope})
		_, err := c.Do(ctx, "POST", "/api/v1/users", bytes.NewReader(body), "application/json", nil)
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusBadRequest && strings.Contains(ae.Message, "exists already") {
			_, err = c.Do(ctx, "PATCH", "/api/v1/users/"+u.User, bytes.NewReader(body), "application/json", nil)
		}
		if err != nil {
			return fmt.Errorf("user %s: %w", u.User, err)
		}
		m.Users = append(m.Users, u)
	}
	return nil
}
