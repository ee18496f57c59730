package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/evidence"
	"github.com/ronda-jakarta/ronda/internal/fsutil"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	"github.com/ronda-jakarta/ronda/replication"
)

// The hub pulls a case item's footage with MakeExport (an export made
// through the node's own export path, audited like one asked for over the
// API) and ReadExport (its bytes from an offset, so a broken pull resumes).

// hubExport is the index entry that makes MakeExport idempotent: the export
// made for one (case, item), written once the export is complete.
type hubExport struct {
	CaseID   string    `json:"case_id"`
	ItemID   string    `json:"item_id"`
	ExportID string    `json:"export_id"`
	Camera   string    `json:"camera"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Created  time.Time `json:"created"`
}

func (n *Node) hubExportDir() string { return filepath.Join(n.exportDir(), "hub") }

// hubExportPath is the index file of a case item (named by a hash: the ids
// come from the hub and are not trusted as file names).
func (n *Node) hubExportPath(caseID, itemID string) string {
	sum := sha256.Sum256([]byte(caseID + "\x00" + itemID))
	return filepath.Join(n.hubExportDir(), hex.EncodeToString(sum[:16])+".json")
}

// keyLocks serialises work per key (one case item's export at a time);
// the zero value is ready.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

func (k *keyLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// hubExportTimeout bounds one export made for the hub.
const hubExportTimeout = 30 * time.Minute

// hubExportLocks: MakeExport runs once at a time per case item, so two
// calls for it (a retry racing the first) make one export.
var hubExportLocks keyLocks

// existingHubExport returns the export made earlier for a case item, if
// its index entry and manifest are intact.
func (n *Node) existingHubExport(req *rondav1.MakeExportRequest) (*evidence.Manifest, error) {
	raw, err := os.ReadFile(n.hubExportPath(req.CaseId, req.ItemId))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var e hubExport
	if err := json.Unmarshal(raw, &e); err != nil || e.CaseID != req.CaseId || e.ItemID != req.ItemId || !exportID.MatchString(e.ExportID) {
		n.log.Warn("unreadable hub export index entry; making the export again", "case", req.CaseId, "item", req.ItemId, "err", err)
		return nil, nil
	}
	from, to := time.Unix(0, req.FromUnixNano).UTC(), time.Unix(0, req.ToUnixNano).UTC()
	if e.Camera != req.CameraId || !e.From.Equal(from) || !e.To.Equal(to) {
		return nil, fmt.Errorf("%w: case %s item %s was exported as camera %s %s..%s (export %s), not camera %s %s..%s",
			api.ErrBadRequest, req.CaseId, req.ItemId, e.Camera, e.From.Format(time.RFC3339), e.To.Format(time.RFC3339), e.ExportID,
			req.CameraId, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	m, err := evidence.Load(filepath.Join(n.exportDir(), e.ExportID+".manifest.json"))
	if err != nil {
		n.log.Warn("the export made for a case item is gone; making it again", "case", req.CaseId, "item", req.ItemId, "export", e.ExportID, "err", err)
		return nil, nil
	}
	if st, err := os.Stat(filepath.Join(n.exportDir(), e.ExportID+".mp4")); err != nil || st.Size() != m.Bytes {
		n.log.Warn("the file of the export made for a case item is gone or changed; making it again", "case", req.CaseId, "item", req.ItemId, "export", e.ExportID)
		return nil, nil
	}
	return m, nil
}

// makeHubExport makes (or finds) the export of a case item.
func (n *Node) makeHubExport(ctx context.Context, req *rondav1.MakeExportRequest) (*rondav1.ExportMeta, error) {
	switch {
	case req.CaseId == "" || req.ItemId == "":
		return nil, fmt.Errorf("%w: MakeExport needs a case_id and an item_id", api.ErrBadRequest)
	case req.CameraId == "":
		return nil, fmt.Errorf("%w: MakeExport needs a camera_id", api.ErrBadRequest)
	case req.ToUnixNano <= req.FromUnixNano:
		return nil, fmt.Errorf("%w: MakeExport needs to_unix_nano after from_unix_nano", api.ErrBadRequest)
	case time.Duration(req.ToUnixNano-req.FromUnixNano) > api.MaxExportRange:
		return nil, fmt.Errorf("%w: an export covers at most %s; split the item", api.ErrBadRequest, api.MaxExportRange)
	case strings.TrimSpace(req.Reason) == "":
		return nil, fmt.Errorf("%w: MakeExport needs a reason (the case's)", api.ErrBadRequest)
	}
	unlock := hubExportLocks.lock(n.cfg.DataDir + "\x00" + req.CaseId + "\x00" + req.ItemId)
	defer unlock()
	m, err := n.existingHubExport(req)
	if err != nil {
		return nil, err
	}
	if m == nil {
		// Cut to the end even if the hub's call breaks off: its retry waits
		// on the lock above and then finds this export in the index.
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hubExportTimeout)
		defer cancel()
		m, err = n.newHubExport(ectx, req)
		if err != nil {
			return nil, err
		}
	}
	manifest, err := os.ReadFile(filepath.Join(n.exportDir(), m.ID+".manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("reading the manifest of export %s: %w", m.ID, err)
	}
	return &rondav1.ExportMeta{ExportId: m.ID, CameraId: m.Camera, FromUnixNano: m.From.UnixNano(), ToUnixNano: m.To.UnixNano(),
		Bytes: m.Bytes, Sha256: m.SHA256, Manifest: manifest}, nil
}

// newHubExport makes the export as the API does, audits it as the API
// does (action "export", outcome api.ExportOutcome, user "hub:<user>"), and
// records it in the index.
func (n *Node) newHubExport(ctx context.Context, req *rondav1.MakeExportRequest) (*evidence.Manifest, error) {
	user := "hub:" + req.User
	from, to := time.Unix(0, req.FromUnixNano).UTC(), time.Unix(0, req.ToUnixNano).UTC()
	e, err := (&backend{n: n}).CreateExport(ctx, api.ExportRequest{Camera: req.CameraId, From: from, To: to, Reason: req.Reason}, user)
	outcome := api.ExportOutcome(e.ID, e.SHA256)
	if err != nil {
		outcome = "error: " + err.Error()
	}
	n.onAudit(api.AuditEvent{Time: time.Now(), User: user, Action: "export", CameraID: req.CameraId, From: from, To: to,
		Remote: remoteOf(ctx), Reason: req.Reason, Outcome: outcome})
	if err != nil {
		return nil, err
	}
	m, err := evidence.Load(filepath.Join(n.exportDir(), e.ID+".manifest.json"))
	if err != nil {
		return nil, err
	}
	raw, _ := json.Marshal(hubExport{CaseID: req.CaseId, ItemID: req.ItemId, ExportID: e.ID, Camera: req.CameraId, From: from, To: to, Created: e.Created})
	if err := os.MkdirAll(n.hubExportDir(), 0o750); err != nil {
		return nil, err
	}
	if err := fsutil.WriteAtomic(n.hubExportPath(req.CaseId, req.ItemId), raw, 0o640); err != nil {
		// The export exists and is audited; a retry would make another one.
		return nil, fmt.Errorf("recording export %s for case %s item %s: %w", e.ID, req.CaseId, req.ItemId, err)
	}
	n.log.Info("export made for the hub", "case", req.CaseId, "item", req.ItemId, "export", e.ID, "bytes", e.Bytes)
	return m, nil
}

func remoteOf(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return "hub " + p.Addr.String()
	}
	return "hub"
}

// MakeExport serves NodeControl.MakeExport.
func (c *control) MakeExport(ctx context.Context, req *rondav1.MakeExportRequest) (*rondav1.ExportMeta, error) {
	m, err := c.n.makeHubExport(ctx, req)
	if err != nil {
		return nil, replication.ToStatus(err)
	}
	return m, nil
}

// ReadExport serves NodeControl.ReadExport: the file (or manifest) from
// req.Offset to its end.
func (c *control) ReadExport(req *rondav1.ReadExportRequest, s grpc.ServerStreamingServer[rondav1.ExportChunk]) error {
	part := req.Part
	switch part {
	case "":
		part = "file"
	case "file", "manifest":
	default:
		return status.Errorf(codes.InvalidArgument, "part %q: ask for \"file\" or \"manifest\"", req.Part)
	}
	f, _, _, err := c.backend().OpenExport(s.Context(), req.ExportId, part)
	if err != nil {
		return replication.ToStatus(err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return replication.ToStatus(err)
	}
	if req.Offset < 0 || req.Offset > size {
		return status.Errorf(codes.InvalidArgument, "offset %d is outside export %s's %s of %d bytes", req.Offset, req.ExportId, part, size)
	}
	chunk := maxChunk
	if req.MaxChunk > 0 && int(req.MaxChunk) < chunk {
		chunk = max(int(req.MaxChunk), 1<<10)
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return status.Errorf(codes.Internal, "export %s cannot be read at an offset", req.ExportId)
	}
	r := io.NewSectionReader(ra, req.Offset, size-req.Offset)
	buf := make([]byte, chunk)
	msg := &rondav1.ExportChunk{}
	off := req.Offset
	for {
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			msg.Offset, msg.Data = off, buf[:k]
			if err := s.Send(msg); err != nil {
				return err
			}
			off += int64(k)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return replication.ToStatus(fmt.Errorf("reading export %s at byte %d: %w", req.ExportId, off, err))
		}
	}
}
