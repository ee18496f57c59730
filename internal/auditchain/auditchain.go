// Package auditchain defines how audit events are hash-chained, so a node,
// the hub and an offline verifier compute the same chain. The encoding is
// explicit (not protobuf's, which is not canonical): a verifier in any
// language can reproduce it from the fields.
//
//	Hash(e) = SHA-256( prev_sha256 (32 bytes)
//	                 || audit_seq || at || from || to   (uint64/int64, big-endian)
//	                 || user || action || camera_id || remote || reason || outcome
//	                    (each: uint32 big-endian length, then the UTF-8 bytes) )
//
// The first event's prev_sha256 is 32 zero bytes (Genesis); each following
// event's is the Hash of the one before.
package auditchain

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// Genesis is the prev_sha256 of a chain's first event.
var Genesis = make([]byte, sha256.Size)

// Hash is the chain hash of e (which includes e's prev_sha256).
func Hash(e *rondav1.AuditEvent) []byte {
	h := sha256.New()
	prev := e.GetPrevSha256()
	if len(prev) != sha256.Size {
		prev = Genesis
	}
	h.Write(prev)
	var b [8]byte
	for _, v := range []uint64{e.GetAuditSeq(), uint64(e.GetAtUnixNano()), uint64(e.GetFromUnixNano()), uint64(e.GetToUnixNano())} {
		binary.BigEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	for _, s := range []string{e.GetUser(), e.GetAction(), e.GetCameraId(), e.GetRemote(), e.GetReason(), e.GetOutcome()} {
		binary.BigEndian.PutUint32(b[:4], uint32(len(s)))
		h.Write(b[:4])
		h.Write([]byte(s))
	}
	return h.Sum(nil)
}

// Check says why e does not continue a chain whose newest event has sequence
// seq and hash head (seq 0 and a nil head: an empty chain), or "" if it does.
func Check(seq uint64, head []byte, e *rondav1.AuditEvent) string {
	if len(head) == 0 {
		head = Genesis
	}
	switch {
	case e.GetAuditSeq() != seq+1:
		if e.GetAuditSeq() <= seq {
			return fmt.Sprintf("audit event %d arrived after event %d: a replayed or reordered event", e.GetAuditSeq(), seq)
		}
		return fmt.Sprintf("audit event %d follows event %d: events %d..%d are missing", e.GetAuditSeq(), seq, seq+1, e.GetAuditSeq()-1)
	case !bytes.Equal(e.GetPrevSha256(), head):
		return fmt.Sprintf("audit event %d names a predecessor with hash %x, but event %d hashes to %x: an earlier event was changed", e.GetAuditSeq(), short(e.GetPrevSha256()), seq, short(head))
	}
	return ""
}

func short(b []byte) []byte { return b[:min(len(b), 8)] }

// Record is e as the API lists it.
func Record(nodeID string, e *rondav1.AuditEvent) api.AuditRecord {
	r := api.AuditRecord{NodeID: nodeID, Seq: e.GetAuditSeq(), Time: time.Unix(0, e.GetAtUnixNano()).UTC(), User: e.GetUser(),
		Action: e.GetAction(), CameraID: e.GetCameraId(), Remote: e.GetRemote(), Reason: e.GetReason(), Outcome: e.GetOutcome(),
		Hash: hex.EncodeToString(Hash(e)), PrevHash: hex.EncodeToString(e.GetPrevSha256())}
	if e.GetFromUnixNano() != 0 || e.GetToUnixNano() != 0 {
		from, to := time.Unix(0, e.GetFromUnixNano()).UTC(), time.Unix(0, e.GetToUnixNano()).UTC()
		r.From, r.To = &from, &to
	}
	return r
}

// Event is the API's audit event as the chain's message (without its
// sequence and predecessor, which the log that appends it assigns).
func Event(e api.AuditEvent) *rondav1.AuditEvent {
	ev := &rondav1.AuditEvent{AtUnixNano: e.Time.UnixNano(), User: e.User, Action: e.Action, CameraId: e.CameraID,
		Remote: e.Remote, Reason: e.Reason, Outcome: e.Outcome}
	if !e.From.IsZero() || !e.To.IsZero() {
		ev.FromUnixNano, ev.ToUnixNano = e.From.UnixNano(), e.To.UnixNano()
	}
	return ev
}

// LeafData is what a leaf of the hub's audit Merkle log hashes (RFC 6962
// leaf hash): where the event is kept and its chain hash, which covers
// every field of the event and its predecessor.
func LeafData(nodeID string, seq uint64, chainHash []byte) []byte {
	b := make([]byte, 0, 24+len(nodeID)+8+len(chainHash))
	b = append(b, "ronda-audit-leaf-v1\x00"...)
	b = append(b, nodeID...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, seq)
	return append(b, chainHash...)
}

// CheckpointText is what a checkpoint's signature covers.
func CheckpointText(size uint64, root []byte, atUnixNano int64) []byte {
	return fmt.Appendf(nil, "ronda audit log\n%d\n%x\n%d\n", size, root, atUnixNano)
}

// EventOf turns a listed record back into the event it was made from, so a
// verifier can recompute its chain hash from its content.
func EventOf(r api.AuditRecord) (*rondav1.AuditEvent, error) {
	prev, err := hex.DecodeString(r.PrevHash)
	if err != nil {
		return nil, fmt.Errorf("audit record %s #%d: prev_hash %q is not hex", r.NodeID, r.Seq, r.PrevHash)
	}
	e := &rondav1.AuditEvent{AuditSeq: r.Seq, AtUnixNano: r.Time.UnixNano(), User: r.User, Action: r.Action, CameraId: r.CameraID,
		Remote: r.Remote, Reason: r.Reason, Outcome: r.Outcome, PrevSha256: prev}
	if r.From != nil {
		e.FromUnixNano = r.From.UnixNano()
	}
	if r.To != nil {
		e.ToUnixNano = r.To.UnixNano()
	}
	return e, nil
}
