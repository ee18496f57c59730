package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLoginVerify(t *testing.T) {
	h, err := HashPassword("rahasia")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	a, err := New([]User{{Name: "admin", PasswordHash: h, Role: "admin"}}, []byte(strings.Repeat("k", 32)), time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	tok, c, err := a.Login("admin", "rahasia")
	if err != nil || c.Role != "admin" {
		t.Fatalf("login: %v %+v", err, c)
	}
	if got, err := a.Verify(tok); err != nil || got.User != "admin" {
		t.Fatalf("verify: %v %+v", err, got)
	}
	if _, err := a.Verify(tok[:len(tok)-2] + "xx"); !errors.Is(err, ErrBadToken) {
		t.Fatalf("tampered token: %v", err)
	}
	other, _ := New(nil, []byte(strings.Repeat("z", 32)), time.Hour, clock)
	if _, err := other.Verify(tok); !errors.Is(err, ErrBadToken) {
		t.Fatalf("token from another secret accepted: %v", err)
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
	if _, err := New(nil, []byte("short"), time.Hour, nil); err == nil {
		t.Fatal("short secret accepted")
	}
}
