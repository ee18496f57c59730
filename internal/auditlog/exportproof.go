package auditlog

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/internal/auditchain"
)

// KeyFingerprint is how people compare a hub key: the first 8 bytes of its
// SHA-256, in hex.
func KeyFingerprint(pub []byte) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// VerifyExportProof checks that p ties export exportID of node nodeID, whose
// file has SHA-256 fileSHA256 (from its signed manifest), of camera, to the
// hub's audit log: the event names the export and the file hash, the event
// is the leaf the proof includes, the inclusion proof leads to the signed
// checkpoint's root, and the checkpoint is signed with pub. It returns what
// does not match (nothing: verified).
func VerifyExportProof(p api.ExportProof, nodeID, exportID, camera, fileSHA256 string, pub ed25519.PublicKey) []string {
	var problems []string
	r := p.Record
	if p.NodeID != nodeID || r.NodeID != nodeID || p.ExportID != exportID {
		problems = append(problems, fmt.Sprintf("the proof is for export %s of node %s, not export %s of node %s", p.ExportID, r.NodeID, exportID, nodeID))
	}
	if want := api.ExportOutcome(exportID, fileSHA256); r.Action != "export" || r.Outcome != want || r.CameraID != camera {
		problems = append(problems, fmt.Sprintf("the audit event (%s #%d: %q camera %q %q) does not record this export of camera %s with file SHA-256 %s",
			r.NodeID, r.Seq, r.Action, r.CameraID, r.Outcome, camera, fileSHA256))
	}
	e, err := auditchain.EventOf(r)
	if err != nil {
		return append(problems, err.Error())
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(auditchain.LeafData(r.NodeID, r.Seq, auditchain.Hash(e)))
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.LeafIndex, p.Checkpoint.Size, leaf, p.Inclusion, p.Checkpoint.Root); err != nil {
		problems = append(problems, fmt.Sprintf("the audit event is not leaf %d of the log whose signed root at size %d is %x: %v (the event or the proof was altered)",
			p.LeafIndex, p.Checkpoint.Size, p.Checkpoint.Root[:min(8, len(p.Checkpoint.Root))], err))
	}
	if !Valid(p.Checkpoint, pub) {
		problems = append(problems, fmt.Sprintf("the checkpoint at size %d is not signed by the hub key %s", p.Checkpoint.Size, KeyFingerprint(pub)))
	}
	return problems
}
