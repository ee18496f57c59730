package node

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/certs"
	"github.com/ronda-jakarta/ronda/evidence"
	"github.com/ronda-jakarta/ronda/internal/pebbleutil"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	"github.com/ronda-jakarta/ronda/replication"
)

var discard = slog.New(slog.DiscardHandler)

// exportNode is a node (as much of one as exports need) with the city CA
// and a certificate issued by it, and one export made and signed as
// CreateExport does.
func exportNode(t *testing.T) (*backend, string) {
	t.Helper()
	dir := t.TempDir()
	if err := certs.InitCA(filepath.Join(dir, "ca"), "jakarta"); err != nil {
		t.Fatal(err)
	}
	ca, err := certs.LoadCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Issue(filepath.Join(dir, "n1"), certs.IssueOptions{Identity: certs.Identity{Kind: certs.KindNode, Kelurahan: "31.71.01.1001", NodeID: "n1"}}); err != nil {
		t.Fatal(err)
	}
	bundle, err := certs.LoadBundle(filepath.Join(dir, "n1", certs.CertFile), filepath.Join(dir, "n1", certs.KeyFile), filepath.Join(dir, "n1", certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{cfg: &Config{NodeID: "n1", Kelurahan: "31.71.01.1001", DataDir: filepath.Join(dir, "data")}, log: discard, bundle: bundle}
	const id = "20261122T100000-0a1b2c3d"
	if err := os.MkdirAll(n.exportDir(), 0o750); err != nil {
		t.Fatal(err)
	}
	content := []byte("pretend this is the exported mp4")
	if err := os.WriteFile(filepath.Join(n.exportDir(), id+".mp4"), content, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	m := &evidence.Manifest{Version: evidence.Version, ID: id, Camera: "3171011001-cam1", NodeID: "n1", Kelurahan: "31.71.01.1001",
		From: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 22, 9, 10, 0, 0, time.UTC), File: id + ".mp4",
		Bytes: int64(len(content)), SHA256: hex.EncodeToString(sum[:]), RequestedBy: "auditor", Reason: "JAKI-2026-0042", Created: time.Now().UTC()}
	var certPEM []byte
	for _, der := range bundle.Current().Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if err := evidence.Sign(m, bundle.Current().PrivateKey.(crypto.Signer), certPEM, bundle.Identity.URI()); err != nil {
		t.Fatal(err)
	}
	if err := evidence.Write(filepath.Join(n.exportDir(), id+".manifest.json"), m); err != nil {
		t.Fatal(err)
	}
	return &backend{n: n}, id
}

// A stored export verifies as `ronda verify` would say; an altered file, a
// certificate from another CA, an unknown export are each named.
func TestNodeVerifiesAStoredExport(t *testing.T) {
	b, id := exportNode(t)
	ctx := t.Context()
	v, err := b.VerifyExport(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	signer := "spiffe://jakarta/kelurahan/31.71.01.1001/node/n1"
	if !v.Verified || len(v.Problems) != 0 || v.Method != "manifest" || v.Camera != "3171011001-cam1" || v.Signer != signer || len(v.SHA256) != 64 || v.Checked.IsZero() {
		t.Fatalf("an intact export: %+v", v)
	}
	want := []string{"file SHA-256 matches the manifest: " + v.SHA256 + ", 32 bytes", "manifest signed by " + signer + ": the signature matches its contents",
		"the signing certificate was issued by the city CA this node trusts", "the manifest names export " + id + " of camera 3171011001-cam1 at node n1"}
	if len(v.Checks) != len(want) {
		t.Fatalf("checks %q", v.Checks)
	}
	for i, w := range want {
		if !strings.HasPrefix(v.Checks[i], w) {
			t.Fatalf("check %d: %q, want %q", i, v.Checks[i], w)
		}
	}

	// The file altered after the export.
	f, _ := os.OpenFile(filepath.Join(b.n.exportDir(), id+".mp4"), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("!"))
	f.Close()
	v, _ = b.VerifyExport(ctx, id, "n1")
	if v.Verified || len(v.Problems) != 2 || !strings.Contains(v.Problems[0], "33 bytes; the manifest says 32") || !strings.Contains(v.Problems[1], "the file was altered") {
		t.Fatalf("an altered file: %+v", v)
	}
	if slices.ContainsFunc(v.Checks, func(c string) bool { return strings.HasPrefix(c, "file") }) || !slices.ContainsFunc(v.Checks, func(c string) bool { return strings.HasPrefix(c, "manifest signed") }) {
		t.Fatalf("checks of an altered file: %q", v.Checks)
	}

	// A node that trusts another city CA.
	other := t.TempDir()
	if err := certs.InitCA(other, "jakarta"); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(other, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	b.n.bundle = &certs.Bundle{Pool: pool}
	v, _ = b.VerifyExport(ctx, id, "")
	if v.Verified || !slices.ContainsFunc(v.Problems, func(p string) bool { return strings.Contains(p, "not issued by the given CA") }) ||
		slices.ContainsFunc(v.Checks, func(c string) bool { return strings.Contains(c, "city CA") }) {
		t.Fatalf("another CA: %+v", v)
	}

	for _, c := range []struct{ id, node, says string }{
		{"20261122T100000-ffffffff", "", "no export"},
		{"../../etc/passwd", "", "no export"},
		{id, "n2", "this is node n1"},
	} {
		if _, err := b.VerifyExport(ctx, c.id, c.node); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("VerifyExport(%q, %q): %v, want not found saying %q", c.id, c.node, err, c.says)
		}
	}
}

// auditNode is a node with an audit log of n events: user u<i%3>, actions
// live, download-file, download-manifest, export in turn, every fifth denied.
func auditNode(t *testing.T, dir string, n int) *backend {
	t.Helper()
	o, err := replication.OpenOutbox(dir, discard)
	if err != nil {
		t.Fatal(err)
	}
	actions := []string{"live", "download-file", "download-manifest", "export"}
	for i := 1; i <= n; i++ {
		outcome := "ok"
		if i%5 == 0 {
			outcome = "denied: forbidden"
		}
		if err := o.AppendAudit(&rondav1.AuditEvent{AtUnixNano: int64(i) * 1e9, User: fmt.Sprintf("u%d", i%3), Action: actions[i%4], CameraId: "3171011001-cam1", Outcome: outcome}); err != nil {
			t.Fatal(err)
		}
	}
	return &backend{n: &Node{cfg: &Config{NodeID: "n1"}, log: discard, outbox: o}}
}

func seqs(page api.AuditPage) []uint64 {
	var out []uint64
	for _, e := range page.Events {
		out = append(out, e.Seq)
	}
	return out
}

func TestNodeAuditNewestFirst(t *testing.T) {
	b := auditNode(t, t.TempDir(), 3000)
	defer b.n.outbox.Close()
	ctx := t.Context()
	if last, err := b.lastAuditSeq(); err != nil || last != 3000 {
		t.Fatalf("last audit seq %d, %v", last, err)
	}
	page, err := b.AuditNewest(ctx, api.AuditQuery{Limit: 3})
	if err != nil || !slices.Equal(seqs(page), []uint64{3000, 2999, 2998}) || page.NextBefore == nil || *page.NextBefore != 2998 || page.Scanned != 3 {
		t.Fatalf("newest three: %v next %v scanned %d, %v", seqs(page), page.NextBefore, page.Scanned, err)
	}
	page, _ = b.AuditNewest(ctx, api.AuditQuery{Limit: 3, Before: *page.NextBefore})
	if !slices.Equal(seqs(page), []uint64{2997, 2996, 2995}) {
		t.Fatalf("the next page: %v", seqs(page))
	}
	// download-* by u1 that were refused: i%4 in {1,2}, i%3 == 1, i%5 == 0.
	page, _ = b.AuditNewest(ctx, api.AuditQuery{Limit: 2, User: "u1", Action: "download-", Outcome: "denied"})
	if !slices.Equal(seqs(page), []uint64{2965, 2950}) || *page.NextBefore != 2950 {
		t.Fatalf("u1's refused downloads: %v next %v", seqs(page), page.NextBefore)
	}
	for _, e := range page.Events {
		if e.User != "u1" || !strings.HasPrefix(e.Action, "download-") || !strings.HasPrefix(e.Outcome, "denied") || e.NodeID != "n1" || e.Leaf != nil {
			t.Fatalf("a filtered record: %+v", e)
		}
	}
	// The scan is bounded, and the cursor continues below what was examined.
	page, _ = b.AuditNewest(ctx, api.AuditQuery{Limit: 10, User: "nobody", MaxScan: 1500})
	if len(page.Events) != 0 || page.Scanned != 1500 || *page.NextBefore != 1501 {
		t.Fatalf("bounded scan: %v scanned %d next %v", seqs(page), page.Scanned, page.NextBefore)
	}
	page, _ = b.AuditNewest(ctx, api.AuditQuery{Limit: 10, User: "nobody", Before: 1501, MaxScan: 1500})
	if page.Scanned != 1500 || page.NextBefore != nil {
		t.Fatalf("to the first event: scanned %d next %v", page.Scanned, page.NextBefore)
	}
	if _, err := b.AuditNewest(ctx, api.AuditQuery{NodeID: "n2"}); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("another node's log: %v", err)
	}
	empty := auditNode(t, t.TempDir(), 0)
	defer empty.n.outbox.Close()
	if page, err := empty.AuditNewest(ctx, api.AuditQuery{}); err != nil || len(page.Events) != 0 || page.NextBefore != nil {
		t.Fatalf("an empty log: %+v %v", page, err)
	}
}

// Tamper test: an event edited and another deleted in the node's audit log
// are named by the node's verification of its chain.
func TestNodeAuditVerifyFindsATamperedLog(t *testing.T) {
	dir := t.TempDir()
	b := auditNode(t, dir, 40)
	rep, err := b.VerifyAudit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	v := rep.(api.NodeAuditVerification)
	if !v.OK || v.Events != 40 || v.HeadSeq != 40 || len(v.HeadHash) != 64 || v.Findings == nil || v.NodeID != "n1" {
		t.Fatalf("an intact log: %+v", v)
	}
	b.n.outbox.Close()

	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleutil.NewLogger(discard)})
	if err != nil {
		t.Fatal(err)
	}
	key := func(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte("l"), seq) }
	raw, closer, err := db.Get(key(10))
	if err != nil {
		t.Fatal(err)
	}
	var e rondav1.AuditEvent
	if err := proto.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	closer.Close()
	e.Outcome = "ok" // hide that #10 was refused
	nv, _ := proto.Marshal(&e)
	if err := db.Set(key(10), nv, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(key(25), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	o, err := replication.OpenOutbox(dir, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b.n.outbox = o
	rep, err = b.VerifyAudit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v = rep.(api.NodeAuditVerification)
	want := []api.AuditChainFinding{
		{NodeID: "n1", Seq: 10, Problem: "its successor #11 names a predecessor hashing to"},
		{NodeID: "n1", Seq: 26, Problem: "event #25 before it is not in the log (removed)"},
	}
	if v.OK || v.Events != 39 || len(v.Findings) != len(want) {
		t.Fatalf("the tampered log: %+v", v)
	}
	for i, w := range want {
		f := v.Findings[i]
		if f.NodeID != w.NodeID || f.Seq != w.Seq || !strings.HasPrefix(f.Problem, w.Problem) {
			t.Errorf("finding %d: %+v, want %+v", i, f, w)
		}
	}
	if !strings.Contains(v.Findings[0].Problem, "it was changed after it was logged") {
		t.Errorf("the edited event: %q", v.Findings[0].Problem)
	}
	// Newest first still lists what is there, around the hole.
	page, _ := b.AuditNewest(t.Context(), api.AuditQuery{Limit: 3, Before: 27})
	if !slices.Equal(seqs(page), []uint64{26, 24, 23}) {
		t.Fatalf("around the deleted #25: %v", seqs(page))
	}
}
