package bundle

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ronda-jakarta/ronda/internal/auditchain"
	"github.com/ronda-jakarta/ronda/internal/auditlog"
)

// proofProblems checks one audit record's proof the way
// auditlog.VerifyExportProof does: the record's content hashes to the leaf
// (RFC 6962 leaf hash of auditchain.LeafData), the inclusion proof leads
// from that leaf to the checkpoint's root, and the checkpoint is signed
// with pub. It returns what does not hold.
func proofProblems(p AuditProof, pub ed25519.PublicKey) []string {
	var problems []string
	r := p.Record
	e, err := auditchain.EventOf(r)
	if err != nil {
		return []string{err.Error()}
	}
	chainHash := auditchain.Hash(e)
	if r.Hash != "" && r.Hash != hex.EncodeToString(chainHash) {
		problems = append(problems, fmt.Sprintf("the record's content hashes to %x, not to its stated hash %s: a field was changed",
			chainHash[:8], short(r.Hash)))
	}
	if r.Leaf != nil && *r.Leaf != p.LeafIndex {
		problems = append(problems, fmt.Sprintf("the record says it is leaf %d, the proof is for leaf %d", *r.Leaf, p.LeafIndex))
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(auditchain.LeafData(r.NodeID, r.Seq, chainHash))
	root := p.Checkpoint.Root
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.LeafIndex, p.Checkpoint.Size, leaf, p.Inclusion, root); err != nil {
		problems = append(problems, fmt.Sprintf("the record is not leaf %d of the log whose signed root at size %d is %x: %v (the record or its proof was altered)",
			p.LeafIndex, p.Checkpoint.Size, root[:min(8, len(root))], err))
	}
	if !auditlog.Valid(p.Checkpoint, pub) {
		problems = append(problems, fmt.Sprintf("the checkpoint at size %d is not signed by the hub key %s", p.Checkpoint.Size, KeyFingerprint(pub)))
	}
	return problems
}

func short(s string) string { return s[:min(16, len(s))] }
