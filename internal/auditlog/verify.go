// Package auditlog verifies the hub's audit Merkle log (RFC 6962) from the
// outside: the signed checkpoints, every record against the leaf the log
// committed to, each node's hash chain, the tree's roots at every
// checkpoint, and consistency and inclusion proofs served by a member.
// Whatever does not match is named: which leaf, which node's audit event,
// what is wrong. `ronda audit verify` runs it against a hub member.
package auditlog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/internal/auditchain"
)

// SignPurpose is the auth.Sign purpose of checkpoints.
const SignPurpose = "audit-checkpoint"

// Checkpoint is a signed (size, root) of the log (as the API lists it).
type Checkpoint = api.AuditCheckpoint

// Leaf is one leaf as a member serves it (api.AuditLeaf).
type Leaf = api.AuditLeaf

// Valid reports whether a checkpoint's signature is the hub key's.
func Valid(c Checkpoint, pub ed25519.PublicKey) bool {
	return auth.VerifySignature(pub, SignPurpose, auditchain.CheckpointText(c.Size, c.Root, c.At), c.Signature)
}

// Source is a hub member's log.
type Source interface {
	Checkpoints(ctx context.Context) ([]Checkpoint, error)
	Leaves(ctx context.Context, start uint64, count int) ([]Leaf, error)
	// Proof: inclusion of leaf index in the tree of size (consistency
	// false), or consistency between sizes index and size.
	Proof(ctx context.Context, index, size uint64, consistency bool) ([][]byte, error)
}

// Finding is something that does not match.
type Finding struct {
	Leaf    int64  `json:"leaf"` // -1: not one leaf
	NodeID  string `json:"node_id,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	Problem string `json:"problem"`
}

func (f Finding) String() string {
	if f.Leaf < 0 {
		return f.Problem
	}
	return fmt.Sprintf("leaf %d (%s audit event #%d): %s", f.Leaf, f.NodeID, f.Seq, f.Problem)
}

// Report is the outcome of a verification.
type Report struct {
	Leaves      uint64     `json:"leaves"`
	Checkpoints int        `json:"checkpoints"`
	Newest      Checkpoint `json:"newest"`
	Nodes       int        `json:"chains"`
	Inclusion   int        `json:"inclusion_proofs_checked"`
	Consistency int        `json:"consistency_proofs_checked"`
	Unsigned    uint64     `json:"leaves_after_newest_checkpoint"`
	Findings    []Finding  `json:"findings"`
}

// OK reports whether nothing was found.
func (r Report) OK() bool { return len(r.Findings) == 0 }

// MaxConsistencyProofs bounds the consistency proofs requested between
// consecutive checkpoints (the newest ones).
const MaxConsistencyProofs = 32

// PageSize is how many leaves are read per request.
const PageSize = 5000

// Verify checks the whole log. pinned, when set, is a checkpoint verified
// before (kept by the caller): the log must still extend it.
func Verify(ctx context.Context, src Source, pub ed25519.PublicKey, pinned *Checkpoint) (Report, error) {
	var rep Report
	add := func(leaf int64, node string, seq uint64, format string, args ...any) {
		rep.Findings = append(rep.Findings, Finding{Leaf: leaf, NodeID: node, Seq: seq, Problem: fmt.Sprintf(format, args...)})
	}
	h := rfc6962.DefaultHasher

	cps, err := src.Checkpoints(ctx)
	if err != nil {
		return rep, err
	}
	slices.SortFunc(cps, func(a, b Checkpoint) int { return cmpU64(a.Size, b.Size) })
	var good []Checkpoint
	for _, c := range cps {
		if !Valid(c, pub) {
			add(-1, "", 0, "checkpoint at size %d (by %s at %s): the signature does not verify with the hub's key: it was forged or altered",
				c.Size, c.Member, time.Unix(0, c.At).UTC().Format(time.RFC3339))
			continue
		}
		good = append(good, c)
	}
	rep.Checkpoints = len(good)

	var leaves []Leaf
	for start := uint64(0); ; start += PageSize {
		page, err := src.Leaves(ctx, start, PageSize)
		if err != nil {
			return rep, err
		}
		leaves = append(leaves, page...)
		if len(page) < PageSize {
			break
		}
	}
	rep.Leaves = uint64(len(leaves))

	// Every record against the leaf the log committed to.
	hashes := make([][]byte, len(leaves))
	named := map[uint64]bool{}
	type chainEntry struct {
		index uint64
		rec   *api.AuditRecord
		hash  []byte
	}
	chains := map[string][]chainEntry{}
	for i, l := range leaves {
		if l.Index != uint64(i) {
			add(int64(i), "", 0, "the member serves leaf %d in its place: leaves were removed or reordered", l.Index)
			return rep, nil
		}
		hashes[i] = l.LeafHash
		if l.Record == nil {
			add(int64(i), l.NodeID, l.Seq, "the audit record is missing from the member's store (deleted)")
			named[l.Index] = true
			continue
		}
		e, err := auditchain.EventOf(*l.Record)
		if err != nil {
			add(int64(i), l.NodeID, l.Seq, "unreadable record: %v", err)
			named[l.Index] = true
			continue
		}
		ch := auditchain.Hash(e)
		lh := h.HashLeaf(auditchain.LeafData(l.NodeID, l.Seq, ch))
		hashes[i] = lh
		if l.Record.NodeID != l.NodeID || l.Record.Seq != l.Seq || !bytes.Equal(lh, l.LeafHash) {
			add(int64(i), l.NodeID, l.Seq, "the record was rewritten: it now reads %s %q %q camera %q outcome %q, which is not what the log committed to",
				l.Record.Time.Format(time.RFC3339), l.Record.User, l.Record.Action, l.Record.CameraID, l.Record.Outcome)
			named[l.Index] = true
		}
		chains[l.NodeID] = append(chains[l.NodeID], chainEntry{index: l.Index, rec: l.Record, hash: ch})
	}

	// Each node's chain: 1, 2, 3... each naming its predecessor's hash.
	rep.Nodes = len(chains)
	for node, entries := range chains {
		slices.SortFunc(entries, func(a, b chainEntry) int { return cmpU64(a.rec.Seq, b.rec.Seq) })
		for k, en := range entries {
			if k == 0 {
				continue
			}
			prev := entries[k-1]
			if en.rec.Seq != prev.rec.Seq+1 && en.rec.ChainError == "" {
				missing := fmt.Sprintf("event #%d of %s before it is", prev.rec.Seq+1, node)
				if en.rec.Seq-1 > prev.rec.Seq+1 {
					missing = fmt.Sprintf("events #%d..#%d of %s before it are", prev.rec.Seq+1, en.rec.Seq-1, node)
				}
				add(int64(en.index), node, en.rec.Seq, "%s not in the log (removed)", missing)
			} else if en.rec.Seq == prev.rec.Seq+1 && en.rec.PrevHash != hex.EncodeToString(prev.hash) && en.rec.ChainError == "" && !named[prev.index] {
				add(int64(prev.index), node, prev.rec.Seq, "its successor #%d names another predecessor: this record was changed", en.rec.Seq)
				named[prev.index] = true
			}
		}
	}

	// The roots at every checkpoint, from the records as they are now.
	rng := (&compact.RangeFactory{Hash: h.HashChildren}).NewEmptyRange(0)
	next := 0
	prevSize := uint64(0)
	firstBad, later := false, []uint64(nil)
	for _, c := range good {
		if c.Size > uint64(len(hashes)) {
			add(-1, "", 0, "checkpoint at size %d: the member serves only %d leaves: leaves were removed", c.Size, len(hashes))
			continue
		}
		for ; uint64(next) < c.Size; next++ {
			if err := rng.Append(hashes[next], nil); err != nil {
				return rep, err
			}
		}
		root := h.EmptyRoot()
		if c.Size > 0 {
			if root, err = rng.GetRootHash(nil); err != nil {
				return rep, err
			}
		}
		if !bytes.Equal(root, c.Root) {
			if len(later) == 0 && !firstBad {
				firstBad = true
				add(-1, "", 0, "checkpoint at size %d (signed by %s at %s): the log's first %d leaves hash to %x, not the signed %x: a leaf in [%d, %d) was changed",
					c.Size, c.Member, time.Unix(0, c.At).UTC().Format(time.RFC3339), c.Size, root[:8], c.Root[:8], prevSize, c.Size)
			} else {
				later = append(later, c.Size)
			}
		}
		prevSize = c.Size
	}
	if len(later) > 0 {
		add(-1, "", 0, "%d later checkpoints (sizes %d to %d) no longer match either: they include that change", len(later), later[0], later[len(later)-1])
	}
	if len(good) > 0 {
		rep.Newest = good[len(good)-1]
		rep.Unsigned = uint64(len(hashes)) - min(rep.Newest.Size, uint64(len(hashes)))
	}

	// Consistency: each checkpoint extends the one before, and the newest
	// extends the one verified before (pinned).
	// (Every checkpoint's root was recomputed from the leaves above; proofs
	// are checked for the newest MaxConsistencyProofs pairs.)
	for k := max(1, len(good)-MaxConsistencyProofs); k < len(good); k++ {
		if err := checkConsistency(ctx, src, good[k-1], good[k], &rep); err != nil {
			return rep, err
		}
	}
	if pinned != nil {
		switch {
		case !Valid(*pinned, pub):
			return rep, fmt.Errorf("the pinned checkpoint's signature does not verify; is it this hub's?")
		case len(good) == 0 || good[len(good)-1].Size < pinned.Size:
			add(-1, "", 0, "the log is shorter than the checkpoint verified before (size %d): it was truncated", pinned.Size)
		default:
			if err := checkConsistency(ctx, src, *pinned, good[len(good)-1], &rep); err != nil {
				return rep, err
			}
		}
	}

	// Inclusion of the named leaves and a sample of the others in the newest checkpoint.
	if len(good) > 0 && rep.Newest.Size > 0 {
		stride := max(rep.Newest.Size/64, 1)
		for i := uint64(0); i < rep.Newest.Size; i++ {
			if i%stride != 0 && !named[i] {
				continue
			}
			p, err := src.Proof(ctx, i, rep.Newest.Size, false)
			if err != nil {
				return rep, err
			}
			rep.Inclusion++
			if err := proof.VerifyInclusion(h, i, rep.Newest.Size, hashes[i], p, rep.Newest.Root); err != nil && !named[i] {
				l := leaves[i]
				add(int64(i), l.NodeID, l.Seq, "not included in the signed checkpoint at size %d: %v", rep.Newest.Size, err)
			}
		}
	}
	return rep, nil
}

func checkConsistency(ctx context.Context, src Source, a, b Checkpoint, rep *Report) error {
	if a.Size == b.Size {
		if !bytes.Equal(a.Root, b.Root) {
			rep.Findings = append(rep.Findings, Finding{Leaf: -1, Problem: fmt.Sprintf("two signed checkpoints at size %d disagree: the log was rewritten", a.Size)})
		}
		return nil
	}
	if a.Size == 0 {
		return nil
	}
	p, err := src.Proof(ctx, a.Size, b.Size, true)
	if err != nil {
		return err
	}
	rep.Consistency++
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, a.Size, b.Size, p, a.Root, b.Root); err != nil {
		rep.Findings = append(rep.Findings, Finding{Leaf: -1, Problem: fmt.Sprintf("the checkpoint at size %d does not extend the one at size %d: %v: the log was rewritten between them", b.Size, a.Size, err)})
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
