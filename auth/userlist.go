package auth

// The signed user list a node holds for offline login. The hub builds one
// per kelurahan from its replicated users and signs it with its key; the
// node keeps the newest on disk and checks the signature whenever it loads
// it. Every user is listed (so a node can refuse the tokens of a deleted,
// disabled or logged-out user), but password hashes only of the users whose
// scope covers the kelurahan — its area operators, node admins and RT/RW
// viewers: a stolen node gives away no city-wide account's hash.

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// UserList is the users a node knows.
type UserList struct {
	// Version is the hub's users version (it grows with every change).
	Version   uint64 `json:"version"`
	Kelurahan string `json:"kelurahan"`
	Issued    int64  `json:"issued"` // unix milliseconds
	Users     []User `json:"users"`
}

// SignedUserList is a UserList with the hub's signature.
type SignedUserList struct {
	Payload   []byte `json:"payload"` // the UserList, JSON
	Signature []byte `json:"signature"`
}

// ListFor builds the list for kelurahan kel from every user.
func ListFor(all []User, kel string, version uint64, now time.Time) UserList {
	l := UserList{Version: version, Kelurahan: kel, Issued: now.UnixMilli(), Users: make([]User, 0, len(all))}
	for _, u := range all {
		p := Principal{User: u.Name, Role: u.Role, Scope: u.Scope}
		if p.CityWide() || !p.SeesKelurahan(kel) {
			u.PasswordHash = ""
		}
		l.Users = append(l.Users, u)
	}
	return l
}

// SignUserList signs l with the hub's key.
func SignUserList(key ed25519.PrivateKey, l UserList) ([]byte, error) {
	payload, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	return json.Marshal(SignedUserList{Payload: payload, Signature: Sign(key, "user-list", payload)})
}

// OpenUserList checks a signed list against the hub's public key and that
// it is the list of kelurahan kel.
func OpenUserList(pub ed25519.PublicKey, data []byte, kel string) (UserList, error) {
	var s SignedUserList
	if err := json.Unmarshal(data, &s); err != nil {
		return UserList{}, fmt.Errorf("user list: not a signed list: %v", err)
	}
	if !VerifySignature(pub, "user-list", s.Payload, s.Signature) {
		return UserList{}, errors.New("user list: the hub's signature does not match (tampered with, or signed by another hub)")
	}
	var l UserList
	if err := json.Unmarshal(s.Payload, &l); err != nil {
		return UserList{}, fmt.Errorf("user list: %v", err)
	}
	if l.Kelurahan != kel {
		return UserList{}, fmt.Errorf("user list: it is kelurahan %s's, not %s's", l.Kelurahan, kel)
	}
	return l, nil
}

// NodeDirectory is a node's users: its own configured users (node-local
// admins, break-glass accounts) and the hub's signed list. Logging out at
// the node voids the node's own tokens for that user.
type NodeDirectory struct {
	local StaticUsers

	mu      sync.RWMutex
	list    *UserList
	byName  map[string]User
	logouts map[string]int64
}

// NewNodeDirectory returns a directory with the node's configured users.
func NewNodeDirectory(local StaticUsers) *NodeDirectory {
	return &NodeDirectory{local: local, logouts: map[string]int64{}}
}

// SetList installs a (verified) list newer than the one held.
func (d *NodeDirectory) SetList(l UserList) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.list != nil && l.Version <= d.list.Version {
		return false
	}
	d.list = &l
	d.byName = make(map[string]User, len(l.Users))
	for _, u := range l.Users {
		d.byName[u.Name] = u
	}
	return true
}

// Version is the held list's version (0: none).
func (d *NodeDirectory) Version() uint64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.list == nil {
		return 0
	}
	return d.list.Version
}

// Logout voids the tokens issued to user until now at this node.
func (d *NodeDirectory) Logout(user string, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.logouts) > 100000 {
		d.logouts = map[string]int64{}
	}
	d.logouts[user] = now.UnixMilli() + 1
}

// Lookup implements Directory: configured users first.
func (d *NodeDirectory) Lookup(name string) (User, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	u, ok := d.local[name]
	if !ok {
		u, ok = d.byName[name]
	}
	if ok && d.logouts[name] > u.ValidAfter {
		u.ValidAfter = d.logouts[name]
	}
	return u, ok
}

// Complete implements Directory: a node knows every user once it holds a list.
func (d *NodeDirectory) Complete() bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.list != nil
}
