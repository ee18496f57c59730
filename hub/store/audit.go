package store

import (
	"encoding/binary"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/ronda-jakarta/ronda/internal/auditchain"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// merkleLog is false only in BenchmarkAuditLog's baseline (what storing
// and chaining the events costs without the Merkle log).
var merkleLog = true

// auditPrefix is the prefix of one node's u/ keys (with the NUL).
func auditPrefix(nodeID string) []byte { return append(joinKey(prefixAudit, nodeID), 0) }

func auditKey(nodeID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(auditPrefix(nodeID), seq)
}

// addAudit stores a node's audit event under its audit_seq and advances the
// node's chain. An event that does not continue the chain (one missing
// before it, a changed predecessor) is still stored, with what is wrong in
// chain_error: audit records are never dropped. A second copy of an event
// already stored (same audit_seq) is ignored, so the log holds each once.
func addAudit(b *pebble.Batch, node *rondav1.StoredNode, e *rondav1.AuditEvent, now int64, seq uint64, log *slog.Logger) error {
	nodeID := node.GetInfo().GetNodeId()
	if e.GetAuditSeq() == 0 || e.GetAction() == "" {
		log.Warn("skipping malformed audit event", "node", nodeID, "seq", seq)
		return nil
	}
	key := auditKey(nodeID, e.GetAuditSeq())
	// The hub's own events are numbered by the FSM itself: never a copy.
	if nodeID != HubAuditNode {
		var have rondav1.StoredAuditEvent
		if found, err := getProto(b, key, &have); err != nil || found {
			if found {
				log.Warn("audit event already stored; ignoring the copy", "node", nodeID, "audit_seq", e.GetAuditSeq(), "seq", seq)
			}
			return err
		}
	}
	why := auditchain.Check(node.GetAuditSeq(), node.GetAuditHeadSha256(), e)
	if why != "" {
		log.Warn("audit chain broken", "node", nodeID, "audit_seq", e.GetAuditSeq(), "problem", why)
	}
	if e.GetAuditSeq() > node.GetAuditSeq() {
		node.AuditSeq, node.AuditHeadSha256 = e.GetAuditSeq(), auditchain.Hash(e)
	}
	if err := putProto(b, key, &rondav1.StoredAuditEvent{NodeId: nodeID, Event: e, CommittedUnixNano: now, ChainError: why}); err != nil {
		return err
	}
	if !merkleLog {
		return nil
	}
	return appendLeaf(b, nodeID, e)
}

// AuditEvents returns audit events, oldest first: one node's with
// audit_seq > after (nodeID set), or every node's in node order (nodeID
// empty; after must be 0), at most limit.
func (s *Store) AuditEvents(nodeID string, after uint64, limit int) ([]*rondav1.StoredAuditEvent, error) {
	prefix := prefixAudit
	lower := prefixAudit
	if nodeID != "" {
		if err := validID("node", nodeID); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadCommand, err)
		}
		prefix, lower = auditPrefix(nodeID), auditKey(nodeID, after+1)
	} else if after != 0 {
		return nil, fmt.Errorf("%w: paging with 'after' needs a node", ErrBadCommand)
	}
	var out []*rondav1.StoredAuditEvent
	_, err := s.fsm.read(func(r pebble.Reader) error {
		var err error
		out, err = readAudit(r, prefix, lower, limit)
		return err
	})
	return out, err
}

func readAudit(r pebble.Reader, prefix, lower []byte, limit int) ([]*rondav1.StoredAuditEvent, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixUpperBound(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*rondav1.StoredAuditEvent
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		m := &rondav1.StoredAuditEvent{}
		if err := proto.Unmarshal(v, m); err != nil {
			return nil, fmt.Errorf("%w: decode %q: %v", ErrSchema, it.Key(), err)
		}
		out = append(out, m)
	}
	return out, it.Error()
}
