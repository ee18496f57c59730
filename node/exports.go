package node

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/evidence"
)

var exportID = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}-[0-9a-f]{8}$`)

func (n *Node) exportDir() string { return filepath.Join(n.cfg.DataDir, "exports") }

// CreateExport writes the footage as a progressive MP4 and a manifest
// signed with the node's certificate key.
func (b *backend) CreateExport(ctx context.Context, req api.ExportRequest, user string) (api.Export, error) {
	n := b.n
	if _, err := b.camera(req.Camera); err != nil {
		return api.Export{}, err
	}
	if err := os.MkdirAll(n.exportDir(), 0o750); err != nil {
		return api.Export{}, err
	}
	rnd := make([]byte, 4)
	_, _ = rand.Read(rnd)
	now := time.Now().UTC()
	id := now.Format("20060102T150405") + "-" + hex.EncodeToString(rnd)
	file := filepath.Join(n.exportDir(), id+".mp4")
	res, err := n.store.Export(ctx, file, req.Camera, req.From, req.To)
	if err != nil {
		return api.Export{}, exportErr(err)
	}
	m := &evidence.Manifest{Version: evidence.Version, ID: id, Camera: req.Camera, NodeID: n.cfg.NodeID, Kelurahan: n.cfg.Kelurahan,
		From: res.From.UTC(), To: res.To.UTC(), Requested: [2]string{req.From.UTC().Format(time.RFC3339Nano), req.To.UTC().Format(time.RFC3339Nano)},
		File: id + ".mp4", Bytes: res.Bytes, SHA256: res.SHA256, RequestedBy: user, Reason: req.Reason, Created: now}
	for _, s := range res.Segments {
		m.Segments = append(m.Segments, evidence.Segment{File: s.File, Bytes: s.Bytes, SHA256: s.SHA256})
	}
	key, ok := n.bundle.Current().PrivateKey.(crypto.Signer)
	if !ok {
		os.Remove(file)
		return api.Export{}, fmt.Errorf("node key cannot sign")
	}
	var certPEM []byte // the node's certificate and its chain (the city's issuing CA)
	for _, der := range n.bundle.Current().Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if err := evidence.Sign(m, key, certPEM, n.bundle.Identity.URI()); err != nil {
		os.Remove(file)
		return api.Export{}, err
	}
	if err := evidence.Write(filepath.Join(n.exportDir(), id+".manifest.json"), m); err != nil {
		os.Remove(file)
		return api.Export{}, err
	}
	n.log.Info("export created", "id", id, "camera", req.Camera, "bytes", res.Bytes, "by", user, "reason", req.Reason)
	return toAPIExport(m), nil
}

func exportErr(err error) error {
	if strings.Contains(err.Error(), "no recordings") {
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	}
	return err
}

func toAPIExport(m *evidence.Manifest) api.Export {
	return api.Export{ID: m.ID, Camera: m.Camera, From: m.From, To: m.To, Status: "done", Bytes: m.Bytes, SHA256: m.SHA256,
		Reason: m.Reason, RequestedBy: m.RequestedBy, Created: m.Created,
		FileURL: "/api/v1/exports/" + m.ID + "/file.mp4", ManifestURL: "/api/v1/exports/" + m.ID + "/manifest.json", NodeID: m.NodeID}
}

func (b *backend) Exports(ctx context.Context) ([]api.Export, error) {
	entries, err := os.ReadDir(b.n.exportDir())
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []api.Export
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".manifest.json") {
			continue
		}
		m, err := evidence.Load(filepath.Join(b.n.exportDir(), e.Name()))
		if err != nil {
			b.n.log.Warn("unreadable export manifest", "file", e.Name(), "err", err)
			continue
		}
		out = append(out, toAPIExport(m))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

func (b *backend) OpenExport(ctx context.Context, id, part string) (io.ReadSeekCloser, string, time.Time, error) {
	if !exportID.MatchString(id) {
		return nil, "", time.Time{}, fmt.Errorf("%w: no export %q", api.ErrNotFound, id)
	}
	name := id + ".mp4"
	if part == "manifest" {
		name = id + ".manifest.json"
	}
	f, err := os.Open(filepath.Join(b.n.exportDir(), name))
	if err != nil {
		return nil, "", time.Time{}, fmt.Errorf("%w: no export %q on this node", api.ErrNotFound, id)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, "", time.Time{}, err
	}
	return f, name, st.ModTime(), nil
}
