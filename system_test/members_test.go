//go:build e2e

package system_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ronda-jakarta/ronda/hub"
)

type membersView struct {
	Leader  string `json:"leader"`
	Members []struct {
		ID        string `json:"id"`
		Suffrage  string `json:"suffrage"`
		State     string `json:"state"`
		Reachable bool   `json:"reachable"`
		Applied   uint64 `json:"applied_index"`
	} `json:"members"`
}

func hubMembers(t *testing.T, f *federation) membersView {
	t.Helper()
	var v membersView
	out := runRonda(t, "hub", "members", "--demo", f.dir, "--json")
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("ronda hub members --json: %v\n%s", err, out)
	}
	return v
}

// checkMembership grows the demo's hub to 4 members with the CLI, as an
// operator would: a 4th member started with join: true is joined, becomes
// a voter once caught up, takes the leadership, gives it back and is
// removed again.
func checkMembership(t *testing.T, f *federation) {
	m := f.m
	work := t.TempDir()
	runRonda(t, "certs", "issue", "--dir", filepath.Join(f.dir, "ca"), "--hub", "h4", "--out", filepath.Join(work, "tls"))
	base, err := hub.LoadConfig(filepath.Join(f.dir, m.Hubs[0].Name, "hub.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := *base
	cfg.MemberID, cfg.Join = "h4", true
	cfg.DataDir = filepath.Join(work, "data")
	cfg.GRPCListen, cfg.RaftListen, cfg.HTTP.Listen = freePort(t), freePort(t), freePort(t)
	cfg.TURN = hub.TURNConfig{} // the demo's members keep their TURN ports
	cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.CA = filepath.Join(work, "tls", "cert.pem"), filepath.Join(work, "tls", "key.pem"), filepath.Join(work, "tls", "ca.pem")
	raw, err := yaml.Marshal(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(work, "hub.yaml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(work, "h4.log"))
	if err != nil {
		t.Fatal(err)
	}
	h4 := exec.Command(os.Getenv("RONDA_BIN"), "hub", "--config", path)
	h4.Stdout, h4.Stderr = logf, logf
	if err := h4.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = h4.Process.Kill()
		_ = h4.Wait()
		logf.Close()
		if t.Failed() {
			raw, _ := os.ReadFile(logf.Name())
			t.Logf("---- h4 log\n%s", tail(string(raw), 40))
		}
	}()

	out := runRonda(t, "hub", "join", "--demo", f.dir, "--id", "h4", "--raft", cfg.RaftListen, "--grpc", cfg.GRPCListen, "--http", "https://"+cfg.HTTP.Listen)
	t.Logf("ronda hub join:\n%s", out)
	if !strings.Contains(out, "h4") || !strings.Contains(out, "nonvoter") {
		t.Fatalf("join output does not show h4 as a non-voter:\n%s", out)
	}
	joined := time.Now()
	poll(t, 60*time.Second, "h4 promoted to voter and caught up", func() error {
		v := hubMembers(t, f)
		if len(v.Members) != 4 {
			return fmt.Errorf("%d members", len(v.Members))
		}
		for _, mb := range v.Members {
			if !mb.Reachable || mb.Suffrage != "voter" {
				return fmt.Errorf("%s: %s, reachable %v", mb.ID, mb.Suffrage, mb.Reachable)
			}
		}
		return nil
	})
	t.Logf("h4 a voter %.1f s after joining", time.Since(joined).Seconds())
	t.Logf("ronda hub members:\n%s", runRonda(t, "hub", "members", "--demo", f.dir))

	out = runRonda(t, "hub", "transfer-leader", "--demo", f.dir, "h4")
	if !strings.Contains(out, "leader is now h4") {
		t.Fatalf("transfer-leader h4: %s", out)
	}
	if v := hubMembers(t, f); v.Leader != "h4" {
		t.Fatalf("leader after the transfer: %q", v.Leader)
	}
	// The federation keeps working with h4 leading: coverage commits.
	c := f.client(t, m.Hubs[1].URL)
	since := time.Now()
	poll(t, 30*time.Second, "coverage committed under h4", func() error {
		cams, err := c.Cameras(ctx(t))
		if err != nil {
			return err
		}
		for _, cam := range cams {
			if cam.RecordedUntil == nil || !cam.RecordedUntil.After(since) {
				return fmt.Errorf("%s recorded until %v", cam.ID, cam.RecordedUntil)
			}
		}
		return nil
	})
	out = runRonda(t, "hub", "transfer-leader", "--demo", f.dir)
	if strings.Contains(out, "leader is now h4") {
		t.Fatalf("transfer-leader (any): %s", out)
	}
	// A wrong request is refused with a reason.
	bad := exec.Command(os.Getenv("RONDA_BIN"), "hub", "remove", "--demo", f.dir, "h9")
	if msg, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(msg), "not a member") {
		t.Fatalf("remove h9: %v %s", err, msg)
	}
	runRonda(t, "hub", "remove", "--demo", f.dir, "h4")
	v := hubMembers(t, f)
	if len(v.Members) != 3 || v.Leader == "h4" || v.Leader == "" {
		t.Fatalf("after removing h4: %+v", v)
	}
}
