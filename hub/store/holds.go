package store

// Holds and directives.
//
// A hold placed at the hub (CommandHold) is stored under the camera and
// becomes a directive for the camera's node: the node's next Hello or Push
// (a push without records is its heartbeat) carries it, the node applies it
// and reports a DirectiveResult, and the hold turns from pending to applied.
// Directives of a node that is offline wait here: nothing is lost, and the
// footage is still on the node (its retention learns of the hold when it
// reconnects). Holds the node's own staff place or release come in as
// HoldChange records. Directives are numbered per node; a directive the node
// has applied is deleted.

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// CommandHold carries a rondav1.HoldCommand: a hold placed or released at the hub.
const CommandHold CommandType = 5

func init() {
	commands[CommandHold] = commandSpec{
		name:   "Hold",
		decode: func(p []byte) (proto.Message, error) { return decodeHold(p) },
		apply:  applyHold,
	}
}

// Hold states.
const (
	HoldPending        = "pending"
	HoldApplied        = "applied"
	HoldFailed         = "failed"
	HoldReleasePending = "release_pending"
	HoldReleased       = "released"
)

func holdKey(cameraID, holdID string) []byte { return joinKey(prefixHold, cameraID, holdID) }

func holdPrefix(cameraID string) []byte { return append(joinKey(prefixHold, cameraID), 0) }

func directivePrefix(nodeID string) []byte { return append(joinKey(prefixDirective, nodeID), 0) }

func directiveKey(nodeID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(directivePrefix(nodeID), seq)
}

func decodeHold(payload []byte) (*rondav1.HoldCommand, error) {
	m := new(rondav1.HoldCommand)
	if err := proto.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("%w: Hold: %v", ErrBadCommand, err)
	}
	h := m.GetHold()
	switch {
	case validID("camera", h.GetCameraId()) != nil:
		return nil, fmt.Errorf("%w: Hold: %v", ErrBadCommand, validID("camera", h.GetCameraId()))
	case validID("hold", h.GetHoldId()) != nil:
		return nil, fmt.Errorf("%w: Hold: %v", ErrBadCommand, validID("hold", h.GetHoldId()))
	case !m.GetRelease() && (h.GetToUnixNano() <= h.GetFromUnixNano() || h.GetReason() == ""):
		return nil, fmt.Errorf("%w: Hold: a hold needs a range with to after from and a reason", ErrBadCommand)
	}
	return m, nil
}

// applyHold places or releases a hub hold; the result is the directive's seq.
func applyHold(b *pebble.Batch, payload []byte, log *slog.Logger) (uint64, error) {
	m, err := decodeHold(payload)
	if err != nil {
		return 0, err
	}
	return writeHold(b, m)
}

// writeHold places or releases a hold and writes its directive for the
// camera's node (CommandHold, and each item of a new case).
func writeHold(b *pebble.Batch, m *rondav1.HoldCommand) (uint64, error) {
	h := m.GetHold()
	var cam rondav1.StoredCamera
	if found, err := getProto(b, cameraKey(h.GetCameraId()), &cam); err != nil {
		return 0, err
	} else if !found {
		return 0, fmt.Errorf("%w: no camera %q in the catalog", ErrBadCommand, h.GetCameraId())
	}
	key := holdKey(h.GetCameraId(), h.GetHoldId())
	var sh rondav1.StoredHold
	found, err := getProto(b, key, &sh)
	if err != nil {
		return 0, err
	}
	if !m.GetRelease() && found {
		return sh.GetDirectiveSeq(), nil // the same command again
	}
	if m.GetRelease() {
		switch {
		case !found:
			return 0, fmt.Errorf("%w: camera %s has no hold %q", ErrBadCommand, h.GetCameraId(), h.GetHoldId())
		case sh.GetState() == HoldReleasePending || sh.GetState() == HoldReleased:
			return sh.GetDirectiveSeq(), nil
		}
	}
	nodeID := cam.GetNodeId()
	var node rondav1.StoredNode
	if _, err := getProto(b, nodeKey(nodeID), &node); err != nil {
		return 0, err
	}
	node.DirectiveSeq++
	d := &rondav1.Directive{Seq: node.DirectiveSeq, CreatedUnixNano: m.GetProposedUnixNano()}
	if m.GetRelease() {
		d.Body = &rondav1.Directive_Release{Release: &rondav1.HoldRelease{HoldId: h.GetHoldId(), CameraId: h.GetCameraId(), ReleasedBy: m.GetReleasedBy()}}
		sh.State, sh.ReleasedBy, sh.DirectiveSeq = HoldReleasePending, m.GetReleasedBy(), d.Seq
	} else {
		info := proto.CloneOf(h)
		info.CreatedUnixNano = m.GetProposedUnixNano()
		d.Body = &rondav1.Directive_Hold{Hold: info}
		sh = rondav1.StoredHold{Hold: info, NodeId: nodeID, State: HoldPending, DirectiveSeq: d.Seq}
	}
	for _, err := range []error{putProto(b, directiveKey(nodeID, d.Seq), d), putProto(b, key, &sh), putProto(b, nodeKey(nodeID), &node)} {
		if err != nil {
			return 0, err
		}
	}
	return d.Seq, nil
}

// applyDirectiveResult records a node's outcome of a directive.
func applyDirectiveResult(b *pebble.Batch, node *rondav1.StoredNode, r *rondav1.DirectiveResult, log *slog.Logger) error {
	nodeID := node.GetInfo().GetNodeId()
	node.DirectiveApplied = max(node.GetDirectiveApplied(), r.GetSeq())
	var d rondav1.Directive
	found, err := getProto(b, directiveKey(nodeID, r.GetSeq()), &d)
	if err != nil || !found {
		return err // reported before (a re-sent history): nothing left to do
	}
	var camID, holdID string
	switch body := d.GetBody().(type) {
	case *rondav1.Directive_Hold:
		camID, holdID = body.Hold.GetCameraId(), body.Hold.GetHoldId()
	case *rondav1.Directive_Release:
		camID, holdID = body.Release.GetCameraId(), body.Release.GetHoldId()
	}
	if camID != "" {
		var sh rondav1.StoredHold
		if ok, err := getProto(b, holdKey(camID, holdID), &sh); err != nil {
			return err
		} else if ok && sh.GetDirectiveSeq() == r.GetSeq() {
			switch {
			case r.GetError() != "":
				sh.State, sh.Error = HoldFailed, r.GetError()
				log.Warn("a node could not apply a hold directive", "node", nodeID, "hold", holdID, "err", r.GetError())
			case sh.GetState() == HoldReleasePending:
				sh.State = HoldReleased
			default:
				sh.State = HoldApplied
			}
			if err := putProto(b, holdKey(camID, holdID), &sh); err != nil {
				return err
			}
		}
	}
	return b.Delete(directiveKey(nodeID, r.GetSeq()), nil)
}

// applyHoldChange records a hold the node's own staff placed or released.
func applyHoldChange(b *pebble.Batch, node *rondav1.StoredNode, c *rondav1.HoldChange, seq uint64, log *slog.Logger) error {
	h := c.GetHold()
	nodeID := node.GetInfo().GetNodeId()
	if validID("camera", h.GetCameraId()) != nil || validID("hold", h.GetHoldId()) != nil {
		log.Warn("skipping malformed hold change", "node", nodeID, "seq", seq)
		return nil
	}
	if owned, err := ownedBy(b, h.GetCameraId(), nodeID, seq, "hold change", log); err != nil || !owned {
		return err
	}
	key := holdKey(h.GetCameraId(), h.GetHoldId())
	var sh rondav1.StoredHold
	if _, err := getProto(b, key, &sh); err != nil {
		return err
	}
	if c.GetReleased() {
		if sh.GetHold() == nil {
			sh.Hold, sh.NodeId = h, nodeID
		}
		sh.State = HoldReleased
	} else {
		sh = rondav1.StoredHold{Hold: h, NodeId: nodeID, State: HoldApplied}
	}
	return putProto(b, key, &sh)
}

// PlaceHold places a hold on a camera at the hub: its node keeps the footage
// once it applies the directive (at once if connected, else when it
// reconnects). h.HoldId must be new and unique ("hub-..."); placing the same
// id again changes nothing.
func (s *Store) PlaceHold(ctx context.Context, h *rondav1.HoldInfo) (*rondav1.StoredHold, error) {
	cmd, err := EncodeCommand(CommandHold, &rondav1.HoldCommand{Hold: h, ProposedUnixNano: s.cfg.Now().UnixNano()})
	if err != nil {
		return nil, err
	}
	if _, _, err := s.Apply(ctx, cmd); err != nil {
		return nil, err
	}
	return s.Hold(h.GetCameraId(), h.GetHoldId())
}

// ReleaseHold releases a hold (placed at the hub or at the node).
func (s *Store) ReleaseHold(ctx context.Context, cameraID, holdID, by string) (*rondav1.StoredHold, error) {
	cmd, err := EncodeCommand(CommandHold, &rondav1.HoldCommand{Hold: &rondav1.HoldInfo{CameraId: cameraID, HoldId: holdID},
		Release: true, ReleasedBy: by, ProposedUnixNano: s.cfg.Now().UnixNano()})
	if err != nil {
		return nil, err
	}
	if _, _, err := s.Apply(ctx, cmd); err != nil {
		return nil, err
	}
	return s.Hold(cameraID, holdID)
}

// Hold returns one hold.
func (s *Store) Hold(cameraID, holdID string) (*rondav1.StoredHold, error) {
	var sh rondav1.StoredHold
	found, err := s.fsm.getProto(holdKey(cameraID, holdID), &sh)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: camera %s has no hold %q", ErrNotFound, cameraID, holdID)
	}
	return &sh, nil
}

// Holds lists a camera's holds.
func (s *Store) Holds(cameraID string) []*rondav1.StoredHold {
	return scanAll(s, holdPrefix(cameraID), func() *rondav1.StoredHold { return new(rondav1.StoredHold) })
}

// Directives returns up to limit of the node's directives after seq.
func (s *Store) Directives(nodeID string, after uint64, limit int) []*rondav1.Directive {
	var out []*rondav1.Directive
	_, err := s.fsm.read(func(r pebble.Reader) error {
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: directiveKey(nodeID, after+1), UpperBound: prefixUpperBound(directivePrefix(nodeID))})
		if err != nil {
			return err
		}
		defer it.Close()
		for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
			d := new(rondav1.Directive)
			if err := proto.Unmarshal(it.Value(), d); err != nil {
				return fmt.Errorf("%w: decode %q: %v", ErrSchema, it.Key(), err)
			}
			out = append(out, d)
		}
		return it.Error()
	})
	if err != nil {
		s.log.Error("read directives", "node", nodeID, "error", err)
	}
	return out
}

// AllHolds lists every camera's holds (in camera, then hold id order).
func (s *Store) AllHolds() []*rondav1.StoredHold {
	return scanAll(s, prefixHold, func() *rondav1.StoredHold { return new(rondav1.StoredHold) })
}
