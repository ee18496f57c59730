package store

import (
	"errors"
	"path/filepath"
	"testing"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

func revocationCmd(t *testing.T, identity, reason string, lift bool) []byte {
	t.Helper()
	cmd, err := EncodeCommand(CommandRevocation, &rondav1.RevocationCommand{
		Revocation: &rondav1.Revocation{Identity: identity, Reason: reason, By: "admin", AtUnixNano: 7}, Lift: lift})
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func revoked(t *testing.T, f *fsm, identity string) (*rondav1.Revocation, bool) {
	t.Helper()
	var r rondav1.Revocation
	found, err := f.getProto(revokedKey(identity), &r)
	if err != nil {
		t.Fatal(err)
	}
	return &r, found
}

func TestRevocationsAreAppliedOnceAndCanBeLifted(t *testing.T) {
	f := newTestFSM(t, filepath.Join(t.TempDir(), "fsm"))
	const id = "spiffe://jakarta/kelurahan/31.71.01.1001/node/n1"
	if r := applyAt(t, f, 1, revocationCmd(t, id, "stolen", false)); r.err != nil {
		t.Fatal(r.err)
	}
	// Revoking again keeps the first revocation (who and why).
	if r := applyAt(t, f, 2, revocationCmd(t, id, "again", false)); r.err != nil {
		t.Fatal(r.err)
	}
	if r, ok := revoked(t, f, id); !ok || r.Reason != "stolen" || r.By != "admin" {
		t.Fatalf("revocation %v (%v), want the first one", r, ok)
	}
	if _, ok := revoked(t, f, "spiffe://jakarta/kelurahan/31.71.01.1001/node/n2"); ok {
		t.Fatal("another node is revoked too")
	}
	for i, bad := range []struct{ id, reason string }{{"n1", "x"}, {id, ""}} {
		if r := applyAt(t, f, uint64(3+i), revocationCmd(t, bad.id, bad.reason, false)); !errors.Is(r.err, ErrBadCommand) {
			t.Fatalf("revoking %q with reason %q: %v, want ErrBadCommand", bad.id, bad.reason, r.err)
		}
	}
	if r := applyAt(t, f, 5, revocationCmd(t, id, "", true)); r.err != nil {
		t.Fatal(r.err)
	}
	if _, ok := revoked(t, f, id); ok {
		t.Fatal("the revocation was not lifted")
	}
}
