// Package bundle makes and checks an evidence case bundle: one zip per
// case that a police officer or a court can check offline. It holds each
// item's export (the MP4 and its node-signed manifest, byte for byte as the
// node made them), the audit records of the case (each with its inclusion
// proof in the hub's audit Merkle log and a checkpoint signed by the hub),
// the city CA certificate, a page in Bahasa Indonesia and English, and
// case.json — the listing of all of it — signed by the hub in case.sig.
// DESIGN.md is the format.
package bundle

import (
	"archive/zip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/evidence"
)

// Version of the bundle format (case.json's "version").
const Version = 1

// SignPurpose is the auth.Sign purpose of case.sig: the signature is
// Ed25519 over "ronda/" + SignPurpose + NUL + the bytes of case.json.
const SignPurpose = "ronda case bundle v1"

// Names of the bundle's fixed files.
const (
	CaseFile  = "case.json"
	SigFile   = "case.sig"
	IndexFile = "index.html"
	CAFile    = "certs/ca.pem"
)

// Item is one item of the case as the hub has it stored: the case item, the
// export that holds its footage (the MP4, opened when it is written, and
// the node-signed manifest's bytes).
type Item struct {
	Item     api.CaseItem
	ExportID string                        // the node's export id ("": the manifest's)
	Open     func() (io.ReadCloser, error) // the MP4
	Size     int64                         // its bytes
	SHA256   string                        // its SHA-256, hex (as stored and as the manifest says)
	Manifest []byte                        // the node-signed manifest, byte for byte
}

// AuditProof is one audit record with the proof that it is in the hub's
// audit Merkle log: the record, its leaf, a signed checkpoint of the log
// that includes it and the RFC 6962 inclusion proof (api.ExportProof,
// generalised to any record). It is also the content of audit/<n>.json.
type AuditProof struct {
	Record     api.AuditRecord     `json:"record"`
	LeafIndex  uint64              `json:"leaf_index"`
	Checkpoint api.AuditCheckpoint `json:"checkpoint"`
	Inclusion  [][]byte            `json:"inclusion"`
}

// Input is what Write makes a bundle of.
type Input struct {
	Case        api.Case
	Items       []Item
	Audit       []AuditProof // who created the case, each pull, each earlier download...
	CA          []byte       // the city CA certificate (PEM)
	Key         ed25519.PrivateKey
	GeneratedBy string
	Now         time.Time
}

// Listing is case.json.
type Listing struct {
	Version     int          `json:"version"`
	Case        CaseInfo     `json:"case"`
	Items       []ItemEntry  `json:"items"`
	Audit       []AuditEntry `json:"audit"`
	Files       []FileEntry  `json:"files"` // the other listed files: index.html, certs/ca.pem
	HubKey      string       `json:"hub_key"`
	Generated   time.Time    `json:"generated"`
	GeneratedBy string       `json:"generated_by"`
}

// CaseInfo is the case in case.json.
type CaseInfo struct {
	ID       string     `json:"id"`
	Reason   string     `json:"reason"`
	Owner    string     `json:"owner"`
	Created  time.Time  `json:"created"`
	Deadline time.Time  `json:"deadline"`
	Status   string     `json:"status"`
	Closed   *time.Time `json:"closed,omitempty"`
	Report   string     `json:"report,omitempty"`
}

// ItemEntry is an item in case.json.
type ItemEntry struct {
	ID       string    `json:"id"`
	Camera   string    `json:"camera"`
	NodeID   string    `json:"node_id"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	ExportID string    `json:"export_id"`
	File     string    `json:"file"`
	SHA256   string    `json:"sha256"`
	Bytes    int64     `json:"bytes"`
	Manifest string    `json:"manifest"`
}

// AuditEntry is an audit record in case.json.
type AuditEntry struct {
	File   string    `json:"file"`
	NodeID string    `json:"node_id"`
	Seq    uint64    `json:"seq"`
	Leaf   uint64    `json:"leaf"`
	Action string    `json:"action"`
	User   string    `json:"user"`
	Time   time.Time `json:"time"`
}

// FileEntry is another file in case.json, by its digest.
type FileEntry struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// KeyFingerprint is how people compare a hub key: the first 8 bytes of its
// SHA-256, in hex (as auditlog.KeyFingerprint).
func KeyFingerprint(pub []byte) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// Write streams the bundle of in to w as a zip. MP4s are stored (not
// compressed) and copied from Item.Open, hashed on the way; an MP4 whose
// SHA-256 or size is not its item's is refused with an error naming the
// item. On an error, what was written is not a bundle: discard it.
func Write(w io.Writer, in Input) error {
	if len(in.Key) != ed25519.PrivateKeySize {
		return errors.New("bundle: no hub signing key")
	}
	if in.Case.ID == "" {
		return errors.New("bundle: the case has no id")
	}
	if blk, _ := pem.Decode(in.CA); blk == nil || blk.Type != "CERTIFICATE" {
		return errors.New("bundle: the city CA certificate (PEM) is required: the node manifests' signatures chain to it")
	}
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	l := Listing{Version: Version, Case: caseInfo(in.Case), Items: []ItemEntry{}, Audit: []AuditEntry{},
		HubKey:    base64.StdEncoding.EncodeToString(in.Key.Public().(ed25519.PublicKey)),
		Generated: now, GeneratedBy: in.GeneratedBy}

	names := map[string]string{} // file -> the item that has it
	for _, it := range in.Items {
		e, err := itemEntry(it)
		if err != nil {
			return err
		}
		if other, dup := names[e.File]; dup {
			return fmt.Errorf("bundle: items %s and %s would both be %s", other, it.Item.ID, e.File)
		}
		names[e.File] = it.Item.ID
		l.Items = append(l.Items, e)
	}
	pub := in.Key.Public().(ed25519.PublicKey)
	for n, p := range in.Audit {
		e := AuditEntry{File: fmt.Sprintf("audit/%d.json", n+1), NodeID: p.Record.NodeID, Seq: p.Record.Seq, Leaf: p.LeafIndex,
			Action: p.Record.Action, User: p.Record.User, Time: p.Record.Time}
		if probs := proofProblems(p, pub); len(probs) > 0 {
			return fmt.Errorf("bundle: %s: %s", auditLabel(e), strings.Join(probs, "; "))
		}
		l.Audit = append(l.Audit, e)
	}

	page, err := renderPage(l, in.Audit)
	if err != nil {
		return err
	}
	l.Files = []FileEntry{fileEntry(IndexFile, page), fileEntry(CAFile, in.CA)}
	caseJSON, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	caseJSON = append(caseJSON, '\n')
	sig := base64.StdEncoding.EncodeToString(auth.Sign(in.Key, SignPurpose, caseJSON)) + "\n"

	zw := zip.NewWriter(w)
	put := func(name string, data []byte) error {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: now})
		if err != nil {
			return err
		}
		_, err = f.Write(data)
		return err
	}
	if err := put(IndexFile, page); err != nil {
		return err
	}
	if err := put(CaseFile, caseJSON); err != nil {
		return err
	}
	if err := put(SigFile, []byte(sig)); err != nil {
		return err
	}
	if err := put(CAFile, in.CA); err != nil {
		return err
	}
	for n, p := range in.Audit {
		b, err := json.MarshalIndent(p, "", "  ")
		if err != nil {
			return err
		}
		if err := put(l.Audit[n].File, append(b, '\n')); err != nil {
			return err
		}
	}
	for n, it := range in.Items {
		e := l.Items[n]
		if err := put(e.Manifest, it.Manifest); err != nil {
			return err
		}
		if err := copyMP4(zw, e, it, now); err != nil {
			return err
		}
	}
	return zw.Close()
}

// copyMP4 stores an item's MP4, checking its size and SHA-256 on the way.
func copyMP4(zw *zip.Writer, e ItemEntry, it Item, now time.Time) error {
	f, err := zw.CreateHeader(&zip.FileHeader{Name: e.File, Method: zip.Store, Modified: now})
	if err != nil {
		return err
	}
	rc, err := it.Open()
	if err != nil {
		return fmt.Errorf("bundle: item %s (camera %s): opening export %s: %w", e.ID, e.Camera, e.ExportID, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rc, e.Bytes+1))
	if err != nil {
		return fmt.Errorf("bundle: item %s (camera %s): copying export %s: %w", e.ID, e.Camera, e.ExportID, err)
	}
	if n != e.Bytes {
		got := fmt.Sprint(n)
		if n > e.Bytes {
			got = fmt.Sprintf("more than %d", e.Bytes)
		}
		return fmt.Errorf("bundle: item %s (camera %s): export %s has %s bytes, not the %d stored: refusing to bundle it",
			e.ID, e.Camera, e.ExportID, got, e.Bytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 {
		return fmt.Errorf("bundle: item %s (camera %s): export %s has SHA-256 %s, not the stored %s: the stored copy was altered; refusing to bundle it",
			e.ID, e.Camera, e.ExportID, got, e.SHA256)
	}
	return nil
}

func caseInfo(c api.Case) CaseInfo {
	return CaseInfo{ID: c.ID, Reason: c.Reason, Owner: c.Owner, Created: c.Created.UTC(), Deadline: c.Deadline.UTC(),
		Status: c.Status, Closed: c.Closed, Report: c.Report}
}

// itemEntry lists an item, refusing one whose manifest is not of its export.
func itemEntry(it Item) (ItemEntry, error) {
	ci := it.Item
	fail := func(format string, a ...any) (ItemEntry, error) {
		return ItemEntry{}, fmt.Errorf("bundle: item %s (camera %s): %s", ci.ID, ci.Camera, fmt.Sprintf(format, a...))
	}
	if ci.ID == "" {
		return fail("no item id")
	}
	if it.Open == nil {
		return fail("no export file to open")
	}
	if it.Size < 0 {
		return fail("size %d", it.Size)
	}
	if len(it.SHA256) != 64 || strings.ToLower(it.SHA256) != it.SHA256 {
		return fail("SHA-256 %q is not 64 lowercase hex digits", it.SHA256)
	}
	if _, err := hex.DecodeString(it.SHA256); err != nil {
		return fail("SHA-256 %q is not hex", it.SHA256)
	}
	var m evidence.Manifest
	if err := json.Unmarshal(it.Manifest, &m); err != nil || m.Version != evidence.Version {
		return fail("the manifest is not a version %d export manifest (%v)", evidence.Version, err)
	}
	exportID := it.ExportID
	if exportID == "" {
		exportID = m.ID
	}
	switch {
	case m.ID != exportID || m.NodeID != ci.NodeID || m.Camera != ci.Camera:
		return fail("the manifest is of export %s of node %s, camera %s, not export %s of node %s", m.ID, m.NodeID, m.Camera, exportID, ci.NodeID)
	case m.SHA256 != it.SHA256 || m.Bytes != it.Size:
		return fail("the manifest says %d bytes with SHA-256 %s; the stored export is %d bytes with SHA-256 %s", m.Bytes, m.SHA256, it.Size, it.SHA256)
	}
	base := safeName(ci.ID) + "-" + safeName(ci.Camera)
	return ItemEntry{ID: ci.ID, Camera: ci.Camera, NodeID: ci.NodeID, From: ci.From.UTC(), To: ci.To.UTC(), ExportID: exportID,
		File: "media/" + base + ".mp4", SHA256: it.SHA256, Bytes: it.Size, Manifest: "media/" + base + ".manifest.json"}, nil
}

func fileEntry(name string, data []byte) FileEntry {
	sum := sha256.Sum256(data)
	return FileEntry{File: name, SHA256: hex.EncodeToString(sum[:]), Bytes: int64(len(data))}
}

// safeName keeps a name to [A-Za-z0-9._-] (others become '_'), so it is one
// harmless path element on every system.
func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := strings.TrimLeft(b.String(), ".")
	if out == "" {
		return "_"
	}
	return out
}

// auditLabel names an audit record as problems do.
func auditLabel(e AuditEntry) string {
	return fmt.Sprintf("audit record %s #%d (%s by %s, leaf %d)", e.NodeID, e.Seq, e.Action, e.User, e.Leaf)
}
