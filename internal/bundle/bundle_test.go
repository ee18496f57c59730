package bundle

import (
	"archive/zip"
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/certs"
	"github.com/ronda-jakarta/ronda/evidence"
	"github.com/ronda-jakarta/ronda/internal/auditchain"
	"github.com/ronda-jakarta/ronda/internal/auditlog"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

const (
	cam1 = "3174011001-cam1"
	cam2 = "3174011001-cam2"
	mp41 = "media/i1-" + cam1 + ".mp4"
	mp42 = "media/i2-" + cam2 + ".mp4"
)

type fixture struct {
	dir   string
	key   ed25519.PrivateKey
	roots *x509.CertPool
	in    Input
}

// newFixture makes a case of two items of node n1, each a real export
// signed by a node certificate of a real city CA, and the case's audit
// records in a real audit Merkle log with a checkpoint signed by the hub.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: dir}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.key = key

	// The city CA and node n1's certificate.
	if err := certs.InitCA(filepath.Join(dir, "ca"), "jakarta"); err != nil {
		t.Fatal(err)
	}
	ca, err := certs.LoadCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Issue(filepath.Join(dir, "n1"), certs.IssueOptions{Identity: certs.Identity{Kind: certs.KindNode, Kelurahan: "31.74.01.1001", NodeID: "n1"}}); err != nil {
		t.Fatal(err)
	}
	nb, err := certs.LoadBundle(filepath.Join(dir, "n1", certs.CertFile), filepath.Join(dir, "n1", certs.KeyFile), filepath.Join(dir, "n1", certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	f.roots = nb.Pool
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca", certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	var chainPEM []byte // the node's certificate and its issuer, as a node signs
	for _, der := range nb.Current().Certificate {
		chainPEM = append(chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}

	base := time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)
	export := func(id, camera string, size int, from time.Time) Item {
		content := make([]byte, size)
		rand.Read(content)
		copy(content[4:], "ftypisom")
		file := filepath.Join(dir, id+".mp4")
		if err := os.WriteFile(file, content, 0o600); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(content)
		m := &evidence.Manifest{Version: evidence.Version, ID: id, Camera: camera, NodeID: "n1", Kelurahan: "31.74.01.1001",
			From: from, To: from.Add(10 * time.Minute), Requested: [2]string{from.Format(time.RFC3339), from.Add(10 * time.Minute).Format(time.RFC3339)},
			File: id + ".mp4", Bytes: int64(size), SHA256: hex.EncodeToString(sum[:]), RequestedBy: "hub:auditor", Reason: "case C1",
			Created: time.Now().UTC()}
		if err := evidence.Sign(m, nb.Current().PrivateKey.(crypto.Signer), chainPEM, nb.Identity.URI()); err != nil {
			t.Fatal(err)
		}
		if err := evidence.Write(filepath.Join(dir, id+".json"), m); err != nil {
			t.Fatal(err)
		}
		mb, err := os.ReadFile(filepath.Join(dir, id+".json"))
		if err != nil {
			t.Fatal(err)
		}
		return Item{ExportID: id, Open: func() (io.ReadCloser, error) { return os.Open(file) }, Size: int64(size),
			SHA256: m.SHA256, Manifest: mb, Item: api.CaseItem{Camera: camera, NodeID: "n1", From: from, To: from.Add(10 * time.Minute)}}
	}
	it1 := export("e1", cam1, 200_000, base)
	it1.Item.ID = "i1"
	it2 := export("e2", cam2, 70_001, base.Add(time.Minute))
	it2.Item.ID = "i2"

	// The audit log, leaves in the order the hub applied them: the case's
	// records among others.
	type ev struct {
		node, user, action, camera, outcome string
		caseRecord                          bool
	}
	evs := []ev{
		{"n2", "siti", "playback", "3174021001-cam1", "ok", false},
		{"hub", "auditor", "case-create C1", "", "ok", true},
		{"n1", "hub:auditor", "export", cam1, api.ExportOutcome("e1", it1.SHA256), true},
		{"n2", "siti", "playback", "3174021001-cam2", "ok", false},
		{"n1", "hub:auditor", "export", cam2, api.ExportOutcome("e2", it2.SHA256), true},
		{"hub", "auditor", "case-pull C1", "", "ok", true},
		{"n2", "budi", "login", "", "denied: wrong password", false},
		{"hub", "polisi", "case-download C1", "", "ok", true},
		{"n2", "siti", "playback", "3174021001-cam1", "ok", false},
	}
	heads := map[string][]byte{}
	seqs := map[string]uint64{}
	var leaves [][]byte
	var records []api.AuditRecord
	for i, e := range evs {
		seqs[e.node]++
		at := base.Add(time.Duration(i) * time.Minute)
		pe := &rondav1.AuditEvent{AuditSeq: seqs[e.node], AtUnixNano: at.UnixNano(), User: e.user, Action: e.action, CameraId: e.camera,
			Outcome: e.outcome, PrevSha256: heads[e.node]}
		if e.action == "export" {
			pe.FromUnixNano, pe.ToUnixNano = base.UnixNano(), base.Add(10*time.Minute).UnixNano()
		}
		if pe.PrevSha256 == nil {
			pe.PrevSha256 = auditchain.Genesis
		}
		h := auditchain.Hash(pe)
		heads[e.node] = h
		leaves = append(leaves, rfc6962.DefaultHasher.HashLeaf(auditchain.LeafData(e.node, pe.AuditSeq, h)))
		r := auditchain.Record(e.node, pe)
		leaf := uint64(i)
		r.Leaf = &leaf
		records = append(records, r)
	}
	root := mth(leaves)
	at := base.Add(time.Hour).UnixNano()
	cp := api.AuditCheckpoint{Size: uint64(len(leaves)), Root: root, At: at, Member: "h1",
		Signature: auth.Sign(key, auditlog.SignPurpose, auditchain.CheckpointText(uint64(len(leaves)), root, at))}
	var proofs []AuditProof
	for i, e := range evs {
		if e.caseRecord {
			proofs = append(proofs, AuditProof{Record: records[i], LeafIndex: uint64(i), Checkpoint: cp, Inclusion: inclusion(i, leaves)})
		}
	}

	f.in = Input{
		Case: api.Case{ID: "C1", Reason: "LP/B/1234/XI/2026/PMJ: pencurian motor di Jl. Kebon Sirih", Owner: "auditor",
			Created: base, Deadline: base.Add(6 * 24 * time.Hour), Status: "open", Items: []api.CaseItem{it1.Item, it2.Item}},
		Items: []Item{it1, it2}, Audit: proofs, CA: caPEM, Key: key, GeneratedBy: "polisi", Now: base.Add(2 * time.Hour),
	}
	return f
}

// mth is RFC 6962's Merkle tree hash of leaf hashes; inclusion its PATH.
func mth(l [][]byte) []byte {
	switch len(l) {
	case 0:
		return rfc6962.DefaultHasher.EmptyRoot()
	case 1:
		return l[0]
	}
	k := split(len(l))
	return rfc6962.DefaultHasher.HashChildren(mth(l[:k]), mth(l[k:]))
}

func inclusion(m int, l [][]byte) [][]byte {
	if len(l) <= 1 {
		return nil
	}
	k := split(len(l))
	if m < k {
		return append(inclusion(m, l[:k]), mth(l[k:]))
	}
	return append(inclusion(m-k, l[k:]), mth(l[:k]))
}

func split(n int) int {
	k := 1
	for k*2 < n {
		k *= 2
	}
	return k
}

// write makes the bundle in a file.
func (f *fixture) write(t *testing.T) string {
	t.Helper()
	path := filepath.Join(f.dir, "C1.zip")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(out, f.in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func (f *fixture) pinned() Options {
	return Options{HubKey: f.key.Public().(ed25519.PublicKey), Roots: f.roots}
}

// rewrite copies a bundle, letting edit change (or drop: nil) each file,
// then adds extra files.
func rewrite(t *testing.T, src string, edit func(name string, b []byte) []byte, extra map[string][]byte) string {
	t.Helper()
	zr, err := zip.OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	dst := filepath.Join(t.TempDir(), "edited.zip")
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(out)
	put := func(name string, method uint16, b []byte) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			b = edit(zf.Name, b)
		}
		if b != nil {
			put(zf.Name, zf.Method, b)
		}
	}
	names := make([]string, 0, len(extra))
	for n := range extra {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		put(n, zip.Deflate, extra[n])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	return dst
}

func expectProblem(t *testing.T, rep Report, parts ...string) {
	t.Helper()
	if rep.OK {
		t.Fatalf("verified; want a problem with %q", parts)
	}
	for _, p := range rep.Problems {
		ok := true
		for _, part := range parts {
			ok = ok && strings.Contains(p, part)
		}
		if ok {
			return
		}
	}
	t.Fatalf("no problem names %q; problems:\n%s", parts, strings.Join(rep.Problems, "\n"))
}

func TestBundleVerifies(t *testing.T) {
	f := newFixture(t)
	path := f.write(t)

	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, zf := range zr.File {
		names = append(names, zf.Name)
		if strings.HasSuffix(zf.Name, ".mp4") && zf.Method != zip.Store {
			t.Errorf("%s is compressed (method %d); MP4s are stored", zf.Name, zf.Method)
		}
	}
	zr.Close()
	want := []string{"index.html", "case.json", "case.sig", "certs/ca.pem", "audit/1.json", "audit/2.json", "audit/3.json", "audit/4.json", "audit/5.json",
		"media/i1-" + cam1 + ".manifest.json", mp41, "media/i2-" + cam2 + ".manifest.json", mp42}
	if !slices.Equal(names, want) {
		t.Fatalf("bundle holds %q; want %q", names, want)
	}

	rep := Verify(path, f.pinned())
	if !rep.OK || len(rep.Problems) > 0 || len(rep.Warnings) > 0 {
		t.Fatalf("an intact bundle: ok=%v problems=%q warnings=%q", rep.OK, rep.Problems, rep.Warnings)
	}
	if rep.Case != "C1" || rep.Items != 2 || rep.Bytes != 270_001 || rep.AuditRecords != 5 || !rep.KeyPinned ||
		rep.HubKey != KeyFingerprint(f.key.Public().(ed25519.PublicKey)) {
		t.Fatalf("summary: %+v", rep)
	}
	// Both exports are also found as their nodes' export events.
	for _, file := range []string{mp41, mp42} {
		if !slices.ContainsFunc(rep.Checked, func(c string) bool { return strings.HasPrefix(c, file+": its export") }) {
			t.Errorf("%s's export event not checked: %q", file, rep.Checked)
		}
	}

	// Nothing pinned: it verifies, with warnings naming the key and the CA.
	rep = Verify(path, Options{})
	if !rep.OK || len(rep.Warnings) != 2 {
		t.Fatalf("unpinned: ok=%v problems=%q warnings=%q", rep.OK, rep.Problems, rep.Warnings)
	}
	if !strings.Contains(rep.Warnings[0], KeyFingerprint(f.key.Public().(ed25519.PublicKey))) || !strings.Contains(rep.Warnings[1], "certs/ca.pem") {
		t.Fatalf("warnings: %q", rep.Warnings)
	}
}

func TestAlteredMP4IsNamed(t *testing.T) {
	f := newFixture(t)
	path := f.write(t)

	t.Run("one byte in the zip", func(t *testing.T) {
		zr, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		var off int64 = -1
		for _, zf := range zr.File {
			if zf.Name == mp42 {
				off, _ = zf.DataOffset()
			}
		}
		zr.Close()
		raw, _ := os.ReadFile(path)
		raw[off+5000] ^= 0x01
		edited := filepath.Join(t.TempDir(), "edited.zip")
		os.WriteFile(edited, raw, 0o600)
		rep := Verify(edited, f.pinned())
		expectProblem(t, rep, mp42+": SHA-256", "does not match case.json's", "altered")
		for _, p := range rep.Problems {
			if strings.Contains(p, mp41) {
				t.Errorf("the intact item is blamed: %s", p)
			}
		}
	})
	t.Run("re-zipped", func(t *testing.T) {
		edited := rewrite(t, path, func(name string, b []byte) []byte {
			if name == mp42 {
				b[1234]++
			}
			return b
		}, nil)
		rep := Verify(edited, f.pinned())
		expectProblem(t, rep, mp42+": SHA-256", "does not match case.json's")
		expectProblem(t, rep, "media/i2-"+cam2+".manifest.json: file i2-"+cam2+".mp4: SHA-256") // and the node's signature
	})
	t.Run("removed", func(t *testing.T) {
		edited := rewrite(t, path, func(name string, b []byte) []byte {
			if name == mp41 {
				return nil
			}
			return b
		}, nil)
		expectProblem(t, Verify(edited, f.pinned()), mp41+": listed in case.json", "missing")
	})
}

func TestRemovedAuditRecordIsNamed(t *testing.T) {
	f := newFixture(t)
	edited := rewrite(t, f.write(t), func(name string, b []byte) []byte {
		if name == "audit/1.json" {
			return nil
		}
		return b
	}, nil)
	expectProblem(t, Verify(edited, f.pinned()),
		"audit record hub #1 (case-create C1 by auditor, leaf 1) is listed in case.json but missing from the bundle (audit/1.json)")
}

func TestAlteredAuditRecordIsNamed(t *testing.T) {
	f := newFixture(t)
	edited := rewrite(t, f.write(t), func(name string, b []byte) []byte {
		if name == "audit/4.json" { // hub #2, case-pull
			return bytes.Replace(b, []byte(`"outcome": "ok"`), []byte(`"outcome": "denied: no"`), 1)
		}
		return b
	}, nil)
	rep := Verify(edited, f.pinned())
	expectProblem(t, rep, "audit record hub #2 (case-pull C1 by auditor, leaf 5) (audit/4.json)", "not leaf 5 of the log")
}

func TestEditedCaseJSONFailsTheSignature(t *testing.T) {
	f := newFixture(t)
	edited := rewrite(t, f.write(t), func(name string, b []byte) []byte {
		if name == CaseFile {
			return bytes.Replace(b, []byte("pencurian motor"), []byte("pencurian mobil"), 1)
		}
		return b
	}, nil)
	rep := Verify(edited, f.pinned())
	expectProblem(t, rep, "case.sig: the signature over case.json does not verify", "altered")
	if len(rep.Problems) != 1 {
		t.Errorf("problems: %q", rep.Problems)
	}
}

func TestAlteredIndexIsNamed(t *testing.T) {
	f := newFixture(t)
	edited := rewrite(t, f.write(t), func(name string, b []byte) []byte {
		if name == IndexFile {
			return bytes.Replace(b, []byte("pencurian motor"), []byte("pencurian mobil"), 1)
		}
		return b
	}, nil)
	expectProblem(t, Verify(edited, f.pinned()), "index.html: SHA-256", "altered")
}

func TestExtraFileIsNamed(t *testing.T) {
	f := newFixture(t)
	edited := rewrite(t, f.write(t), nil, map[string][]byte{"media/i3-3174011001-cam9.mp4": []byte("planted")})
	rep := Verify(edited, f.pinned())
	expectProblem(t, rep, "media/i3-3174011001-cam9.mp4: in the zip but not listed in case.json")
	if len(rep.Problems) != 1 {
		t.Errorf("problems: %q", rep.Problems)
	}
}

func TestWrongPinnedKeyIsRefused(t *testing.T) {
	f := newFixture(t)
	path := f.write(t)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	rep := Verify(path, Options{HubKey: other, Roots: f.roots})
	expectProblem(t, rep, "case.sig: the signature over case.json does not verify with the pinned hub key "+KeyFingerprint(other))
	expectProblem(t, rep, "case.json: names hub key", "not the pinned hub key")
	// The checkpoints are not that key's either.
	expectProblem(t, rep, "(audit/1.json): the checkpoint at size 9 is not signed by the hub key "+KeyFingerprint(other))
}

func TestOtherCityCAIsRefused(t *testing.T) {
	f := newFixture(t)
	path := f.write(t)
	if err := certs.InitCA(filepath.Join(f.dir, "other"), "bandung"); err != nil {
		t.Fatal(err)
	}
	pemb, _ := os.ReadFile(filepath.Join(f.dir, "other", certs.CAFile))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemb)
	rep := Verify(path, Options{HubKey: f.key.Public().(ed25519.PublicKey), Roots: roots})
	expectProblem(t, rep, "media/i1-"+cam1+".manifest.json: manifest: signing certificate is not issued by the given CA")
}

func TestIndexEscapesValues(t *testing.T) {
	f := newFixture(t)
	f.in.Case.Reason = `<script>alert("x")</script> & "quotes"`
	f.in.Case.Owner = `"><img src=x onerror=alert(1)>`
	f.in.GeneratedBy = "<i>petugas</i>"
	path := f.write(t)
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	rc, err := zr.Open(IndexFile)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(rc)
	rc.Close()
	s := string(page)
	for _, bad := range []string{"<script", "<img", "<i>petugas", "http://", "https://", "<link"} {
		if strings.Contains(s, bad) {
			t.Errorf("index.html contains %q", bad)
		}
	}
	for _, good := range []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;quotes&#34;", `href="` + mp41 + `"`, `href="audit/1.json"`,
		"ronda verify CASE.zip", "Alasan", "Reason", "membuat kasus C1", "created case C1"} {
		if !strings.Contains(s, good) {
			t.Errorf("index.html lacks %q", good)
		}
	}
	if rep := Verify(path, f.pinned()); !rep.OK {
		t.Fatalf("problems: %q", rep.Problems)
	}
}

func TestWriteRefusesAnAlteredStoredExport(t *testing.T) {
	f := newFixture(t)
	orig := f.in.Items[1].Open
	f.in.Items[1].Open = func() (io.ReadCloser, error) {
		rc, err := orig()
		if err != nil {
			return nil, err
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		b[100]++
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	err := Write(io.Discard, f.in)
	if err == nil || !strings.Contains(err.Error(), "item i2 (camera "+cam2+")") || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("Write of an altered export: %v", err)
	}

	// A manifest of another export is refused too.
	f = newFixture(t)
	f.in.Items[0].Manifest = f.in.Items[1].Manifest
	if err := Write(io.Discard, f.in); err == nil || !strings.Contains(err.Error(), "item i1") {
		t.Fatalf("Write with another item's manifest: %v", err)
	}
}
