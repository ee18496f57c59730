package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ronda-jakarta/ronda/internal/bundle"
)

// `ronda verify CASE.zip --hub-key K --ca C` and the two-file form both parse.
func TestVerifyArguments(t *testing.T) {
	for _, c := range []struct {
		args    []string
		pos     []string
		key, ca string
	}{
		{[]string{"CASE.zip"}, []string{"CASE.zip"}, "", ""},
		{[]string{"CASE.zip", "--hub-key", "K", "--ca", "ca.pem"}, []string{"CASE.zip"}, "K", "ca.pem"},
		{[]string{"--ca", "ca.pem", "CASE.zip", "--hub-key=K"}, []string{"CASE.zip"}, "K", "ca.pem"},
		{[]string{"--ca", "ca.pem", "e.mp4", "m.json"}, []string{"e.mp4", "m.json"}, "", "ca.pem"},
		{[]string{"e.mp4", "--ca", "ca.pem", "m.json"}, []string{"e.mp4", "m.json"}, "", "ca.pem"},
		{[]string{"--", "-odd.zip"}, []string{"-odd.zip"}, "", ""},
	} {
		fs := flag.NewFlagSet("verify", flag.ContinueOnError)
		key, ca := fs.String("hub-key", "", ""), fs.String("ca", "", "")
		pos := parseInterspersed(fs, c.args)
		if !slices.Equal(pos, c.pos) || *key != c.key || *ca != c.ca {
			t.Errorf("%q: positional %q hub-key %q ca %q", c.args, pos, *key, *ca)
		}
	}
}

// The hub key is given as a file or as the key itself, in any usual form.
func TestLoadHubKey(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "hub.pem")
	os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	rawFile := filepath.Join(dir, "hub.key")
	os.WriteFile(rawFile, pub, 0o600)
	b64File := filepath.Join(dir, "hub.b64")
	os.WriteFile(b64File, []byte(base64.StdEncoding.EncodeToString(pub)+"\n"), 0o600)
	for _, arg := range []string{base64.StdEncoding.EncodeToString(pub), hex.EncodeToString(pub), pemFile, rawFile, b64File} {
		k, err := loadHubKey(arg)
		if err != nil || !bytes.Equal(k, pub) {
			t.Errorf("%s: %v", arg, err)
		}
	}
	for _, arg := range []string{"nope", filepath.Join(dir, "missing.pem"), "AAAA"} {
		if _, err := loadHubKey(arg); err == nil {
			t.Errorf("%s: accepted", arg)
		}
	}
}

func TestPrintCaseReport(t *testing.T) {
	var b bytes.Buffer
	ok := printCaseReport(&b, "C1.zip", bundle.Report{OK: true, Case: "C1", Items: 2, Bytes: 10, AuditRecords: 5, HubKey: "abcd", KeyPinned: true,
		Checked: []string{"case.sig: ok"}})
	if !ok || !strings.HasPrefix(b.String(), "VERIFIED: C1.zip is evidence case C1: 2 items (10 bytes of footage), 5 audit records; signed by hub key abcd (pinned)") {
		t.Errorf("verified: %s", b.String())
	}
	b.Reset()
	if printCaseReport(&b, "C1.zip", bundle.Report{Case: "C1", Problems: []string{"media/x.mp4: altered"}, Warnings: []string{"no key"}}) {
		t.Error("a report with problems printed as verified")
	}
	if out := b.String(); !strings.HasPrefix(out, "NOT VERIFIED: C1.zip (case C1)\n") || !strings.Contains(out, "  - media/x.mp4: altered") ||
		!strings.Contains(out, "  warning: no key") {
		t.Errorf("not verified: %s", out)
	}
}
