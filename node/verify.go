package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/evidence"
	"github.com/ronda-jakarta/ronda/internal/auditchain"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// AllHolds lists every camera's holds on this node, expired ones included
// (api.HoldLister).
func (b *backend) AllHolds(ctx context.Context) ([]api.Hold, error) {
	hs, err := b.n.store.Holds("")
	if err != nil {
		return nil, err
	}
	out := make([]api.Hold, 0, len(hs))
	now := time.Now()
	for _, h := range hs {
		out = append(out, holdOut(h, now))
	}
	return out, nil
}

// VerifyExport checks a stored export as `ronda verify FILE MANIFEST --ca`
// does: the manifest's signature and signer, its certificate against the
// city CA this node trusts, and the file's size and SHA-256 against the
// manifest (api.ExportVerifier).
func (b *backend) VerifyExport(ctx context.Context, id, nodeID string) (api.ExportVerification, error) {
	n := b.n
	if nodeID != "" && nodeID != n.cfg.NodeID {
		return api.ExportVerification{}, fmt.Errorf("%w: this is node %s; node %s's exports are verified at that node (or their audit record at the hub)", api.ErrNotFound, n.cfg.NodeID, nodeID)
	}
	if !exportID.MatchString(id) {
		return api.ExportVerification{}, fmt.Errorf("%w: no export %q on this node; GET /api/v1/exports lists them", api.ErrNotFound, id)
	}
	out := api.ExportVerification{Export: id, NodeID: n.cfg.NodeID, Method: "manifest", Checked: time.Now().UTC()}
	mpath, file := filepath.Join(n.exportDir(), id+".manifest.json"), filepath.Join(n.exportDir(), id+".mp4")
	m, err := evidence.Load(mpath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if _, ferr := os.Stat(file); ferr != nil {
			return api.ExportVerification{}, fmt.Errorf("%w: no export %q on this node; GET /api/v1/exports lists them", api.ErrNotFound, id)
		}
		out.Problems = []string{"the export's manifest " + filepath.Base(mpath) + " is missing: without it nothing vouches for the file"}
		return out, nil
	case err != nil:
		out.Problems = []string{fmt.Sprintf("the export's manifest does not load: %v", err)}
		return out, nil
	}
	out.Camera, out.SHA256, out.Signer = m.Camera, m.SHA256, m.Signer
	var o evidence.Options
	if n.bundle != nil && n.bundle.Pool != nil {
		o.Roots = n.bundle.Pool
	} else {
		out.Note = "this node has no city CA certificate loaded: the signer's certificate was not checked against it"
	}
	out.Problems = evidence.Verify(m, file, o)
	if m.ID != id || m.NodeID != n.cfg.NodeID {
		out.Problems = append(out.Problems, fmt.Sprintf("the manifest is for export %s of node %s, not export %s of this node %s", m.ID, m.NodeID, id, n.cfg.NodeID))
	}
	out.Verified = len(out.Problems) == 0

	// What held, in words (evidence.Verify's problems say what did not).
	has := func(pred func(string) bool) bool {
		for _, p := range out.Problems {
			if pred(p) {
				return true
			}
		}
		return false
	}
	caProblem := func(p string) bool { return strings.Contains(p, "not issued by the given CA") }
	sigProblem := func(p string) bool { return strings.HasPrefix(p, "manifest:") && !caProblem(p) }
	fileProblem := func(p string) bool { return strings.HasPrefix(p, "file ") }
	if !has(fileProblem) {
		out.Checks = append(out.Checks, fmt.Sprintf("file SHA-256 matches the manifest: %s, %d bytes", m.SHA256, m.Bytes))
	}
	if !has(sigProblem) {
		out.Checks = append(out.Checks, fmt.Sprintf("manifest signed by %s: the signature matches its contents", m.Signer))
		if o.Roots != nil && !has(caProblem) {
			out.Checks = append(out.Checks, "the signing certificate was issued by the city CA this node trusts")
		}
	}
	if m.ID == id && m.NodeID == n.cfg.NodeID {
		out.Checks = append(out.Checks, fmt.Sprintf("the manifest names export %s of camera %s at node %s, %s to %s, requested by %s: %q",
			m.ID, m.Camera, m.NodeID, m.From.Format(time.RFC3339), m.To.Format(time.RFC3339), m.RequestedBy, m.Reason))
	}
	return out, nil
}

// VerifyAudit checks the node's own audit log: one hash chain, events 1, 2,
// 3, ... each naming its predecessor's hash (api.AuditVerifier).
func (b *backend) VerifyAudit(ctx context.Context) (any, error) {
	start := time.Now()
	rep, err := auditchain.VerifyChain(ctx, b.n.outbox.AuditEvents)
	if err != nil {
		return nil, fmt.Errorf("verifying node %s's audit log: %w", b.n.cfg.NodeID, err)
	}
	out := api.NodeAuditVerification{OK: len(rep.Problems) == 0, NodeID: b.n.cfg.NodeID, Events: rep.Events, HeadSeq: rep.HeadSeq,
		Findings: []api.AuditChainFinding{}, TookMS: time.Since(start).Milliseconds(), Checked: start.UTC(),
		Note: "the chain shows events changed or removed before the newest one; the hub's copy of this node's log vouches for the newest (GET /api/v1/audit/verify at a hub member)"}
	if rep.HeadHash != nil {
		out.HeadHash = hex.EncodeToString(rep.HeadHash)
	}
	for _, p := range rep.Problems {
		out.Findings = append(out.Findings, api.AuditChainFinding{NodeID: b.n.cfg.NodeID, Seq: p.Seq, Problem: p.Problem})
	}
	return out, nil
}

// auditPage is how many events AuditNewest reads at a time.
const auditPage = 1000

// AuditNewest lists the node's audit log newest first (by audit seq) with
// the query's filters (api.AuditSearcher). Before is an audit seq.
func (b *backend) AuditNewest(ctx context.Context, q api.AuditQuery) (api.AuditPage, error) {
	if q.NodeID != "" && q.NodeID != b.n.cfg.NodeID {
		return api.AuditPage{}, fmt.Errorf("%w: this is node %s; ask the hub for node %s's audit log", api.ErrNotFound, b.n.cfg.NodeID, q.NodeID)
	}
	q = q.Bounded()
	hi := q.Before // events below it
	if hi == 0 {
		last, err := b.lastAuditSeq()
		if err != nil {
			return api.AuditPage{}, err
		}
		hi = last + 1
	}
	var page api.AuditPage
	next := hi
	done := false
	for next > 1 && page.Scanned < q.MaxScan && !done {
		if err := ctx.Err(); err != nil {
			return api.AuditPage{}, err
		}
		lo := uint64(1) // read [lo, next)
		if step := min(uint64(auditPage), uint64(q.MaxScan-page.Scanned)); next > step+1 {
			lo = next - step
		}
		evs, err := b.n.outbox.AuditEvents(lo-1, int(next-lo))
		if err != nil {
			return api.AuditPage{}, err
		}
		cursor := lo
		for i := len(evs) - 1; i >= 0; i-- {
			e := evs[i]
			if e.GetAuditSeq() >= next || e.GetAuditSeq() < lo {
				continue
			}
			page.Scanned++
			if q.Match(b.n.cfg.NodeID, e.GetUser(), e.GetAction(), e.GetCameraId(), e.GetOutcome()) {
				page.Events = append(page.Events, auditchain.Record(b.n.cfg.NodeID, e))
				if len(page.Events) >= q.Limit {
					cursor, done = e.GetAuditSeq(), true
					break
				}
			}
		}
		next = cursor
	}
	if next > 1 {
		page.NextBefore = &next
	}
	return page, nil
}

// lastAuditSeq finds the newest event's audit seq in the node's audit log
// (0: none) by searching for the largest seq with an event, since the
// outbox reads forward only.
func (b *backend) lastAuditSeq() (uint64, error) {
	after := func(a uint64) (*rondav1.AuditEvent, error) {
		evs, err := b.n.outbox.AuditEvents(a, 1)
		if err != nil || len(evs) == 0 {
			return nil, err
		}
		return evs[0], nil
	}
	first, err := after(0)
	if err != nil || first == nil {
		return 0, err
	}
	// Invariant: an event numbered lo or more exists; none is above hi.
	lo, hi := first.GetAuditSeq(), first.GetAuditSeq()
	for step := uint64(1024); ; step *= 2 {
		e, err := after(hi)
		if err != nil {
			return 0, err
		}
		if e == nil {
			break
		}
		lo, hi = e.GetAuditSeq(), e.GetAuditSeq()+step
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, err := after(mid)
		if err != nil {
			return 0, err
		}
		if e != nil {
			lo = e.GetAuditSeq()
		} else {
			hi = mid
		}
	}
	return lo, nil
}
