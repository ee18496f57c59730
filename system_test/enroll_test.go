//go:build e2e

package system_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/certs"
)

// checkEnrollment: a city admin makes a join token for a kelurahan with the
// CLI; a new node makes its own key and gets its certificate with it, once.
// The same token again, an expired one and a made-up one are refused.
func checkEnrollment(t *testing.T, f *federation) {
	hub := f.m.Hubs[0]
	token := func(ttl string) string {
		out := runRonda(t, "certs", "token", "--demo", f.dir, "--kelurahan", "31.71.05.1003", "--ttl", ttl)
		tok := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
		if !strings.HasPrefix(tok, "rjt_") {
			t.Fatalf("certs token printed %q", out)
		}
		return tok
	}
	enroll := func(tok, nodeID string) (string, string, error) {
		dir := filepath.Join(t.TempDir(), nodeID)
		out, err := exec.Command(os.Getenv("RONDA_BIN"), "node", "enroll", "--hub", hub.URL, "--ca", f.m.CAFile,
			"--token", tok, "--node-id", nodeID, "--out", dir).CombinedOutput()
		return dir, string(out), err
	}
	tok := token("1h")
	dir, out, err := enroll(tok, "n9")
	if err != nil {
		t.Fatalf("enroll n9: %v\n%s", err, out)
	}
	b, err := certs.LoadBundle(filepath.Join(dir, certs.CertFile), filepath.Join(dir, certs.KeyFile), f.m.CAFile)
	if err != nil {
		t.Fatalf("the enrolled certificate: %v", err)
	}
	if want := "spiffe://jakarta/kelurahan/31.71.05.1003/node/n9"; b.Identity.URI() != want {
		t.Fatalf("enrolled as %s, want %s", b.Identity, want)
	}
	if st, err := os.Stat(filepath.Join(dir, certs.KeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem: %v, mode %v; want 0600", err, st.Mode())
	}
	t.Logf("enrolled: %s", strings.TrimSpace(out))
	if _, out, err := enroll(tok, "n10"); err == nil || !strings.Contains(out, "already used by node n9") {
		t.Fatalf("the same token again: %v %s, want refused as already used", err, out)
	}
	short := token("1s")
	time.Sleep(2 * time.Second)
	if _, out, err := enroll(short, "n11"); err == nil || !strings.Contains(out, "expired") {
		t.Fatalf("an expired token: %v %s, want refused as expired", err, out)
	}
	if _, out, err := enroll("rjt_madeup", "n12"); err == nil || !strings.Contains(out, "unknown join token") {
		t.Fatalf("a made-up token: %v %s, want refused", err, out)
	}
}
