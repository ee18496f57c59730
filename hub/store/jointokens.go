package store

// Join tokens: a city admin creates a single-use, short-lived token bound
// to one kelurahan; a new node presents it with its certificate request.
// Consuming it is a Raft command, so it works exactly once across all
// members, even when two of them are asked at the same moment.

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// CommandJoinToken carries a rondav1.JoinTokenCommand.
const CommandJoinToken CommandType = 7

func init() {
	commands[CommandJoinToken] = commandSpec{
		name:   "JoinToken",
		decode: func(p []byte) (proto.Message, error) { return decodeJoinToken(p) },
		apply:  applyJoinToken,
	}
}

func joinTokenKey(id string) []byte { return joinKey(prefixJoinToken, id) }

func decodeJoinToken(payload []byte) (*rondav1.JoinTokenCommand, error) {
	m := new(rondav1.JoinTokenCommand)
	if err := proto.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("%w: JoinToken: %v", ErrBadCommand, err)
	}
	c := m.GetCreate()
	switch {
	case c != nil && (len(c.GetId()) != 64 || c.GetKelurahanCode() == "" || c.GetExpiresUnixNano() <= c.GetCreatedUnixNano()):
		return nil, fmt.Errorf("%w: JoinToken: a token needs an id, a kelurahan and an expiry after its creation", ErrBadCommand)
	case c == nil && (m.GetConsumeId() == "" || validID("node", m.GetNodeId()) != nil):
		return nil, fmt.Errorf("%w: JoinToken: consuming needs the token and a valid node id", ErrBadCommand)
	}
	return m, nil
}

func applyJoinToken(b *pebble.Batch, payload []byte, _ *slog.Logger) (uint64, error) {
	m, err := decodeJoinToken(payload)
	if err != nil {
		return 0, err
	}
	if c := m.GetCreate(); c != nil {
		return 0, putProto(b, joinTokenKey(c.GetId()), c)
	}
	key := joinTokenKey(m.GetConsumeId())
	var t rondav1.StoredJoinToken
	found, err := getProto(b, key, &t)
	switch {
	case err != nil:
		return 0, err
	case !found:
		return 0, fmt.Errorf("%w: unknown join token; ask the city admin for a new one ('ronda certs token')", ErrBadCommand)
	case t.GetUsedByNode() != "":
		return 0, fmt.Errorf("%w: this join token was already used by node %s at %s; a token works once: ask the city admin for a new one",
			ErrBadCommand, t.GetUsedByNode(), time.Unix(0, t.GetUsedUnixNano()).UTC().Format(time.RFC3339))
	case m.GetAtUnixNano() > t.GetExpiresUnixNano():
		return 0, fmt.Errorf("%w: this join token expired at %s; ask the city admin for a new one",
			ErrBadCommand, time.Unix(0, t.GetExpiresUnixNano()).UTC().Format(time.RFC3339))
	}
	t.UsedByNode, t.UsedUnixNano = m.GetNodeId(), m.GetAtUnixNano()
	return 0, putProto(b, key, &t)
}

// CreateJoinToken stores a token's hash, kelurahan and expiry.
func (s *Store) CreateJoinToken(ctx context.Context, t *rondav1.StoredJoinToken) error {
	cmd, err := EncodeCommand(CommandJoinToken, &rondav1.JoinTokenCommand{Create: t})
	if err != nil {
		return err
	}
	_, _, err = s.Apply(ctx, cmd)
	return err
}

// ConsumeJoinToken uses a token for nodeID: it succeeds once, and returns the
// token (its kelurahan) when it does.
func (s *Store) ConsumeJoinToken(ctx context.Context, id, nodeID string) (*rondav1.StoredJoinToken, error) {
	cmd, err := EncodeCommand(CommandJoinToken, &rondav1.JoinTokenCommand{ConsumeId: id, NodeId: nodeID, AtUnixNano: s.cfg.Now().UnixNano()})
	if err != nil {
		return nil, err
	}
	if _, _, err := s.Apply(ctx, cmd); err != nil {
		return nil, err
	}
	var t rondav1.StoredJoinToken
	if found, err := s.fsm.getProto(joinTokenKey(id), &t); err != nil || !found {
		return nil, fmt.Errorf("join token vanished after use: %v", err)
	}
	return &t, nil
}
