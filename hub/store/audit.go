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
	if err := indexExport(b, b, nodeID, e); err != nil {
		return err
	}
	if !merkleLog {
		return nil
	}
	return appendLeaf(b, nodeID, e)
}

// AuditEntry is a stored audit event with its leaf in the audit Merkle log
// (Leaf nil: the event has none, it was stored before the log existed).
type AuditEntry struct {
	Event *rondav1.StoredAuditEvent
	Leaf  *uint64
}

// AuditEvents returns audit events, oldest first: one node's with
// audit_seq > after (nodeID set), or every node's in node order (nodeID
// empty; after must be 0), at most limit.
func (s *Store) AuditEvents(nodeID string, after uint64, limit int) ([]*rondav1.StoredAuditEvent, error) {
	entries, err := s.AuditEntries(nodeID, after, limit)
	out := make([]*rondav1.StoredAuditEvent, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Event)
	}
	return out, err
}

// AuditEntries is AuditEvents with each event's leaf.
func (s *Store) AuditEntries(nodeID string, after uint64, limit int) ([]AuditEntry, error) {
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
	var out []AuditEntry
	_, err := s.fsm.read(func(r pebble.Reader) error {
		evs, err := readAudit(r, prefix, lower, limit)
		if err != nil {
			return err
		}
		out = make([]AuditEntry, 0, len(evs))
		for _, e := range evs {
			en := AuditEntry{Event: e}
			if index, ok, err := leafOf(r, e.GetNodeId(), e.GetEvent().GetAuditSeq()); err != nil {
				return err
			} else if ok {
				en.Leaf = &index
			}
			out = append(out, en)
		}
		return nil
	})
	return out, err
}

// AuditNewest walks the audit log from leaf before-1 down to leaf 0 (before
// 0 or past the end: from the newest leaf), newest first in the order the
// cluster applied the events, examining at most maxScan leaves. Leaves of
// other nodes than nodeID (when set) are skipped without reading their
// events; each other leaf whose event this member holds is passed to fn,
// which returns true to stop after it. It returns how many leaves were
// examined and the cursor to continue below the last one examined (more
// false: leaf 0 was reached).
func (s *Store) AuditNewest(nodeID string, before uint64, maxScan int, fn func(leaf uint64, e *rondav1.StoredAuditEvent) (stop bool)) (scanned int, next uint64, more bool, err error) {
	if nodeID != "" {
		if err := validID("node", nodeID); err != nil {
			return 0, 0, false, fmt.Errorf("%w: %v", ErrBadCommand, err)
		}
	}
	_, err = s.fsm.read(func(r pebble.Reader) error {
		rng, err := loadRange(r)
		if err != nil {
			return err
		}
		i := rng.End()
		if before != 0 && before < i {
			i = before
		}
		for i > 0 && scanned < maxScan {
			i--
			scanned++
			l := new(rondav1.AuditLeaf)
			found, err := getProto(r, leafKey(i), l)
			if err != nil {
				return err
			}
			if !found || (nodeID != "" && l.GetNodeId() != nodeID) {
				continue
			}
			ev := new(rondav1.StoredAuditEvent)
			if found, err := getProto(r, auditKey(l.GetNodeId(), l.GetAuditSeq()), ev); err != nil {
				return err
			} else if !found {
				continue // deleted from this member's store ('GET /api/v1/audit/verify' names it)
			}
			if fn(i, ev) {
				break
			}
		}
		next, more = i, i > 0
		return nil
	})
	return scanned, next, more, err
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
