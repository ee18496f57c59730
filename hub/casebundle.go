package hub

// A case's bundle (internal/bundle): the pulled MP4s and their node-signed
// manifests from the evidence store, the audit records of the case (its
// creation, pulls, earlier downloads, closing) and of the nodes' exports,
// each with its inclusion proof to a checkpoint the hub signed, the city
// CA, and the hub's signature over the listing.

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/internal/auditchain"
	"github.com/ronda-jakarta/ronda/internal/bundle"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// bundleWaitForCheckpoint: how long a download waits for the newest of the
// case's audit records to be covered by a signed checkpoint.
const bundleWaitForCheckpoint = 15 * time.Second

// maxCaseAuditScan bounds the hub audit records read for one bundle.
const maxCaseAuditScan = 200_000

type auditRef struct {
	leaf uint64
	node string
	ev   *rondav1.StoredAuditEvent
}

// caseAudit finds the case's audit records: the hub's (case-create,
// case-pull, case-close, case-download, case-release naming the case) and
// each item's export event at its node.
func (h *Hub) caseAudit(sc *rondav1.StoredCase) ([]auditRef, error) {
	var refs []auditRef
	created := time.Unix(0, sc.GetCreatedUnixNano()).Add(-time.Minute)
	_, _, _, err := h.store.AuditNewest("hub", 0, maxCaseAuditScan, func(leaf uint64, e *rondav1.StoredAuditEvent) bool {
		ev := e.GetEvent()
		if time.Unix(0, ev.GetAtUnixNano()).Before(created) {
			return true // older than the case: done
		}
		a := ev.GetAction()
		if strings.HasPrefix(a, "case-") && strings.HasSuffix(a, " "+sc.GetId()) || sc.GetReport() != nil && a == "report "+sc.GetReport().GetId() {
			refs = append(refs, auditRef{leaf: leaf, node: "hub", ev: e})
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	for _, it := range sc.GetItems() {
		if id := it.GetPull().GetExportId(); id != "" {
			ev, leaf, err := h.store.ExportEvent(it.GetNodeId(), id)
			if err != nil {
				return nil, fmt.Errorf("%w: the export %s of item %s (%s) is not in the hub's audit log yet: %v; try again shortly", api.ErrUnavailable, id, it.GetId(), it.GetCameraId(), err)
			}
			refs = append(refs, auditRef{leaf: leaf, node: it.GetNodeId(), ev: ev})
		}
	}
	return refs, nil
}

// Bundle writes a case's bundle (api.CaseAdmin).
func (b *backend) Bundle(ctx context.Context, id, user string, w api.BundleWriter) error {
	h := b.h
	sc, err := h.store.Case(id)
	if err != nil {
		return caseErr(err)
	}
	var missing []string
	for _, it := range sc.GetItems() {
		if it.GetPull().GetState() != api.PullStored || it.GetPull().GetManifestSha256() == "" {
			missing = append(missing, it.GetId()+" ("+it.GetCameraId()+")")
		}
	}
	if len(sc.GetItems()) == 0 {
		return fmt.Errorf("%w: case %s holds no footage to bundle", api.ErrBadRequest, id)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: case %s: %d of %d items are not at the hub yet (%s); pull them first (POST /api/v1/cases/%s/pull) and wait until they are stored",
			api.ErrConflict, id, len(missing), len(sc.GetItems()), strings.Join(missing, ", "), id)
	}
	refs, err := h.caseAudit(sc)
	if err != nil {
		return err
	}
	// Every record needs a signed checkpoint covering it.
	newest := uint64(0)
	for _, r := range refs {
		newest = max(newest, r.leaf)
	}
	var cp *rondav1.AuditCheckpoint
	deadline := time.Now().Add(bundleWaitForCheckpoint)
	for {
		if cps := h.store.AuditCheckpoints(); len(cps) > 0 && cps[len(cps)-1].GetSize() > newest {
			cp = cps[len(cps)-1]
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: the case's newest audit record (leaf %d) is not covered by a signed checkpoint yet; try again in a few seconds", api.ErrUnavailable, newest)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	in := bundle.Input{Case: b.caseOut(sc), Key: h.lists.key, GeneratedBy: user, Now: time.Now()}
	if in.CA, err = os.ReadFile(h.cfg.TLS.CA); err != nil {
		return fmt.Errorf("bundle: the city CA certificate: %w", err)
	}
	ckp := api.AuditCheckpoint{Size: cp.GetSize(), Root: cp.GetRoot(), At: cp.GetAtUnixNano(), Member: cp.GetMember(), Signature: cp.GetSignature()}
	for _, r := range refs {
		incl, err := h.store.AuditProof(r.leaf, cp.GetSize(), false)
		if err != nil {
			return fmt.Errorf("bundle: inclusion proof of leaf %d: %w", r.leaf, err)
		}
		in.Audit = append(in.Audit, bundle.AuditProof{Record: auditchain.Record(r.node, r.ev.GetEvent()), LeafIndex: r.leaf, Checkpoint: ckp, Inclusion: incl})
	}
	for i, it := range sc.GetItems() {
		p := it.GetPull()
		mf, _, err := h.openEvidence(ctx, p.GetManifestSha256())
		if err != nil {
			return fmt.Errorf("bundle: the manifest of item %s: %w", it.GetId(), err)
		}
		manifest, err := io.ReadAll(io.LimitReader(mf, 1<<20))
		mf.Close()
		if err != nil {
			return fmt.Errorf("bundle: the manifest of item %s: %w", it.GetId(), err)
		}
		sha := p.GetSha256()
		size, err := h.evidence.Size(sha)
		if err != nil { // not here: a holder streams it
			blob, berr := h.store.Blob(sha)
			if berr != nil || len(blob.GetHolders()) == 0 {
				return fmt.Errorf("%w: the footage of item %s (%s) is on no hub member: %v", api.ErrUnavailable, it.GetId(), sha, berr)
			}
			size = blob.GetSize()
		}
		in.Items = append(in.Items, bundle.Item{Item: in.Case.Items[i], ExportID: p.GetExportId(), Size: size, SHA256: sha, Manifest: manifest,
			Open: func() (io.ReadCloser, error) {
				f, _, err := h.openEvidence(ctx, sha)
				return f, err
			}})
	}
	w.SetName(id + ".zip")
	if err := bundle.Write(w, in); err != nil {
		return err
	}
	b.CaseViewed(ctx, id, user)
	return nil
}

// openEvidence opens a blob from this member's evidence store or, when
// this member holds no copy, streams it from a member that does (the
// bundle's writer checks every byte against the SHA-256 it expects).
func (h *Hub) openEvidence(ctx context.Context, sha string) (io.ReadCloser, int64, error) {
	if f, size, err := h.evidence.Open(sha); err == nil {
		return f, size, nil
	}
	blob, err := h.store.Blob(sha)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: evidence blob %s is not known to member %s: %v", api.ErrUnavailable, sha, h.cfg.MemberID, err)
	}
	var errs []string
	for _, m := range blob.GetHolders() {
		if m == h.cfg.MemberID {
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		s, err := h.forwarder.FetchBlob(sctx, m, sha, 0)
		if err != nil {
			cancel()
			errs = append(errs, err.Error())
			continue
		}
		return &blobStream{s: s, cancel: cancel}, blob.GetSize(), nil
	}
	return nil, 0, fmt.Errorf("%w: no member holding evidence blob %s (%v) answers: %s", api.ErrUnavailable, sha, blob.GetHolders(), strings.Join(errs, "; "))
}

// blobStream reads a FetchBlob stream as an io.ReadCloser.
type blobStream struct {
	s interface {
		Recv() (*rondav1.BlobChunk, error)
	}
	cancel context.CancelFunc
	buf    []byte
}

func (b *blobStream) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		c, err := b.s.Recv()
		if err != nil {
			return 0, err // io.EOF at the end
		}
		b.buf = c.GetData()
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

func (b *blobStream) Close() error { b.cancel(); return nil }
