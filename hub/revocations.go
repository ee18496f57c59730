package hub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/certs"
	"github.com/ronda-jakarta/ronda/hub/store"
)

// revoked is the deny-list check every handshake and the per-second sweep
// use: this member's Raft state.
func (h *Hub) revoked(identity string) (string, bool) {
	st := h.ready.Load()
	if st == nil {
		return "", false
	}
	r, ok := st.Revoked(identity)
	if !ok {
		return "", false
	}
	return r.GetReason(), true
}

// verifyNotRevoked refuses a revoked peer during a TLS handshake (Raft).
func (h *Hub) verifyNotRevoked(cs tls.ConnectionState) error {
	id, err := certs.PeerIdentity(cs)
	if err != nil {
		return nil // the kind check refuses it
	}
	if reason, ok := h.revoked(id.URI()); ok {
		return fmt.Errorf("certificate %s is revoked (%s)", id, reason)
	}
	return nil
}

// identityOf turns a revocation request into a SPIFFE identity of this city.
func (b *backend) identityOf(req api.RevocationRequest) (string, error) {
	city := b.h.bundle.Identity.City
	switch {
	case req.Identity != "":
		if !strings.HasPrefix(req.Identity, "spiffe://") {
			return "", fmt.Errorf("%w: identity %q is not a spiffe:// URI", api.ErrBadRequest, req.Identity)
		}
		return req.Identity, nil
	case req.Member != "":
		return certs.Identity{City: city, Kind: certs.KindHub, Member: req.Member}.URI(), nil
	}
	n, ok := b.h.store.Node(req.NodeID)
	if !ok {
		return "", fmt.Errorf("%w: no node %q in the catalog (GET /api/v1/nodes lists them; or give its 'identity')", api.ErrNotFound, req.NodeID)
	}
	return certs.Identity{City: city, Kind: certs.KindNode, Kelurahan: n.GetInfo().GetKelurahanCode(), NodeID: req.NodeID}.URI(), nil
}

func (b *backend) Revoke(ctx context.Context, req api.RevocationRequest, user string) (api.Revocation, error) {
	id, err := b.identityOf(req)
	if err != nil {
		return api.Revocation{}, err
	}
	if id == b.h.bundle.Identity.URI() {
		return api.Revocation{}, fmt.Errorf("%w: %s is this member's own certificate; revoke it from another member", api.ErrBadRequest, id)
	}
	if err := b.h.store.Revoke(ctx, id, req.Reason, user); err != nil {
		return api.Revocation{}, storeError(err)
	}
	r, _ := b.h.store.Revoked(id)
	return api.Revocation{Identity: id, Reason: r.GetReason(), By: r.GetBy(), At: time.Unix(0, r.GetAtUnixNano()).UTC()}, nil
}

func (b *backend) LiftRevocation(ctx context.Context, req api.RevocationRequest, user string) (string, error) {
	id, err := b.identityOf(req)
	if err != nil {
		return "", err
	}
	if _, ok := b.h.store.Revoked(id); !ok {
		return "", fmt.Errorf("%w: %s is not revoked", api.ErrNotFound, id)
	}
	return id, storeError(b.h.store.LiftRevocation(ctx, id, user))
}

func (b *backend) Revocations(ctx context.Context) ([]api.Revocation, error) {
	out := []api.Revocation{}
	for _, r := range b.h.store.Revocations() {
		out = append(out, api.Revocation{Identity: r.GetIdentity(), Reason: r.GetReason(), By: r.GetBy(), At: time.Unix(0, r.GetAtUnixNano()).UTC()})
	}
	return out, nil
}

// storeError maps a store write's error to the API's.
func storeError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNoLeader), errors.Is(err, store.ErrLeaderUnreachable), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %v (the hub has no reachable leader; retry in a few seconds)", api.ErrUnavailable, err)
	}
	return holdErr(err)
}
