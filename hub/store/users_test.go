package store

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ronda-jakarta/ronda/internal/auditchain"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

func userCmd(t *testing.T, c *rondav1.UserCommand) []byte {
	t.Helper()
	cmd, err := EncodeCommand(CommandUser, c)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func storedUser(t *testing.T, f *fsm, name string) (*rondav1.StoredUser, bool) {
	t.Helper()
	var u rondav1.StoredUser
	found, err := f.getProto(userKey(name), &u)
	if err != nil {
		t.Fatal(err)
	}
	return &u, found
}

func usersVersion(t *testing.T, f *fsm) uint64 {
	t.Helper()
	var v uint64
	if _, err := f.read(func(r pebble.Reader) error { var err error; v, err = readUint64(r, keyUsersVersion); return err }); err != nil {
		t.Fatal(err)
	}
	return v
}

// Users: created, replaced (creation time kept, a logout never moved
// back), logged out, deleted; every command bumps the users version that
// nodes' user lists carry; malformed commands change nothing.
func TestUsersAreReplicatedWithAVersion(t *testing.T) {
	f := newTestFSM(t, filepath.Join(t.TempDir(), "fsm"))
	rw := &rondav1.StoredUser{Name: "rw05", PasswordHash: "$2a$x", Role: "viewer", Cameras: []string{"3171011001-cam1"}, CreatedUnixNano: 10}
	if r := applyAt(t, f, 1, userCmd(t, &rondav1.UserCommand{User: rw})); r.err != nil {
		t.Fatal(r.err)
	}
	if r := applyAt(t, f, 2, userCmd(t, &rondav1.UserCommand{User: &rondav1.StoredUser{Name: "rw05", ValidAfterUnixMilli: 5000}, Logout: true})); r.err != nil {
		t.Fatal(r.err)
	}
	changed := &rondav1.StoredUser{Name: "rw05", PasswordHash: "$2a$y", Role: "viewer", Cameras: []string{"3171011001-cam2"}, CreatedUnixNano: 99, ValidAfterUnixMilli: 10}
	if r := applyAt(t, f, 3, userCmd(t, &rondav1.UserCommand{User: changed})); r.err != nil {
		t.Fatal(r.err)
	}
	u, ok := storedUser(t, f, "rw05")
	if !ok || u.GetCreatedUnixNano() != 10 || u.GetValidAfterUnixMilli() != 5000 || u.GetCameras()[0] != "3171011001-cam2" {
		t.Fatalf("after replace: %v %+v", ok, u)
	}
	if v := usersVersion(t, f); v != 3 {
		t.Fatalf("users version %d, want 3", v)
	}
	// A logout of a configured user (not replicated) is kept on its own.
	if r := applyAt(t, f, 4, userCmd(t, &rondav1.UserCommand{User: &rondav1.StoredUser{Name: "admin", ValidAfterUnixMilli: 7000}, Logout: true})); r.err != nil {
		t.Fatal(r.err)
	}
	var at uint64
	_, _ = f.read(func(r pebble.Reader) error {
		var err error
		at, err = readUint64(r, joinKey(prefixLogout, "admin"))
		return err
	})
	if at != 7000 {
		t.Fatalf("configured user's logout: %d", at)
	}
	for i, bad := range []*rondav1.UserCommand{
		{User: &rondav1.StoredUser{Name: "no spaces", PasswordHash: "h", Role: "admin"}},
		{User: &rondav1.StoredUser{Name: "nohash", Role: "admin"}},
	} {
		if r := applyAt(t, f, uint64(5+i), userCmd(t, bad)); !errors.Is(r.err, ErrBadCommand) {
			t.Fatalf("bad command %d: %v", i, r.err)
		}
	}
	if r := applyAt(t, f, 7, userCmd(t, &rondav1.UserCommand{User: &rondav1.StoredUser{Name: "rw05"}, Delete: true})); r.err != nil {
		t.Fatal(r.err)
	}
	if _, ok := storedUser(t, f, "rw05"); ok {
		t.Fatal("deleted user still there")
	}
	if r := applyAt(t, f, 8, userCmd(t, &rondav1.UserCommand{User: &rondav1.StoredUser{Name: "rw05"}, Delete: true})); !errors.Is(r.err, ErrNotFound) {
		t.Fatalf("deleting a missing user: %v", r.err)
	}
	if v := usersVersion(t, f); v != 5 {
		t.Fatalf("users version %d, want 5", v)
	}
}

// The hub's own audit events are numbered 1, 2, 3... in the log of the
// pseudo-node "hub", chained, and carry the member that saw them.
func TestHubAuditEventsAreNumberedAndChained(t *testing.T) {
	f := newTestFSM(t, filepath.Join(t.TempDir(), "fsm"))
	for i, batch := range [][]string{{"login", "live"}, {"denied-camera"}} {
		var evs []*rondav1.AuditEvent
		for _, a := range batch {
			evs = append(evs, &rondav1.AuditEvent{AtUnixNano: int64(100 + i), User: "rw05", Action: a, Remote: "10.0.0.9:5", Outcome: "ok"})
		}
		cmd, err := EncodeCommand(CommandHubAudit, &rondav1.HubAuditCommand{Member: "h2", Events: evs})
		if err != nil {
			t.Fatal(err)
		}
		if r := applyAt(t, f, uint64(i+1), cmd); r.err != nil {
			t.Fatal(r.err)
		}
	}
	var got []*rondav1.StoredAuditEvent
	if _, err := f.read(func(r pebble.Reader) error {
		var err error
		got, err = readAudit(r, auditPrefix(HubAuditNode), auditPrefix(HubAuditNode), 100)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d events", len(got))
	}
	head, seq := auditchain.Genesis, uint64(0)
	for _, s := range got {
		e := s.GetEvent()
		if why := auditchain.Check(seq, head, e); why != "" || s.GetChainError() != "" {
			t.Fatalf("event %d: %s %s", e.GetAuditSeq(), why, s.GetChainError())
		}
		if e.GetRemote() != "h2 10.0.0.9:5" {
			t.Fatalf("remote %q", e.GetRemote())
		}
		seq, head = e.GetAuditSeq(), auditchain.Hash(e)
	}
}
