package store

// FSM commands: the dispatch table from a raft log entry's type byte to the
// function that decodes and applies it to a Pebble batch.
//
// The table is stateless (no clock, no randomness, no member identity), so
// every member — and an offline recovery tool replaying a raft log into a
// Pebble directory — produces byte-identical state from the same entries.
// Every command must be idempotent: Store.Apply retries a command whose
// outcome is unknown after a leadership change.

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// CommandType is the first byte of every raft log entry written by the hub.
type CommandType byte

const (
	// CommandNodeRecords carries a rondav1.NodeRecords message.
	CommandNodeRecords CommandType = 1
	// CommandBatch carries a rondav1.CommandBatch: several commands in one
	// raft entry, applied in order, each with its own result.
	CommandBatch CommandType = 2
	// CommandMember carries a rondav1.HubMember: a member joined or removed
	// (members.go).
	CommandMember CommandType = 3
)

// MaxCommandBytes bounds one encoded command, and a batch of them: raft
// entries are replicated to every member and kept in the log until the next
// snapshot, and a large entry stalls the heartbeats queued behind it. Callers
// with more data split it (e.g. push fewer outbox records per request).
const MaxCommandBytes = 512 << 10

// applyFunc decodes payload and applies it to b, which must be an indexed
// batch (created with pebble.DB.NewIndexedBatch) so it can read its own writes.
// It returns the command's result, an error wrapping ErrBadCommand when the
// command is rejected (in that case b is unchanged), or any other error when
// storage failed.
type applyFunc func(b *pebble.Batch, payload []byte, log *slog.Logger) (uint64, error)

type commandSpec struct {
	name   string
	decode func(payload []byte) (proto.Message, error)
	apply  applyFunc
}

// commands is filled by init functions, this file's and those of the files
// adding a command (blobs.go, cases.go, ...), which may run before it.
var commands = map[CommandType]commandSpec{}

func init() {
	for t, spec := range map[CommandType]commandSpec{
		CommandNodeRecords: {
			name:   "NodeRecords",
			decode: func(p []byte) (proto.Message, error) { return decodeNodeRecords(p) },
			apply:  applyNodeRecords,
		},
		CommandMember: {
			name:   "Member",
			decode: func(p []byte) (proto.Message, error) { return decodeMember(p) },
			apply:  applyMember,
		},
		CommandSeedAreas: {
			name:   "SeedAreas",
			decode: func(p []byte) (proto.Message, error) { return decodeAreaSeed(p) },
			apply:  applyAreaSeed,
		},
		CommandBatch: {
			name:   "Batch",
			decode: func(p []byte) (proto.Message, error) { return decodeBatch(p) },
			apply: func(b *pebble.Batch, p []byte, log *slog.Logger) (uint64, error) {
				// Only through applyEntry, which returns each sub-result.
				return 0, fmt.Errorf("%w: a batch cannot be applied as a single command", ErrBadCommand)
			},
		},
	} {
		commands[t] = spec
	}
}

// EncodeBatch frames several encoded commands as one. It fails if any of
// them is itself a batch or the result exceeds MaxCommandBytes.
func EncodeBatch(cmds [][]byte) ([]byte, error) {
	for i, c := range cmds {
		if len(c) > 0 && CommandType(c[0]) == CommandBatch {
			return nil, fmt.Errorf("%w: command %d of a batch is itself a batch", ErrBadCommand, i)
		}
	}
	return EncodeCommand(CommandBatch, &rondav1.CommandBatch{Commands: cmds})
}

func decodeBatch(payload []byte) (*rondav1.CommandBatch, error) {
	m := new(rondav1.CommandBatch)
	if err := proto.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("%w: Batch: %v", ErrBadCommand, err)
	}
	for i, c := range m.GetCommands() {
		if len(c) == 0 {
			return nil, fmt.Errorf("%w: Batch: command %d is empty", ErrBadCommand, i)
		}
		if CommandType(c[0]) == CommandBatch {
			return nil, fmt.Errorf("%w: Batch: command %d is itself a batch", ErrBadCommand, i)
		}
	}
	return m, nil
}

// applyEntry applies one raft entry's command to b: a single command gives
// one response, a batch one per command in order. A rejected command (or a
// rejected command inside a batch) leaves b unchanged for that command and
// is reported in its response; the others apply. Only a storage failure is
// returned as an error.
func applyEntry(b *pebble.Batch, cmd []byte, log *slog.Logger) ([]applyResponse, error) {
	if len(cmd) > 0 && CommandType(cmd[0]) == CommandBatch {
		m, err := decodeBatch(cmd[1:])
		if err != nil {
			return []applyResponse{{err: err}}, nil
		}
		out := make([]applyResponse, len(m.GetCommands()))
		for i, c := range m.GetCommands() {
			r, err := ApplyCommand(b, c, log)
			if err != nil && !isRejection(err) {
				return nil, err
			}
			out[i] = applyResponse{result: r, err: err}
		}
		return out, nil
	}
	r, err := ApplyCommand(b, cmd, log)
	if err != nil && !isRejection(err) {
		return nil, err
	}
	return []applyResponse{{result: r, err: err}}, nil
}

// String names the command type for logs and errors.
func (t CommandType) String() string {
	if spec, ok := commands[t]; ok {
		return spec.name
	}
	return fmt.Sprintf("CommandType(%d)", byte(t))
}

// EncodeCommand frames m as a command of type t: one type byte followed by the
// protobuf encoding of m.
func EncodeCommand(t CommandType, m proto.Message) ([]byte, error) {
	if _, ok := commands[t]; !ok {
		return nil, fmt.Errorf("%w: %d", ErrUnknownCommand, byte(t))
	}
	b, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend([]byte{byte(t)}, m)
	if err != nil {
		return nil, fmt.Errorf("%w: encode %s: %v", ErrBadCommand, t, err)
	}
	if len(b) > MaxCommandBytes {
		return nil, fmt.Errorf("%w: %s command is %d bytes, limit %d; send fewer records per command",
			ErrBadCommand, t, len(b), MaxCommandBytes)
	}
	return b, nil
}

// EncodeNodeRecords frames a NodeRecords command.
func EncodeNodeRecords(m *rondav1.NodeRecords) ([]byte, error) {
	return EncodeCommand(CommandNodeRecords, m)
}

// DecodeCommand splits and decodes a command without applying it.
func DecodeCommand(cmd []byte) (CommandType, proto.Message, error) {
	if len(cmd) == 0 {
		return 0, nil, fmt.Errorf("%w: empty command", ErrBadCommand)
	}
	t := CommandType(cmd[0])
	spec, ok := commands[t]
	if !ok {
		return t, nil, fmt.Errorf("%w: type byte %d is not known to this binary", ErrUnknownCommand, cmd[0])
	}
	m, err := spec.decode(cmd[1:])
	return t, m, err
}

// ValidateCommand checks that cmd can be applied: known type, decodable
// payload, size within MaxCommandBytes. Store.Apply calls it before proposing
// so that garbage never reaches the raft log.
func ValidateCommand(cmd []byte) error {
	if len(cmd) > MaxCommandBytes {
		return fmt.Errorf("%w: command is %d bytes, limit %d", ErrBadCommand, len(cmd), MaxCommandBytes)
	}
	_, _, err := DecodeCommand(cmd)
	return err
}

// ApplyCommand applies one command to b, which must be an indexed batch. It
// does not record the raft index (the FSM does that in the same batch). A
// rejected command (errors wrapping ErrUnknownCommand or ErrBadCommand) leaves
// b unchanged; any other error is a storage failure. log may be nil.
func ApplyCommand(b *pebble.Batch, cmd []byte, log *slog.Logger) (uint64, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(cmd) == 0 {
		return 0, fmt.Errorf("%w: empty command", ErrBadCommand)
	}
	spec, ok := commands[CommandType(cmd[0])]
	if !ok {
		return 0, fmt.Errorf("%w: type byte %d is not known to this binary", ErrUnknownCommand, cmd[0])
	}
	return spec.apply(b, cmd[1:], log)
}

func isRejection(err error) bool {
	return errors.Is(err, ErrBadCommand) || errors.Is(err, ErrUnknownCommand)
}

func decodeNodeRecords(payload []byte) (*rondav1.NodeRecords, error) {
	m := new(rondav1.NodeRecords)
	if err := proto.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("%w: NodeRecords: %v", ErrBadCommand, err)
	}
	if err := validID("node", m.GetNodeId()); err != nil {
		return nil, fmt.Errorf("%w: NodeRecords: %v", ErrBadCommand, err)
	}
	return m, nil
}

// applyNodeRecords applies a node's outbox records in order. Records whose
// seq is at or below the node's applied_seq are skipped, so a retried push
// applies once. A record that is individually invalid (no body, bad camera
// id, inverted span) is skipped but still consumes its seq: the node must not
// retry a poison record forever. The result is the node's applied_seq.
func applyNodeRecords(b *pebble.Batch, payload []byte, log *slog.Logger) (uint64, error) {
	m, err := decodeNodeRecords(payload)
	if err != nil {
		return 0, err
	}
	nodeID := m.GetNodeId()
	node := new(rondav1.StoredNode)
	found, err := getProto(b, nodeKey(nodeID), node)
	if err != nil {
		return 0, err
	}
	if !found {
		node.Info = &rondav1.NodeInfo{NodeId: nodeID}
	}
	now := m.GetProposedUnixNano()
	changed := false
	for _, rec := range m.GetRecords() {
		if rec.GetSeq() <= node.GetAppliedSeq() {
			continue
		}
		if err := applyRecord(b, node, rec, now, log); err != nil {
			return 0, err
		}
		node.AppliedSeq = rec.GetSeq()
		changed = true
	}
	if changed {
		node.UpdatedUnixNano = now
		if err := putProto(b, nodeKey(nodeID), node); err != nil {
			return 0, err
		}
	}
	return node.GetAppliedSeq(), nil
}

func applyRecord(b *pebble.Batch, node *rondav1.StoredNode, rec *rondav1.Record, now int64, log *slog.Logger) error {
	nodeID := node.GetInfo().GetNodeId()
	switch body := rec.GetBody().(type) {
	case *rondav1.Record_Registration:
		info := proto.CloneOf(body.Registration)
		if info == nil {
			info = new(rondav1.NodeInfo)
		}
		info.NodeId = nodeID // the command's node id is authoritative
		oldCode := node.GetInfo().GetKelurahanCode()
		node.Info = info
		if node.GetRegisteredUnixNano() == 0 {
			node.RegisteredUnixNano = now
		}
		if info.GetKelurahanCode() != oldCode {
			return relabelCameras(b, nodeID, info.GetKelurahanCode())
		}
		return nil
	case *rondav1.Record_Cameras:
		return replaceInventory(b, nodeID, node.GetInfo().GetKelurahanCode(), body.Cameras, rec.GetSeq(), log)
	case *rondav1.Record_Span:
		return addSpan(b, nodeID, body.Span, rec.GetSeq(), log)
	case *rondav1.Record_Segment:
		return addSegment(b, nodeID, body.Segment, rec.GetSeq(), log)
	case *rondav1.Record_Gap:
		return addGapEvent(b, nodeID, body.Gap, rec.GetSeq(), log)
	case *rondav1.Record_Audit:
		return addAudit(b, node, body.Audit, now, rec.GetSeq(), log)
	case *rondav1.Record_DirectiveResult:
		return applyDirectiveResult(b, node, body.DirectiveResult, log)
	case *rondav1.Record_Hold:
		return applyHoldChange(b, node, body.Hold, rec.GetSeq(), log)
	case *rondav1.Record_SegmentDay:
		return addSegmentDay(b, nodeID, body.SegmentDay, rec.GetSeq(), log)
	default:
		log.Debug("skipping outbox record without a body", "node", nodeID, "seq", rec.GetSeq())
		return nil
	}
}

// replaceInventory makes inv the node's complete camera set. Cameras the node
// no longer lists are deleted (unless another node has claimed them since);
// a camera listed by a new node moves to it. Coverage is kept: footage of a
// removed camera may still exist on the node.
func replaceInventory(b *pebble.Batch, nodeID, kelurahan string, inv *rondav1.CameraInventory, seq uint64, log *slog.Logger) error {
	// Deduplicate in list order; the last entry for an id wins.
	var order []string
	want := make(map[string]*rondav1.Camera)
	for _, c := range inv.GetCameras() {
		if err := validID("camera", c.GetId()); err != nil {
			log.Warn("skipping camera in inventory", "node", nodeID, "seq", seq, "reason", err)
			continue
		}
		if _, dup := want[c.GetId()]; !dup {
			order = append(order, c.GetId())
		}
		want[c.GetId()] = c
	}

	have, err := nodeCameraIDs(b, nodeID)
	if err != nil {
		return err
	}
	for _, id := range have { // key order: deterministic
		if _, keep := want[id]; keep {
			continue
		}
		if err := b.Delete(nodeCameraKey(nodeID, id), nil); err != nil {
			return err
		}
		var cur rondav1.StoredCamera
		found, err := getProto(b, cameraKey(id), &cur)
		if err != nil {
			return err
		}
		if found && cur.GetNodeId() == nodeID {
			if err := b.Delete(cameraKey(id), nil); err != nil {
				return err
			}
		}
	}
	for _, id := range order {
		var prev rondav1.StoredCamera
		found, err := getProto(b, cameraKey(id), &prev)
		if err != nil {
			return err
		}
		if found && prev.GetNodeId() != nodeID {
			log.Info("camera moved to another node", "camera", id, "from", prev.GetNodeId(), "to", nodeID)
			if err := b.Delete(nodeCameraKey(prev.GetNodeId(), id), nil); err != nil {
				return err
			}
		}
		sc := &rondav1.StoredCamera{Camera: want[id], NodeId: nodeID, KelurahanCode: kelurahan}
		if err := putProto(b, cameraKey(id), sc); err != nil {
			return err
		}
		if err := b.Set(nodeCameraKey(nodeID, id), nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// relabelCameras updates the kelurahan code of the node's cameras after its
// registration changed.
func relabelCameras(b *pebble.Batch, nodeID, kelurahan string) error {
	ids, err := nodeCameraIDs(b, nodeID)
	if err != nil {
		return err
	}
	for _, id := range ids {
		var sc rondav1.StoredCamera
		found, err := getProto(b, cameraKey(id), &sc)
		if err != nil {
			return err
		}
		if !found || sc.GetNodeId() != nodeID || sc.GetKelurahanCode() == kelurahan {
			continue
		}
		sc.KelurahanCode = kelurahan
		if err := putProto(b, cameraKey(id), &sc); err != nil {
			return err
		}
	}
	return nil
}

// addSpan merges a recorded span into the camera's coverage. Spans for a
// camera that belongs to another node are ignored.
func addSpan(b *pebble.Batch, nodeID string, span *rondav1.Span, seq uint64, log *slog.Logger) error {
	camID := span.GetCameraId()
	if err := validID("camera", camID); err != nil {
		log.Warn("skipping span", "node", nodeID, "seq", seq, "reason", err)
		return nil
	}
	if span.GetEndUnixNano() <= span.GetStartUnixNano() {
		log.Warn("skipping empty or inverted span", "node", nodeID, "seq", seq, "camera", camID,
			"start", span.GetStartUnixNano(), "end", span.GetEndUnixNano())
		return nil
	}
	if owned, err := ownedBy(b, camID, nodeID, seq, "span", log); err != nil || !owned {
		return err
	}
	return mergeSpan(b, camID, interval{span.GetStartUnixNano(), span.GetEndUnixNano()})
}

// ownedBy reports whether a record about camID from nodeID may apply: the
// camera is unknown (coverage may arrive before the inventory) or the node's.
func ownedBy(b *pebble.Batch, camID, nodeID string, seq uint64, what string, log *slog.Logger) (bool, error) {
	var sc rondav1.StoredCamera
	found, err := getProto(b, cameraKey(camID), &sc)
	if err != nil {
		return false, err
	}
	if found && sc.GetNodeId() != nodeID {
		log.Warn("skipping "+what+" for a camera owned by another node", "node", nodeID, "seq", seq,
			"camera", camID, "owner", sc.GetNodeId())
		return false, nil
	}
	return true, nil
}

// mergeSpan merges iv into the camera's coverage, one UTC day bucket at a
// time: a span over midnight lands in both days, clipped to each, so a new
// span only ever rewrites the (small) values of the days it touches.
func mergeSpan(b *pebble.Batch, camID string, iv interval) error {
	for day := dayOf(iv.start); int64(day)*nsPerDay < iv.end; day++ {
		lo, hi := int64(day)*nsPerDay, int64(day+1)*nsPerDay
		part := interval{max(iv.start, lo), min(iv.end, hi)}
		if part.end <= part.start {
			continue
		}
		key := coverageDayKey(camID, day)
		var cov rondav1.StoredCoverage
		if _, err := getProto(b, key, &cov); err != nil {
			return err
		}
		spans := mergeInterval(intervalsFromCoverage(&cov), part, int64(SpanMergeGap))
		cov.Spans = coverageFromIntervals(capIntervals(spans, MaxCoverageSpans)).Spans
		if err := putProto(b, key, &cov); err != nil {
			return err
		}
	}
	return nil
}

// nodeCameraIDs lists the camera ids indexed under a node, in key order.
func nodeCameraIDs(r pebble.Reader, nodeID string) ([]string, error) {
	prefix := nodeCameraPrefix(nodeID)
	var ids []string
	err := scanPrefix(r, prefix, func(k, _ []byte) error {
		if id, ok := cameraFromNodeCameraKey(k); ok {
			ids = append(ids, id)
		}
		return nil
	})
	return ids, err
}

// getProto reads key into m. found is false when the key does not exist.
func getProto(r pebble.Reader, key []byte, m proto.Message) (found bool, err error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %q: %w", key, err)
	}
	defer closer.Close()
	if err := proto.Unmarshal(v, m); err != nil {
		return false, fmt.Errorf("%w: decode %q: %v", ErrSchema, key, err)
	}
	return true, nil
}

func putProto(b *pebble.Batch, key []byte, m proto.Message) error {
	v, err := marshalValue(m)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	return b.Set(key, v, nil)
}

// scanPrefix calls fn for every key with the prefix, in key order. The slices
// are only valid during the call.
func scanPrefix(r pebble.Reader, prefix []byte, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixUpperBound(prefix)})
	if err != nil {
		return fmt.Errorf("scan %q: %w", prefix, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("scan %q: %w", prefix, err)
		}
		if err := fn(it.Key(), v); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("scan %q: %w", prefix, err)
	}
	return nil
}

// readUint64 reads a big-endian counter, 0 when absent.
func readUint64(r pebble.Reader, key []byte) (uint64, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %q: %w", key, err)
	}
	defer closer.Close()
	return decodeUint64(key, slices.Clone(v))
}
