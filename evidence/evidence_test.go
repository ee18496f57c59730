package evidence

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/certs"
)

func setup(t *testing.T) (dir string, m *Manifest, file string, roots *x509.CertPool) {
	t.Helper()
	dir = t.TempDir()
	if err := certs.InitCA(filepath.Join(dir, "ca"), "jakarta"); err != nil {
		t.Fatal(err)
	}
	ca, _ := certs.LoadCA(filepath.Join(dir, "ca"))
	if err := ca.Issue(filepath.Join(dir, "n1"), certs.IssueOptions{Identity: certs.Identity{Kind: certs.KindNode, Kelurahan: "31.71.01.1001", NodeID: "n1"}}); err != nil {
		t.Fatal(err)
	}
	b, err := certs.LoadBundle(filepath.Join(dir, "n1", certs.CertFile), filepath.Join(dir, "n1", certs.KeyFile), filepath.Join(dir, "n1", certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "export.mp4")
	content := []byte("pretend this is an mp4 of the footage")
	os.WriteFile(file, content, 0o600)
	seg := []byte("segment bytes and more")
	os.MkdirAll(filepath.Join(dir, "segs", "cam"), 0o700)
	os.WriteFile(filepath.Join(dir, "segs", "cam", "1.mp4"), seg, 0o600)
	sum := sha256.Sum256(content)
	segSum := sha256.Sum256(seg[:10])
	m = &Manifest{Version: Version, ID: "e1", Camera: "3171011001-cam1", NodeID: "n1", Kelurahan: "31.71.01.1001",
		From: time.Unix(1_800_000_000, 0).UTC(), To: time.Unix(1_800_000_060, 0).UTC(), File: "export.mp4",
		Bytes: int64(len(content)), SHA256: hex.EncodeToString(sum[:]),
		Segments:    []Segment{{File: "cam/1.mp4", Bytes: 10, SHA256: hex.EncodeToString(segSum[:])}},
		RequestedBy: "auditor", Reason: "JAKI-2026-0001", Created: time.Now().UTC()}
	var certPEM []byte // the node's certificate and the issuing CA, as the node signs
	for _, der := range b.Current().Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if err := Sign(m, b.Current().PrivateKey.(crypto.Signer), certPEM, b.Identity.URI()); err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(dir, "m.json"), m); err != nil {
		t.Fatal(err)
	}
	m, err = Load(filepath.Join(dir, "m.json"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, m, file, b.Pool
}

func TestVerify(t *testing.T) {
	dir, m, file, roots := setup(t)
	if p := Verify(m, file, Options{Roots: roots, SegmentsDir: filepath.Join(dir, "segs")}); len(p) != 0 {
		t.Fatalf("intact export: %v", p)
	}

	cases := []struct {
		name   string
		mutate func(m *Manifest, file string, o *Options)
		want   string
	}{
		{"one byte of the file altered", func(_ *Manifest, f string, _ *Options) {
			b, _ := os.ReadFile(f)
			b[5] ^= 1
			os.WriteFile(f, b, 0o600)
		}, "SHA-256 is"},
		{"file truncated", func(_ *Manifest, f string, _ *Options) {
			b, _ := os.ReadFile(f)
			os.WriteFile(f, b[:10], 0o600)
		}, "bytes; the manifest says"},
		{"reason rewritten in the manifest", func(m *Manifest, _ string, _ *Options) { m.Reason = "nothing to see" }, "signature does not match"},
		{"signed by another city's CA", func(_ *Manifest, _ string, o *Options) {
			certs.InitCA(filepath.Join(dir, "other"), "jakarta")
			pem, _ := os.ReadFile(filepath.Join(dir, "other", certs.CAFile))
			o.Roots = x509.NewCertPool()
			o.Roots.AppendCertsFromPEM(pem)
		}, "not issued by the given CA"},
		{"source segment altered", func(_ *Manifest, _ string, o *Options) {
			os.WriteFile(filepath.Join(dir, "segs", "cam", "1.mp4"), []byte("Segment bytes and more"), 0o600)
		}, "source segment cam/1.mp4: SHA-256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir2, m, file, roots := setup(t)
			o := Options{Roots: roots, SegmentsDir: filepath.Join(dir2, "segs")}
			dir = dir2
			c.mutate(m, file, &o)
			p := Verify(m, file, o)
			if len(p) == 0 || !strings.Contains(strings.Join(p, "\n"), c.want) {
				t.Fatalf("problems %q, want one containing %q", p, c.want)
			}
		})
	}
}
