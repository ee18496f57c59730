// Package auth checks passwords, issues and verifies API tokens, and holds
// the one authorisation table (policy.go).
//
// The hub signs its tokens with Ed25519 (a key every member derives from the
// shared token secret), so every node verifies a hub token offline with the
// public key it learnt over its mutually authenticated link. A node signs
// the tokens of its offline logins with its own secret (HMAC-SHA256); those
// are valid at that node only. A token carries its issue time: a user's
// ValidAfter (set by logout, a role change or disabling) voids every token
// issued before it, at the hub at once and at each node with the next
// signed user list.
package auth

import (
	"crypto/ed25519"
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

// User is an account: from a config file, or the hub's replicated users.
type User struct {
	Name         string `yaml:"name" json:"name"`
	PasswordHash string `yaml:"password_hash" json:"password_hash,omitempty"` // bcrypt
	Role         string `yaml:"role" json:"role"`
	Scope        Scope  `yaml:"scope,omitempty" json:"scope,omitzero"`
	Disabled     bool   `yaml:"disabled,omitempty" json:"disabled,omitempty"`
	// ValidAfter (unix milliseconds): tokens issued before it are void.
	ValidAfter int64 `yaml:"-" json:"valid_after,omitempty"`
}

// Claims are what a token asserts.
type Claims struct {
	User    string `json:"u"`
	Role    string `json:"r"`
	Scope   Scope  `json:"s,omitzero"`
	Issuer  string `json:"iss"` // "hub" or "node:<id>"
	Issued  int64  `json:"iat"` // unix milliseconds
	Expires int64  `json:"e"`   // unix seconds
}

// Principal is who the claims name.
func (c Claims) Principal() Principal { return Principal{User: c.User, Role: c.Role, Scope: c.Scope} }

// IssuerHub is the issuer of hub tokens.
const IssuerHub = "hub"

// HashPassword returns a bcrypt hash of password.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(h), err
}

// Directory finds users by name.
type Directory interface {
	Lookup(name string) (User, bool)
	// Complete reports whether the directory knows every user (a node that
	// has not received a signed user list yet does not).
	Complete() bool
}

// StaticUsers is a Directory of configured users.
type StaticUsers map[string]User

// Lookup implements Directory.
func (s StaticUsers) Lookup(name string) (User, bool) { u, ok := s[name]; return u, ok }

// Complete implements Directory.
func (s StaticUsers) Complete() bool { return true }

// NewStaticUsers checks configured users and indexes them.
func NewStaticUsers(users []User) (StaticUsers, error) {
	m := StaticUsers{}
	for _, u := range users {
		if u.Name == "" || u.PasswordHash == "" || u.Role == "" {
			return nil, fmt.Errorf("auth: user %q needs name, password_hash and role", u.Name)
		}
		if err := CheckRole(u.Role, u.Scope, nil); err != nil {
			return nil, fmt.Errorf("auth: user %q: %v", u.Name, err)
		}
		if _, dup := m[u.Name]; dup {
			return nil, fmt.Errorf("auth: user %q is listed twice", u.Name)
		}
		m[u.Name] = u
	}
	return m, nil
}

// Options configure an Authenticator.
type Options struct {
	// Issuer is IssuerHub, or "node:<node id>".
	Issuer string
	// Secret (32+ bytes) signs the tokens of a node's own logins.
	Secret []byte
	// SigningKey (hub) signs hub tokens; DeriveSigningKey makes it.
	SigningKey ed25519.PrivateKey
	// HubKey (node) returns the hub's public key once the node knows it.
	HubKey func() ed25519.PublicKey
	// Users finds users (required).
	Users Directory
	// TTL of a token (default 1 h).
	TTL time.Duration
	Now func() time.Time
}

// Authenticator logs users in and verifies tokens.
type Authenticator struct {
	o Options

	mu       sync.Mutex
	failures map[string][]time.Time
}

// New returns an Authenticator.
func New(o Options) (*Authenticator, error) {
	if len(o.Secret) < 32 {
		return nil, fmt.Errorf("auth: token secret is %d bytes; it needs at least 32", len(o.Secret))
	}
	if o.Issuer == IssuerHub && len(o.SigningKey) != ed25519.PrivateKeySize {
		return nil, errors.New("auth: a hub authenticator needs its signing key")
	}
	if o.Issuer == "" || o.Users == nil {
		return nil, errors.New("auth: issuer and users are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TTL <= 0 {
		o.TTL = time.Hour
	}
	return &Authenticator{o: o, failures: map[string][]time.Time{}}, nil
}

// TTL is how long a token lasts.
func (a *Authenticator) TTL() time.Duration { return a.o.TTL }

// DeriveSigningKey makes the hub's Ed25519 signing key from the token
// secret every member shares, so all members sign alike.
func DeriveSigningKey(secret []byte) ed25519.PrivateKey {
	seed := sha256.Sum256(append([]byte("ronda hub signing key v1\x00"), secret...))
	return ed25519.NewKeyFromSeed(seed[:])
}

// Sign signs payload for a purpose ("token", "user-list", "checkpoint"...),
// so a signature made for one never passes as another.
func Sign(key ed25519.PrivateKey, purpose string, payload []byte) []byte {
	return ed25519.Sign(key, signed(purpose, payload))
}

// VerifySignature checks a Sign signature.
func VerifySignature(pub ed25519.PublicKey, purpose string, payload, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, signed(purpose, payload), sig)
}

func signed(purpose string, payload []byte) []byte {
	return append([]byte("ronda/"+purpose+"\x00"), payload...)
}

// Login checks a password and returns a signed token. Five failures within a
// minute lock the user out for the rest of that minute.
func (a *Authenticator) Login(user, password string) (string, Claims, error) {
	now := a.o.Now()
	if a.throttled(user, now) {
		return "", Claims{}, ErrThrottled
	}
	u, ok := a.o.Users.Lookup(user)
	if !ok || u.PasswordHash == "" || u.Disabled {
		// Spend the same time as a real check so names cannot be probed by timing.
		_ = bcrypt.CompareHashAndPassword([]byte("$2a$10$7EqJtq98hPqEX7fNZaFWoO5cqkQ5t3U1kD.0ZbS3S5cZQ6mS1b5y6"), []byte(password))
		a.fail(user, now)
		return "", Claims{}, ErrBadCredentials
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		a.fail(user, now)
		return "", Claims{}, ErrBadCredentials
	}
	return a.Issue(u)
}

// Issue makes a token for u (after Login, or to refresh a valid token).
func (a *Authenticator) Issue(u User) (string, Claims, error) {
	now := a.o.Now()
	c := Claims{User: u.Name, Role: u.Role, Scope: u.Scope, Issuer: a.o.Issuer, Issued: now.UnixMilli(), Expires: now.Add(a.o.TTL).Unix()}
	raw, err := json.Marshal(c)
	if err != nil {
		return "", Claims{}, err
	}
	payload := base64.RawURLEncoding.EncodeToString(raw)
	var sig []byte
	if a.o.Issuer == IssuerHub {
		sig = Sign(a.o.SigningKey, "token", []byte(payload))
	} else {
		sig = a.mac(payload)
	}
	return payload + "." + base64.RawURLEncoding.EncodeToString(sig), c, nil
}

// Verify checks a token's signature and expiry, then the user as the
// directory has it now: a deleted or disabled user, or a token issued
// before the user's ValidAfter (logout), is refused; the role and scope are
// the current ones.
func (a *Authenticator) Verify(token string) (Claims, error) {
	payload, sigText, ok := strings.Cut(token, ".")
	if !ok {
		return Claims{}, ErrBadToken
	}
	sig, err1 := base64.RawURLEncoding.DecodeString(sigText)
	raw, err2 := base64.RawURLEncoding.DecodeString(payload)
	var c Claims
	if err1 != nil || err2 != nil || json.Unmarshal(raw, &c) != nil {
		return Claims{}, ErrBadToken
	}
	switch {
	case c.Issuer == IssuerHub:
		var pub ed25519.PublicKey
		if a.o.Issuer == IssuerHub {
			pub = a.o.SigningKey.Public().(ed25519.PublicKey)
		} else if a.o.HubKey != nil {
			pub = a.o.HubKey()
		}
		if pub == nil {
			return Claims{}, fmt.Errorf("%w (this node has not learnt the hub's key yet: log in here, at the node)", ErrBadToken)
		}
		if !VerifySignature(pub, "token", []byte(payload), sig) {
			return Claims{}, ErrBadToken
		}
	case c.Issuer == a.o.Issuer:
		if !hmac.Equal(sig, a.mac(payload)) {
			return Claims{}, ErrBadToken
		}
	default:
		return Claims{}, fmt.Errorf("%w (the token was issued by %s and is valid there only)", ErrBadToken, c.Issuer)
	}
	if a.o.Now().Unix() >= c.Expires {
		return Claims{}, ErrBadToken
	}
	u, found := a.o.Users.Lookup(c.User)
	switch {
	case !found && (c.Issuer != IssuerHub || a.o.Users.Complete()):
		return Claims{}, fmt.Errorf("%w (user %q no longer exists)", ErrBadToken, c.User)
	case !found:
		return c, nil // a node without a user list trusts the hub's signed claims
	case u.Disabled:
		return Claims{}, fmt.Errorf("%w (user %q is disabled)", ErrBadToken, c.User)
	case c.Issued < u.ValidAfter:
		return Claims{}, fmt.Errorf("%w (the user logged out or was changed since this token was issued)", ErrBadToken)
	}
	c.Role, c.Scope = u.Role, u.Scope
	return c, nil
}

func (a *Authenticator) mac(payload string) []byte {
	m := hmac.New(sha256.New, a.o.Secret)
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

// Refresh returns a fresh token for a valid one, with the user as the
// directory has it now; users a node knows only from a hub token's claims
// log in again instead.
func (a *Authenticator) Refresh(token string) (string, Claims, error) {
	c, err := a.Verify(token)
	if err != nil {
		return "", Claims{}, err
	}
	u, ok := a.o.Users.Lookup(c.User)
	if !ok {
		return "", Claims{}, fmt.Errorf("%w (this node does not know user %q yet; log in again)", ErrBadToken, c.User)
	}
	return a.Issue(u)
}
