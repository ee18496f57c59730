// Package auth checks passwords and issues and verifies API tokens.
//
// Tokens are HMAC-SHA256 signed claims (user, role, expiry). Every member of
// the hub shares one secret, so a token from one member works on all of them;
// a node has its own. Hub-signed tokens that nodes verify offline, roles with
// scopes and revocation come with the security issue.
package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Sentinel errors.
var (
	ErrBadCredentials = errors.New("wrong user name or password")
	ErrBadToken       = errors.New("invalid or expired token; log in again")
	ErrThrottled      = errors.New("too many failed logins for this user; wait a minute and try again")
)

// User is a configured account.
type User struct {
	Name         string `yaml:"name"`
	PasswordHash string `yaml:"password_hash"` // bcrypt
	Role         string `yaml:"role"`
}

// Claims are what a token asserts.
type Claims struct {
	User    string `json:"u"`
	Role    string `json:"r"`
	Expires int64  `json:"e"` // unix seconds
}

// HashPassword returns a bcrypt hash of password.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(h), err
}

// Authenticator holds the users and the signing secret.
type Authenticator struct {
	users  map[string]User
	secret []byte
	ttl    time.Duration
	now    func() time.Time

	mu       sync.Mutex
	failures map[string][]time.Time
}

// New returns an Authenticator. secret must be at least 32 bytes.
func New(users []User, secret []byte, ttl time.Duration, now func() time.Time) (*Authenticator, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("auth: token secret is %d bytes; it needs at least 32", len(secret))
	}
	if now == nil {
		now = time.Now
	}
	if ttl <= 0 {
		ttl = 12 * time.Hour
	}
	m := map[string]User{}
	for _, u := range users {
		if u.Name == "" || u.PasswordHash == "" || u.Role == "" {
			return nil, fmt.Errorf("auth: user %q needs name, password_hash and role", u.Name)
		}
		m[u.Name] = u
	}
	return &Authenticator{users: m, secret: secret, ttl: ttl, now: now, failures: map[string][]time.Time{}}, nil
}

// Login checks a password and returns a signed token. Five failures within a
// minute lock the user out for the rest of that minute.
func (a *Authenticator) Login(user, password string) (string, Claims, error) {
	now := a.now()
	if a.throttled(user, now) {
		return "", Claims{}, ErrThrottled
	}
	u, ok := a.users[user]
	if !ok {
		// Spend the same time as a real check so names cannot be probed by timing.
		_ = bcrypt.CompareHashAndPassword([]byte("$2a$10$7EqJtq98hPqEX7fNZaFWoO5cqkQ5t3U1kD.0ZbS3S5cZQ6mS1b5y6"), []byte(password))
		a.fail(user, now)
		return "", Claims{}, ErrBadCredentials
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		a.fail(user, now)
		return "", Claims{}, ErrBadCredentials
	}
	c := Claims{User: u.Name, Role: u.Role, Expires: now.Add(a.ttl).Unix()}
	return a.sign(c), c, nil
}

// Verify checks a token's signature and expiry.
func (a *Authenticator) Verify(token string) (Claims, error) {
	payload, sig, ok := strings.Cut(token, ".")
	if !ok {
		return Claims{}, ErrBadToken
	}
	want := a.mac(payload)
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, want) {
		return Claims{}, ErrBadToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return Claims{}, ErrBadToken
	}
	var c Claims
	if json.Unmarshal(raw, &c) != nil || a.now().Unix() >= c.Expires {
		return Claims{}, ErrBadToken
	}
	return c, nil
}

func (a *Authenticator) sign(c Claims) string {
	raw, _ := json.Marshal(c)
	payload := base64.RawURLEncoding.EncodeToString(raw)
	return payload + "." + base64.RawURLEncoding.EncodeToString(a.mac(payload))
}

func (a *Authenticator) mac(payload string) []byte {
	m := hmac.New(sha256.New, a.secret)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

func (a *Authenticator) throttled(user string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	recent := a.failures[user][:0]
	for _, t := range a.failures[user] {
		if now.Sub(t) < time.Minute {
			recent = append(recent, t)
		}
	}
	a.failures[user] = recent
	return len(recent) >= 5
}

func (a *Authenticator) fail(user string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.failures) > 10000 { // bounded: forget everything rather than grow without limit
		a.failures = map[string][]time.Time{}
	}
	a.failures[user] = append(a.failures[user], now)
}
