package store

// The hub's own audit events: every member's API hands its events to the
// leader in batches; the FSM numbers them (audit_seq) in the log of the
// pseudo-node HubAuditNode and chains them, so they are listed, paged and
// checked exactly like a node's.

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/ronda-jakarta/ronda/internal/auditchain"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// CommandHubAudit carries a rondav1.HubAuditCommand.
const CommandHubAudit CommandType = 9

// HubAuditNode is the node id under which the hub's own events are kept
// (no node may be called so).
const HubAuditNode = "hub"

// MaxHubAuditBatch bounds the events of one command.
const MaxHubAuditBatch = 500

var keyHubAuditHead = []byte("m/hubaudit")

func init() {
	commands[CommandHubAudit] = commandSpec{
		name:   "HubAudit",
		decode: func(p []byte) (proto.Message, error) { return decodeHubAudit(p) },
		apply:  applyHubAudit,
	}
}

func decodeHubAudit(payload []byte) (*rondav1.HubAuditCommand, error) {
	m := new(rondav1.HubAuditCommand)
	if err := proto.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("%w: HubAudit: %v", ErrBadCommand, err)
	}
	if n := len(m.GetEvents()); n == 0 || n > MaxHubAuditBatch {
		return nil, fmt.Errorf("%w: HubAudit: %d events (1..%d)", ErrBadCommand, n, MaxHubAuditBatch)
	}
	return m, nil
}

func applyHubAudit(b *pebble.Batch, payload []byte, log *slog.Logger) (uint64, error) {
	m, err := decodeHubAudit(payload)
	if err != nil {
		return 0, err
	}
	head := &rondav1.StoredNode{Info: &rondav1.NodeInfo{NodeId: HubAuditNode}}
	if _, err := getProto(b, keyHubAuditHead, head); err != nil {
		return 0, err
	}
	for _, e := range m.GetEvents() {
		e = proto.Clone(e).(*rondav1.AuditEvent)
		if e.GetAction() == "" {
			continue
		}
		e.AuditSeq = head.GetAuditSeq() + 1
		e.PrevSha256 = head.GetAuditHeadSha256()
		if len(e.PrevSha256) == 0 {
			e.PrevSha256 = auditchain.Genesis
		}
		if m.GetMember() != "" {
			e.Remote = m.GetMember() + " " + e.GetRemote()
		}
		if err := addAudit(b, head, e, e.GetAtUnixNano(), e.GetAuditSeq(), log); err != nil {
			return 0, err
		}
	}
	return 0, putProto(b, keyHubAuditHead, head)
}

// AddHubAudit commits a batch of the hub's own audit events.
func (s *Store) AddHubAudit(ctx context.Context, member string, events []*rondav1.AuditEvent) error {
	cmd, err := EncodeCommand(CommandHubAudit, &rondav1.HubAuditCommand{Member: member, Events: events})
	if err != nil {
		return err
	}
	_, _, err = s.Apply(ctx, cmd)
	return err
}
