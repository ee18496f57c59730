package auth

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestLoginVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	users, err := NewStaticUsers([]User{{Name: "admin", PasswordHash: mustHash(t, "rahasia"), Role: "admin"}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Issuer: "node:n1", Secret: []byte(strings.Repeat("k", 32)), Users: users, TTL: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	tok, c, err := a.Login("admin", "rahasia")
	if err != nil || c.Role != "admin" || c.Issuer != "node:n1" {
		t.Fatalf("login: %v %+v", err, c)
	}
	if got, err := a.Verify(tok); err != nil || got.User != "admin" {
		t.Fatalf("verify: %v %+v", err, got)
	}
	if _, err := a.Verify(tok[:len(tok)-2] + "xx"); !errors.Is(err, ErrBadToken) {
		t.Fatalf("tampered token: %v", err)
	}
	other, _ := New(Options{Issuer: "node:n1", Secret: []byte(strings.Repeat("z", 32)), Users: users, Now: clock})
	if _, err := other.Verify(tok); !errors.Is(err, ErrBadToken) {
		t.Fatalf("token from another secret accepted: %v", err)
	}
	n2, _ := New(Options{Issuer: "node:n2", Secret: []byte(strings.Repeat("k", 32)), Users: users, Now: clock})
	if _, err := n2.Verify(tok); !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), "node:n1") {
		t.Fatalf("a node token at another node: %v", err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := a.Verify(tok); !errors.Is(err, ErrBadToken) {
		t.Fatalf("expired token: %v", err)
	}
	for i := 0; i < 5; i++ {
		if _, _, err := a.Login("admin", "salah"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("wrong password %d: %v", i, err)
		}
	}
	if _, _, err := a.Login("admin", "rahasia"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("after 5 failures: %v, want throttled", err)
	}
	now = now.Add(61 * time.Second)
	if _, _, err := a.Login("admin", "rahasia"); err != nil {
		t.Fatalf("after the lockout minute: %v", err)
	}
	if _, err := New(Options{Issuer: "node:n1", Secret: []byte("short"), Users: users}); err == nil {
		t.Fatal("short secret accepted")
	}
}

// A hub token verifies at a node offline with the hub's public key; the
// node's signed user list decides whether the user still may: logout,
// disabling and deletion at the hub reach the node with the next list.
func TestHubTokenAtNodeWithSignedList(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	secret := []byte(strings.Repeat("h", 32))
	key := DeriveSigningKey(secret)
	viewer := User{Name: "rw05", PasswordHash: mustHash(t, "pw-rw05-xx"), Role: RoleViewer, Scope: Scope{Cameras: []string{"3171011001-cam1"}}}
	admin := User{Name: "kota", PasswordHash: mustHash(t, "pw-admin-x"), Role: RoleAdmin}
	hubDir := StaticUsers{"rw05": viewer, "kota": admin}
	hub, err := New(Options{Issuer: IssuerHub, Secret: secret, SigningKey: key, Users: hubDir, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := hub.Login("rw05", "pw-rw05-xx")
	if err != nil {
		t.Fatal(err)
	}
	nodeDir := NewNodeDirectory(StaticUsers{})
	var hubKey ed25519.PublicKey
	node, err := New(Options{Issuer: "node:n1", Secret: []byte(strings.Repeat("n", 32)), Users: nodeDir, Now: clock,
		HubKey: func() ed25519.PublicKey { return hubKey }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.Verify(tok); !errors.Is(err, ErrBadToken) {
		t.Fatalf("before the node knows the hub's key: %v", err)
	}
	hubKey = key.Public().(ed25519.PublicKey)
	if c, err := node.Verify(tok); err != nil || c.Role != RoleViewer {
		t.Fatalf("hub token at the node, no list yet: %v %+v", err, c)
	}

	// The signed list: the viewer's hash is there (scoped to this
	// kelurahan), the city admin's is not.
	signed, err := SignUserList(key, ListFor([]User{viewer, admin}, "31.71.01.1001", 1, now))
	if err != nil {
		t.Fatal(err)
	}
	l, err := OpenUserList(hubKey, signed, "31.71.01.1001")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range l.Users {
		if (u.Name == "rw05") != (u.PasswordHash != "") {
			t.Fatalf("password hash of %s in the list: %q", u.Name, u.PasswordHash)
		}
	}
	if _, err := OpenUserList(hubKey, signed, "31.71.01.1002"); err == nil {
		t.Fatal("another kelurahan's list accepted")
	}
	bad := []byte(strings.Replace(string(signed), `"payload":"`, `"payload":"A`, 1))
	if _, err := OpenUserList(hubKey, bad, "31.71.01.1001"); err == nil {
		t.Fatal("a tampered list accepted")
	}
	nodeDir.SetList(l)

	// Offline login at the node with the list: a node token.
	ntok, nc, err := node.Login("rw05", "pw-rw05-xx")
	if err != nil || nc.Issuer != "node:n1" {
		t.Fatalf("offline login: %v %+v", err, nc)
	}
	if _, _, err := node.Login("kota", "pw-admin-x"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a city admin has no hash at the node: %v", err)
	}

	// Logout at the hub: ValidAfter in the next list voids both tokens.
	now = now.Add(time.Minute)
	viewer.ValidAfter = now.UnixMilli()
	signed, _ = SignUserList(key, ListFor([]User{viewer, admin}, "31.71.01.1001", 2, now))
	l, _ = OpenUserList(hubKey, signed, "31.71.01.1001")
	nodeDir.SetList(l)
	for name, tk := range map[string]string{"hub": tok, "node": ntok} {
		if _, err := node.Verify(tk); !errors.Is(err, ErrBadToken) {
			t.Fatalf("%s token after logout: %v", name, err)
		}
	}
	// Deleted at the hub: unknown to a node holding a list.
	tok2, _, _ := hub.Login("kota", "pw-admin-x")
	signed, _ = SignUserList(key, ListFor([]User{viewer}, "31.71.01.1001", 3, now))
	l, _ = OpenUserList(hubKey, signed, "31.71.01.1001")
	nodeDir.SetList(l)
	if _, err := node.Verify(tok2); !errors.Is(err, ErrBadToken) {
		t.Fatalf("a deleted user's hub token: %v", err)
	}
	// An older list never replaces a newer one.
	old, _ := SignUserList(key, ListFor([]User{viewer, admin}, "31.71.01.1001", 1, now))
	l, _ = OpenUserList(hubKey, old, "31.71.01.1001")
	if nodeDir.SetList(l) || nodeDir.Version() != 3 {
		t.Fatalf("older list taken: version %d", nodeDir.Version())
	}
}
