package bundle

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/evidence"
)

// Options of Verify.
type Options struct {
	// HubKey is the hub's public key, pinned (from the hub, not the
	// bundle). Nil: the key case.json names is trusted, with a warning
	// naming its fingerprint.
	HubKey ed25519.PublicKey
	// Roots is the city CA the node manifests' signers must chain to. Nil:
	// the bundle's certs/ca.pem, with a warning.
	Roots *x509.CertPool
}

// Report is the outcome of Verify: OK when nothing is in Problems. Every
// problem names the file or the audit record it is about.
type Report struct {
	OK       bool
	Case     string // the case id
	Checked  []string
	Problems []string
	Warnings []string
	// Summary.
	Items        int
	Bytes        int64 // of the items' MP4s
	AuditRecords int
	HubKey       string // the fingerprint of the key case.sig was checked with
	KeyPinned    bool   // whether that key was given (Options.HubKey)
}

// Limits of what Verify reads into memory.
const (
	maxCaseJSON = 64 << 20
	maxSmall    = 8 << 20 // a manifest, an audit proof, the CA, index.html, case.sig
)

type verifier struct {
	rep   *Report
	files map[string]*zip.File
	pub   ed25519.PublicKey
	roots *x509.CertPool
	tmp   string
}

func (v *verifier) problem(format string, a ...any) {
	v.rep.Problems = append(v.rep.Problems, fmt.Sprintf(format, a...))
}
func (v *verifier) checked(format string, a ...any) {
	v.rep.Checked = append(v.rep.Checked, fmt.Sprintf(format, a...))
}
func (v *verifier) warn(format string, a ...any) {
	v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf(format, a...))
}

// read returns a file of the zip (nil, nil: not in it), at most limit bytes.
func (v *verifier) read(name string, limit int64) ([]byte, error) {
	f := v.files[name]
	if f == nil {
		return nil, nil
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

// Verify checks the case bundle at path offline: case.sig over case.json
// with the hub key; every listed file against case.json; every MP4 against
// its node-signed manifest, and the manifest's signature up to the city CA;
// every listed audit record against its inclusion proof and the hub-signed
// checkpoint; and that the zip holds nothing case.json does not list.
func Verify(zipPath string, opts Options) (rep Report) {
	defer func() { rep.OK = len(rep.Problems) == 0 }()
	zr, err := zip.OpenReader(zipPath)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s: not a readable zip: %v", filepath.Base(zipPath), err))
		return rep
	}
	defer zr.Close()
	v := &verifier{rep: &rep, files: map[string]*zip.File{}}

	count := map[string]int{}
	for _, f := range zr.File {
		count[f.Name]++
		if f.FileInfo().IsDir() {
			continue // folders of a re-zipped bundle
		}
		v.files[f.Name] = f
	}
	for _, f := range zr.File {
		if n := count[f.Name]; n > 1 {
			v.problem("%s: in the zip %d times: which copy a tool shows is not defined, so the bundle was tampered with", f.Name, n)
			count[f.Name] = 0
		}
	}

	// case.json and its signature.
	caseJSON, err := v.read(CaseFile, maxCaseJSON)
	switch {
	case err != nil:
		v.problem("%s: unreadable: %v", CaseFile, err)
		return rep
	case caseJSON == nil:
		v.problem("%s: missing: this is not a Ronda case bundle, or its listing was removed", CaseFile)
		return rep
	}
	var l Listing
	if err := json.Unmarshal(caseJSON, &l); err != nil {
		v.problem("%s: not a case listing: %v", CaseFile, err)
		return rep
	}
	rep.Case = l.Case.ID
	if l.Version != Version {
		v.problem("%s: bundle format version %d; this ronda reads version %d", CaseFile, l.Version, Version)
		return rep
	}
	listedKey, kerr := base64.StdEncoding.DecodeString(l.HubKey)
	if kerr != nil || len(listedKey) != ed25519.PublicKeySize {
		listedKey = nil
	}
	switch {
	case opts.HubKey != nil:
		v.pub, rep.KeyPinned = opts.HubKey, true
		if listedKey != nil && !bytes.Equal(listedKey, opts.HubKey) {
			v.problem("%s: names hub key %s, not the pinned hub key %s: another hub (or someone else) made this bundle", CaseFile,
				KeyFingerprint(listedKey), KeyFingerprint(opts.HubKey))
		}
	case listedKey == nil:
		v.problem("%s: hub_key %q is not a base64 Ed25519 public key, and no hub key was given (--hub-key)", CaseFile, l.HubKey)
		return rep
	default:
		v.pub = listedKey
		v.warn("no hub key was given (--hub-key): trusted the key case.json names, fingerprint %s; whoever made the bundle chose it, so compare it with the hub's published key", KeyFingerprint(listedKey))
	}
	rep.HubKey = KeyFingerprint(v.pub)
	whose := "the hub key " + rep.HubKey + " named in case.json"
	if rep.KeyPinned {
		whose = "the pinned hub key " + rep.HubKey
	}
	sigText, err := v.read(SigFile, maxSmall)
	sig, serr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sigText)))
	switch {
	case err != nil:
		v.problem("%s: unreadable: %v", SigFile, err)
	case sigText == nil:
		v.problem("%s: missing: nothing proves the hub made case.json", SigFile)
	case serr != nil || len(sig) != ed25519.SignatureSize:
		v.problem("%s: not a base64 Ed25519 signature", SigFile)
	case !auth.VerifySignature(v.pub, SignPurpose, caseJSON, sig):
		v.problem("%s: the signature over case.json does not verify with %s: case.json was altered after the hub signed it, or that hub did not make this bundle", SigFile, whose)
	default:
		v.checked("%s: case.json (%d bytes) is signed by %s", SigFile, len(caseJSON), whose)
	}

	// The other listed files (index.html, the CA), by digest.
	listed := map[string]bool{CaseFile: true, SigFile: true}
	for _, fe := range l.Files {
		listed[fe.File] = true
		v.digest(fe)
	}

	// The city CA.
	v.roots = opts.Roots
	caPEM, _ := v.read(CAFile, maxSmall)
	var caCert *x509.Certificate
	if blk, _ := pem.Decode(caPEM); blk != nil {
		caCert, _ = x509.ParseCertificate(blk.Bytes)
	}
	switch {
	case caCert == nil && opts.Roots == nil:
		v.problem("%s: missing or not a certificate, and no city CA was given (--ca): the node signatures cannot be traced to the city", CAFile)
	case opts.Roots == nil:
		v.roots = x509.NewCertPool()
		v.roots.AddCert(caCert)
		sum := sha256.Sum256(caCert.Raw)
		v.warn("no city CA was given (--ca): node signatures were checked against the bundle's own %s (%s, SHA-256 %x); compare it with the city's CA certificate",
			CAFile, caCert.Subject.CommonName, sum[:])
	case caCert != nil:
		if _, err := caCert.Verify(x509.VerifyOptions{Roots: opts.Roots, CurrentTime: caCert.NotBefore.Add(time.Second),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			v.warn("%s (%s) is not the given city CA: the node signatures were checked against the given CA", CAFile, caCert.Subject.CommonName)
		}
	}

	// The items.
	tmp, err := os.MkdirTemp("", "ronda-verify-")
	if err != nil {
		v.problem("cannot check the MP4s against their manifests: %v", err)
	} else {
		v.tmp = tmp
		defer os.RemoveAll(tmp)
	}
	for _, e := range l.Items {
		listed[e.File], listed[e.Manifest] = true, true
		rep.Items++
		rep.Bytes += e.Bytes
		v.item(e)
	}

	// The audit records.
	exports := map[string]AuditProof{} // node \x00 outcome of export events
	for _, e := range l.Audit {
		listed[e.File] = true
		rep.AuditRecords++
		if p, ok := v.audit(e); ok && p.Record.Action == "export" {
			exports[p.Record.NodeID+"\x00"+p.Record.Outcome] = p
		}
	}
	for _, e := range l.Items {
		if p, ok := exports[e.NodeID+"\x00"+api.ExportOutcome(e.ExportID, e.SHA256)]; ok && p.Record.CameraID == e.Camera {
			v.checked("%s: its export %s is in the hub's audit log as %s audit event #%d (leaf %d)", e.File, e.ExportID, p.Record.NodeID, p.Record.Seq, p.LeafIndex)
		}
	}

	// Nothing unlisted.
	var extra []string
	for name := range v.files {
		if !listed[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		v.problem("%s: in the zip but not listed in case.json: it was added after the hub made the bundle", name)
	}
	return rep
}

// digest checks a listed file by its SHA-256 and size.
func (v *verifier) digest(fe FileEntry) {
	b, err := v.read(fe.File, maxCaseJSON)
	switch {
	case err != nil:
		v.problem("%s: unreadable: %v", fe.File, err)
		return
	case b == nil:
		v.problem("%s: listed in case.json but missing from the bundle", fe.File)
		return
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != fe.SHA256 || int64(len(b)) != fe.Bytes {
		v.problem("%s: SHA-256 %s (%d bytes) does not match case.json's %s (%d bytes): the file was altered", fe.File, short(got), len(b), short(fe.SHA256), fe.Bytes)
		return
	}
	v.checked("%s: SHA-256 and size as case.json lists", fe.File)
}

// item checks an item's MP4 against case.json and against its manifest,
// and the manifest's signature.
func (v *verifier) item(e ItemEntry) {
	label := fmt.Sprintf("item %s, camera %s", e.ID, e.Camera)
	bad := len(v.rep.Problems)
	f := v.files[e.File]
	var extracted string // the MP4 in the temporary folder, when complete
	if f == nil {
		v.problem("%s: listed in case.json (%s, %d bytes) but missing from the bundle", e.File, label, e.Bytes)
	} else {
		extracted = v.extract(e, f)
	}

	mb, err := v.read(e.Manifest, maxSmall)
	var m evidence.Manifest
	switch {
	case err != nil:
		v.problem("%s: unreadable: %v", e.Manifest, err)
		return
	case mb == nil:
		v.problem("%s: listed in case.json (the node-signed manifest of %s) but missing from the bundle", e.Manifest, label)
		return
	}
	if err := json.Unmarshal(mb, &m); err != nil || m.Version != evidence.Version {
		v.problem("%s: not a version %d export manifest (%v)", e.Manifest, evidence.Version, err)
		return
	}
	if m.ID != e.ExportID || m.NodeID != e.NodeID || m.Camera != e.Camera {
		v.problem("%s: the manifest is of export %s of node %s, camera %s, but case.json lists %s as export %s of node %s",
			e.Manifest, m.ID, m.NodeID, m.Camera, label, e.ExportID, e.NodeID)
	}
	if m.SHA256 != e.SHA256 || m.Bytes != e.Bytes {
		v.problem("%s: the node signed SHA-256 %s (%d bytes), but case.json lists SHA-256 %s (%d bytes) for %s",
			e.Manifest, short(m.SHA256), m.Bytes, short(e.SHA256), e.Bytes, e.File)
	}
	if extracted == "" {
		return // its problem is named; the manifest's signature alone says nothing of the file
	}
	for _, p := range evidence.Verify(&m, extracted, evidence.Options{Roots: v.roots}) {
		v.problem("%s: %s", e.Manifest, p)
	}
	if len(v.rep.Problems) == bad {
		v.checked("%s: %s, %d bytes, SHA-256 %s: as case.json lists and as node %s signed in %s (%s, export %s, requested by %s)",
			e.File, label, e.Bytes, e.SHA256, m.NodeID, e.Manifest, m.Signer, m.ID, m.RequestedBy)
	}
}

// extract copies an item's MP4 to the temporary folder (as its own name, so
// evidence.Verify's messages name it), hashing it, and checks it against
// case.json. It returns the copy's path ("": none).
func (v *verifier) extract(e ItemEntry, f *zip.File) string {
	rc, err := f.Open()
	if err != nil {
		v.problem("%s: unreadable: %v", e.File, err)
		return ""
	}
	defer rc.Close()
	var dst io.Writer = io.Discard
	name := ""
	if v.tmp != "" {
		name = filepath.Join(v.tmp, safeName(path.Base(e.File)))
		out, err := os.Create(name)
		if err != nil {
			v.problem("%s: cannot copy it to check it against its manifest: %v", e.File, err)
			return ""
		}
		defer out.Close()
		dst = out
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(dst, h), io.LimitReader(rc, e.Bytes+1))
	crc := ""
	switch {
	case n > e.Bytes:
		v.problem("%s: larger than the %d bytes case.json lists: the file was altered", e.File, e.Bytes)
		return ""
	case errors.Is(err, zip.ErrChecksum):
		crc = " (and its zip CRC-32 does not match either)"
	case err != nil:
		v.problem("%s: unreadable after %d bytes: %v", e.File, n, err)
		return ""
	}
	got := hex.EncodeToString(h.Sum(nil))
	switch {
	case n != e.Bytes:
		v.problem("%s: %d bytes; case.json lists %d: the file was truncated or altered%s", e.File, n, e.Bytes, crc)
	case got != e.SHA256:
		v.problem("%s: SHA-256 %s does not match case.json's %s: the file was altered%s", e.File, short(got), short(e.SHA256), crc)
	case crc != "":
		v.problem("%s: its zip CRC-32 does not match: the zip was damaged", e.File)
	}
	return name
}

// audit checks one listed audit record. ok: its proof holds.
func (v *verifier) audit(e AuditEntry) (AuditProof, bool) {
	label := auditLabel(e)
	b, err := v.read(e.File, maxSmall)
	var p AuditProof
	switch {
	case err != nil:
		v.problem("%s is listed in case.json but %s is unreadable: %v", label, e.File, err)
		return p, false
	case b == nil:
		v.problem("%s is listed in case.json but missing from the bundle (%s)", label, e.File)
		return p, false
	}
	if err := json.Unmarshal(b, &p); err != nil {
		v.problem("%s: %s is not an audit record with its proof: %v", label, e.File, err)
		return p, false
	}
	r := p.Record
	if r.NodeID != e.NodeID || r.Seq != e.Seq || p.LeafIndex != e.Leaf || r.Action != e.Action || r.User != e.User || !r.Time.Equal(e.Time) {
		v.problem("%s: %s holds %s #%d (%s by %s at %s, leaf %d) instead: it does not match case.json's listing", label, e.File,
			r.NodeID, r.Seq, r.Action, r.User, r.Time.UTC().Format(time.RFC3339), p.LeafIndex)
		return p, false
	}
	if probs := proofProblems(p, v.pub); len(probs) > 0 {
		for _, pr := range probs {
			v.problem("%s (%s): %s", label, e.File, pr)
		}
		return p, false
	}
	v.checked("%s (%s): leaf %d of the hub's audit log, included in the checkpoint of size %d signed by member %s at %s",
		label, e.File, p.LeafIndex, p.Checkpoint.Size, p.Checkpoint.Member, time.Unix(0, p.Checkpoint.At).UTC().Format(time.RFC3339))
	return p, true
}
