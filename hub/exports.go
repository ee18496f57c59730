package hub

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/hub/store"
	"github.com/ronda-jakarta/ronda/internal/auditchain"
	"github.com/ronda-jakarta/ronda/internal/auditlog"
)

// ExportAtNode is the status of an export the hub knows from its node's
// audit event: the file stays at the node.
const ExportAtNode = "at_node"

// nodeAPI is a node's API URL as it registered it ("" when it gave none).
func (b *backend) nodeAPI(nodeID string) string {
	if n, ok := b.h.store.Node(nodeID); ok {
		return strings.TrimRight(n.GetInfo().GetApiUrl(), "/")
	}
	return ""
}

// Exports lists the exports the nodes made, from their audit events in the
// hub's state (the export index), newest first. The files stay at the
// nodes: FileURL and ManifestURL are the node's API.
func (b *backend) Exports(ctx context.Context) ([]api.Export, error) {
	recs, err := b.h.store.Exports()
	if err != nil {
		return nil, err
	}
	urls := map[string]string{}
	out := make([]api.Export, 0, len(recs))
	for _, rec := range recs {
		if rec.NodeID == store.HubAuditNode {
			continue
		}
		url, ok := urls[rec.NodeID]
		if !ok {
			url = b.nodeAPI(rec.NodeID)
			urls[rec.NodeID] = url
		}
		e := rec.Event.GetEvent()
		x := api.Export{ID: rec.ExportID, NodeID: rec.NodeID, Camera: e.GetCameraId(), Status: ExportAtNode, SHA256: rec.SHA256,
			Reason: e.GetReason(), RequestedBy: e.GetUser(), Created: time.Unix(0, e.GetAtUnixNano()).UTC()}
		if e.GetFromUnixNano() != 0 || e.GetToUnixNano() != 0 {
			x.From, x.To = time.Unix(0, e.GetFromUnixNano()).UTC(), time.Unix(0, e.GetToUnixNano()).UTC()
		}
		if url != "" {
			x.FileURL = url + "/api/v1/exports/" + rec.ExportID + "/file.mp4"
			x.ManifestURL = url + "/api/v1/exports/" + rec.ExportID + "/manifest.json"
		}
		out = append(out, x)
	}
	return out, nil
}

// OpenExport: the hub keeps no export files; it says which node does.
func (b *backend) OpenExport(ctx context.Context, id, part string) (io.ReadSeekCloser, string, time.Time, error) {
	nodes, err := b.h.store.ExportNodes(id)
	if err != nil {
		return nil, "", time.Time{}, err
	}
	if len(nodes) == 0 {
		return nil, "", time.Time{}, fmt.Errorf("%w: no export %q at the hub; exports are kept by the node that made them (GET /api/v1/exports lists them)", api.ErrNotFound, id)
	}
	where := make([]string, 0, len(nodes))
	for _, n := range nodes {
		if url := b.nodeAPI(n); url != "" {
			where = append(where, fmt.Sprintf("node %s (%s/api/v1/exports/%s/)", n, url, id))
		} else {
			where = append(where, "node "+n)
		}
	}
	return nil, "", time.Time{}, fmt.Errorf("%w: export %s is kept by %s, which made it; download it there (the hub does not hold export files yet)",
		api.ErrNotFound, id, strings.Join(where, " and "))
}

// exportNode finds the node of an export when the caller did not name one.
func (b *backend) exportNode(id, nodeID string) (string, error) {
	if nodeID != "" {
		return nodeID, nil
	}
	nodes, err := b.h.store.ExportNodes(id)
	if err != nil {
		return "", err
	}
	switch len(nodes) {
	case 0:
		return "", fmt.Errorf("%w: no export %q in the hub's audit log (its node may not have uploaded its audit events yet: it may be offline); GET /api/v1/exports lists the exports the hub knows", api.ErrNotFound, id)
	case 1:
		return nodes[0], nil
	}
	return "", fmt.Errorf("%w: nodes %s each made an export %q; add ?node=ID", api.ErrBadRequest, strings.Join(nodes, ", "), id)
}

// VerifyExport checks an export's audit event against the hub's signed
// audit log, as `ronda verify --audit-proof` does with the proof of GET
// /api/v1/audit/proof/export (api.ExportVerifier): the event names the
// export and its file's SHA-256, it is the leaf the inclusion proof leads
// from to the newest signed checkpoint's root, and that checkpoint is
// signed with the hub key. The file itself stays at the node (verify it
// there with GET /api/v1/exports/{id}/verify).
func (b *backend) VerifyExport(ctx context.Context, id, nodeID string) (api.ExportVerification, error) {
	nodeID, err := b.exportNode(id, nodeID)
	if err != nil {
		return api.ExportVerification{}, err
	}
	p, err := b.ExportProof(ctx, nodeID, id)
	if err != nil {
		return api.ExportVerification{}, err
	}
	r, cp := p.Record, p.Checkpoint
	_, sha, _ := store.ExportOfOutcome(r.Outcome)
	pub := ed25519.PublicKey(b.h.lists.pub)
	out := api.ExportVerification{Export: id, NodeID: nodeID, Camera: r.CameraID, Method: "audit-log", SHA256: sha, Signer: cp.Member,
		Checked: time.Now().UTC(), Leaf: &p.LeafIndex, CheckpointSize: cp.Size}
	out.Problems = auditlog.VerifyExportProof(p, nodeID, id, r.CameraID, sha, pub)
	out.Verified = len(out.Problems) == 0
	// What held, in words.
	if r.Action == "export" && r.Outcome == api.ExportOutcome(id, sha) {
		out.Checks = append(out.Checks, fmt.Sprintf("audit event %s #%d records export %s of camera %s with file SHA-256 %s, made by %s at %s",
			nodeID, r.Seq, id, r.CameraID, sha, r.User, r.Time.Format(time.RFC3339)))
	}
	if e, err := auditchain.EventOf(r); err == nil {
		leaf := rfc6962.DefaultHasher.HashLeaf(auditchain.LeafData(nodeID, r.Seq, auditchain.Hash(e)))
		if proof.VerifyInclusion(rfc6962.DefaultHasher, p.LeafIndex, cp.Size, leaf, p.Inclusion, cp.Root) == nil {
			out.Checks = append(out.Checks, fmt.Sprintf("audit event %s #%d is leaf %d of the log signed at size %d by %s (an inclusion proof of %d hashes leads to the signed root %x…)",
				nodeID, r.Seq, p.LeafIndex, cp.Size, cp.Member, len(p.Inclusion), cp.Root[:min(8, len(cp.Root))]))
		}
	}
	if auditlog.Valid(cp, pub) {
		out.Checks = append(out.Checks, fmt.Sprintf("the checkpoint at size %d is signed with the hub key %s (by %s at %s)",
			cp.Size, auditlog.KeyFingerprint(pub), cp.Member, time.Unix(0, cp.At).UTC().Format(time.RFC3339)))
	}
	out.Note = fmt.Sprintf("this checks the export's record in the hub's audit log; the file stays at node %s: check it against its signed manifest there (GET /api/v1/exports/%s/verify at the node)", nodeID, id)
	return out, nil
}
