package store

// The audit Merkle log (RFC 6962, transparency-dev/merkle): every audit
// event the FSM stores — a node's or the hub's own — is appended as a leaf,
// in apply order, so every member builds the same tree. The FSM keeps the
// compact range of the whole log (m/merkle), each leaf's place and hash
// (l/), and every perfect subtree's hash (t/), from which inclusion and
// consistency proofs are read. The leader signs checkpoints (size, root)
// every few seconds; they are replicated like any command (k/).

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/protobuf/proto"

	"github.com/ronda-jakarta/ronda/internal/auditchain"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// CommandAuditCheckpoint carries a rondav1.AuditCheckpoint.
const CommandAuditCheckpoint CommandType = 10

var (
	keyMerkle     = []byte("m/merkle")
	merkleFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
)

func init() {
	commands[CommandAuditCheckpoint] = commandSpec{
		name: "AuditCheckpoint",
		decode: func(p []byte) (proto.Message, error) {
			m := new(rondav1.AuditCheckpoint)
			if err := proto.Unmarshal(p, m); err != nil || len(m.GetRoot()) != 32 || len(m.GetSignature()) == 0 {
				return nil, fmt.Errorf("%w: AuditCheckpoint: needs a size, a 32-byte root and a signature", ErrBadCommand)
			}
			return m, nil
		},
		apply: applyAuditCheckpoint,
	}
}

func leafKey(i uint64) []byte { return binary.BigEndian.AppendUint64(bytes.Clone(prefixLeaf), i) }

// leafIndexKey finds an event's leaf: x/<node> NUL <seq>.
func leafIndexKey(nodeID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(joinKey(prefixLeafIndex, nodeID), 0), seq)
}

func treeNodeKey(id compact.NodeID) []byte {
	k := append(bytes.Clone(prefixTreeNode), byte(id.Level))
	return binary.BigEndian.AppendUint64(k, id.Index)
}

func checkpointKey(size uint64) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(prefixCheckpoint), size)
}

// loadRange reads the log's compact range (empty when there is none).
func loadRange(r pebble.Reader) (*compact.Range, error) {
	v, closer, err := r.Get(keyMerkle)
	if errors.Is(err, pebble.ErrNotFound) {
		return merkleFactory.NewEmptyRange(0), nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	if len(v) < 8 || (len(v)-8)%32 != 0 {
		return nil, fmt.Errorf("%w: %q is %d bytes", ErrSchema, keyMerkle, len(v))
	}
	size := binary.BigEndian.Uint64(v)
	var hashes [][]byte
	for p := v[8:]; len(p) > 0; p = p[32:] {
		hashes = append(hashes, bytes.Clone(p[:32]))
	}
	rng, err := merkleFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrSchema, keyMerkle, err)
	}
	return rng, nil
}

// appendLeaf adds an audit event to the log.
func appendLeaf(b *pebble.Batch, nodeID string, e *rondav1.AuditEvent) error {
	rng, err := loadRange(b)
	if err != nil {
		return err
	}
	index := rng.End()
	leaf := rfc6962.DefaultHasher.HashLeaf(auditchain.LeafData(nodeID, e.GetAuditSeq(), auditchain.Hash(e)))
	var werr error
	if err := rng.Append(leaf, func(id compact.NodeID, h []byte) {
		if werr == nil {
			werr = b.Set(treeNodeKey(id), h, nil)
		}
	}); err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	if err := putProto(b, leafKey(index), &rondav1.AuditLeaf{NodeId: nodeID, AuditSeq: e.GetAuditSeq(), LeafHash: leaf}); err != nil {
		return err
	}
	if err := b.Set(leafIndexKey(nodeID, e.GetAuditSeq()), encodeUint64(index), nil); err != nil {
		return err
	}
	v := binary.BigEndian.AppendUint64(nil, rng.End())
	for _, h := range rng.Hashes() {
		v = append(v, h...)
	}
	return b.Set(keyMerkle, v, nil)
}

func applyAuditCheckpoint(b *pebble.Batch, payload []byte, _ *slog.Logger) (uint64, error) {
	m, err := commands[CommandAuditCheckpoint].decode(payload)
	if err != nil {
		return 0, err
	}
	cp := m.(*rondav1.AuditCheckpoint)
	return 0, putProto(b, checkpointKey(cp.GetSize()), cp)
}

// AuditLogHead is the log's size and root hash in this member's state.
func (s *Store) AuditLogHead() (size uint64, root []byte, err error) {
	_, err = s.fsm.read(func(r pebble.Reader) error {
		rng, err := loadRange(r)
		if err != nil {
			return err
		}
		size = rng.End()
		root, err = rng.GetRootHash(nil)
		if size == 0 {
			root = rfc6962.DefaultHasher.EmptyRoot()
		}
		return err
	})
	return size, root, err
}

// ProposeCheckpoint commits a signed checkpoint.
func (s *Store) ProposeCheckpoint(ctx context.Context, cp *rondav1.AuditCheckpoint) error {
	cmd, err := EncodeCommand(CommandAuditCheckpoint, cp)
	if err != nil {
		return err
	}
	_, _, err = s.Apply(ctx, cmd)
	return err
}

// AuditCheckpoints lists the signed checkpoints, oldest first.
func (s *Store) AuditCheckpoints() []*rondav1.AuditCheckpoint {
	return scanAll(s, prefixCheckpoint, func() *rondav1.AuditCheckpoint { return new(rondav1.AuditCheckpoint) })
}

// LeafRecord is a leaf of the log with the event it stands for (nil when
// the event is not in this member's state).
type LeafRecord struct {
	Index uint64
	Leaf  *rondav1.AuditLeaf
	Event *rondav1.StoredAuditEvent
}

// AuditLeaves reads up to count leaves from start, with their events.
func (s *Store) AuditLeaves(start uint64, count int) ([]LeafRecord, error) {
	var out []LeafRecord
	_, err := s.fsm.read(func(r pebble.Reader) error {
		for i := start; i < start+uint64(count); i++ {
			l := new(rondav1.AuditLeaf)
			found, err := getProto(r, leafKey(i), l)
			if err != nil {
				return err
			}
			if !found {
				return nil
			}
			lr := LeafRecord{Index: i, Leaf: l}
			ev := new(rondav1.StoredAuditEvent)
			if found, err := getProto(r, auditKey(l.GetNodeId(), l.GetAuditSeq()), ev); err != nil {
				return err
			} else if found {
				lr.Event = ev
			}
			out = append(out, lr)
		}
		return nil
	})
	return out, err
}

// AuditProof returns an inclusion proof of leaf index in the log of the
// given size (consistency false), or a consistency proof between sizes
// index and size (consistency true), from this member's stored tree.
func (s *Store) AuditProof(index, size uint64, consistency bool) ([][]byte, error) {
	var nodes proof.Nodes
	var err error
	if consistency {
		nodes, err = proof.Consistency(index, size)
	} else {
		nodes, err = proof.Inclusion(index, size)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	var hashes [][]byte
	_, err = s.fsm.read(func(r pebble.Reader) error {
		rng, err := loadRange(r)
		if err != nil {
			return err
		}
		if size > rng.End() {
			return fmt.Errorf("%w: the log has %d leaves, not %d", ErrBadCommand, rng.End(), size)
		}
		for _, id := range nodes.IDs {
			v, closer, err := r.Get(treeNodeKey(id))
			if err != nil {
				return fmt.Errorf("%w: tree node %d/%d: %v", ErrSchema, id.Level, id.Index, err)
			}
			hashes = append(hashes, bytes.Clone(v))
			closer.Close()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
}
