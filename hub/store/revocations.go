package store

// Revocations: a deny-list of certificate identities in the Raft state, so
// every member refuses a stolen or retired node's (or member's) certificate
// and closes its connections. Lifting a revocation is a command too.

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// CommandRevocation carries a rondav1.RevocationCommand.
const CommandRevocation CommandType = 6

func init() {
	commands[CommandRevocation] = commandSpec{
		name:   "Revocation",
		decode: func(p []byte) (proto.Message, error) { return decodeRevocation(p) },
		apply:  applyRevocation,
	}
}

func revokedKey(identity string) []byte { return joinKey(prefixRevoked, identity) }

func decodeRevocation(payload []byte) (*rondav1.RevocationCommand, error) {
	m := new(rondav1.RevocationCommand)
	if err := proto.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("%w: Revocation: %v", ErrBadCommand, err)
	}
	r := m.GetRevocation()
	switch {
	case !strings.HasPrefix(r.GetIdentity(), "spiffe://") || strings.ContainsRune(r.GetIdentity(), 0) || len(r.GetIdentity()) > 512:
		return nil, fmt.Errorf("%w: Revocation: identity %q is not a spiffe:// certificate identity", ErrBadCommand, r.GetIdentity())
	case !m.GetLift() && r.GetReason() == "":
		return nil, fmt.Errorf("%w: Revocation: a reason is required", ErrBadCommand)
	}
	return m, nil
}

func applyRevocation(b *pebble.Batch, payload []byte, _ *slog.Logger) (uint64, error) {
	m, err := decodeRevocation(payload)
	if err != nil {
		return 0, err
	}
	key := revokedKey(m.GetRevocation().GetIdentity())
	if m.GetLift() {
		return 0, b.Delete(key, nil)
	}
	var old rondav1.Revocation
	if found, err := getProto(b, key, &old); err != nil || found {
		return 0, err // revoked already: the first revocation stands
	}
	return 0, putProto(b, key, m.GetRevocation())
}

// Revoke denies identity on every member (at is set by the proposer).
func (s *Store) Revoke(ctx context.Context, identity, reason, by string) error {
	cmd, err := EncodeCommand(CommandRevocation, &rondav1.RevocationCommand{Revocation: &rondav1.Revocation{
		Identity: identity, Reason: reason, By: by, AtUnixNano: s.cfg.Now().UnixNano()}})
	if err != nil {
		return err
	}
	_, _, err = s.Apply(ctx, cmd)
	return err
}

// LiftRevocation lets identity connect again.
func (s *Store) LiftRevocation(ctx context.Context, identity, by string) error {
	cmd, err := EncodeCommand(CommandRevocation, &rondav1.RevocationCommand{Revocation: &rondav1.Revocation{Identity: identity, By: by}, Lift: true})
	if err != nil {
		return err
	}
	_, _, err = s.Apply(ctx, cmd)
	return err
}

// Revoked reports whether identity is revoked, and why (this member's state).
func (s *Store) Revoked(identity string) (*rondav1.Revocation, bool) {
	var r rondav1.Revocation
	found, err := s.fsm.getProto(revokedKey(identity), &r)
	if err != nil || !found {
		return nil, false
	}
	return &r, true
}

// Revocations lists the revoked identities.
func (s *Store) Revocations() []*rondav1.Revocation {
	return scanAll(s, prefixRevoked, func() *rondav1.Revocation { return new(rondav1.Revocation) })
}
