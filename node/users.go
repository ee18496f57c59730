package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/internal/fsutil"
)

// Files in the data directory: the hub's public key (learnt over the
// node's mutually authenticated link) and the newest signed user list.
const (
	hubKeyFile   = "hub-key.pub"
	userListFile = "users.signed.json"
)

// users keeps a node's directory, the hub's key and the signed list on
// disk, so staff log in during a WAN outage and after a restart in one.
type users struct {
	dir string
	kel string
	log interface {
		Warn(string, ...any)
		Info(string, ...any)
	}
	list *auth.NodeDirectory

	mu     sync.Mutex
	hubKey ed25519.PublicKey
	fileMu sync.Mutex // one writer of the files at a time
}

func newUsers(dataDir, kel string, local auth.StaticUsers, log *slog.Logger) *users {
	u := &users{dir: dataDir, kel: kel, log: log, list: auth.NewNodeDirectory(local)}
	if k, err := os.ReadFile(filepath.Join(dataDir, hubKeyFile)); err == nil && len(k) == ed25519.PublicKeySize {
		u.hubKey = k
		if data, err := os.ReadFile(filepath.Join(dataDir, userListFile)); err == nil {
			if l, err := auth.OpenUserList(u.hubKey, data, kel); err != nil {
				log.Warn("the stored user list is not valid; offline login waits for the hub's next one", "err", err)
			} else {
				u.list.SetList(l)
				log.Info("loaded the signed user list", "version", l.Version, "users", len(l.Users))
			}
		}
	}
	return u
}

// HubKey is the hub's public key, nil until learnt.
func (u *users) HubKey() ed25519.PublicKey {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hubKey
}

// UserListVersion implements replication.UserListHandler.
func (u *users) UserListVersion() uint64 { return u.list.Version() }

// SetUserList implements replication.UserListHandler: the key comes from an
// authenticated hub member; a key different from the stored one (the hub's
// token secret was rotated) replaces it and is logged.
func (u *users) SetUserList(from string, data, key []byte) {
	if len(key) != ed25519.PublicKeySize {
		return
	}
	u.fileMu.Lock()
	defer u.fileMu.Unlock()
	u.mu.Lock()
	if !bytes.Equal(u.hubKey, key) {
		if u.hubKey != nil {
			u.log.Warn("the hub's signing key changed (token secret rotated?); taking the new one", "member", from)
		}
		if err := fsutil.WriteAtomic(filepath.Join(u.dir, hubKeyFile), key, 0o600); err != nil {
			u.log.Warn("storing the hub's key", "err", err)
		}
		u.hubKey = bytes.Clone(key)
	}
	pub := u.hubKey
	u.mu.Unlock()
	if len(data) == 0 {
		return
	}
	l, err := auth.OpenUserList(pub, data, u.kel)
	if err != nil {
		u.log.Warn("refusing a user list from the hub", "member", from, "err", err)
		return
	}
	if !u.list.SetList(l) {
		return
	}
	if err := fsutil.WriteAtomic(filepath.Join(u.dir, userListFile), data, 0o600); err != nil {
		u.log.Warn("storing the user list (offline login uses the previous one after a restart)", "err", err)
	}
	u.log.Info("took the hub's user list", "version", l.Version, "users", len(l.Users), "member", from)
}

// Logout implements api.LogoutHandler at the node: the node's own tokens
// (and hub tokens presented here) for the user are void from now on.
func (b *backend) Logout(ctx context.Context, user string) error {
	b.n.users.list.Logout(user, time.Now())
	return nil
}

// CameraKelurahan implements api.CameraLocator.
func (b *backend) CameraKelurahan(ctx context.Context, camera string) (string, error) {
	if _, ok := b.n.byID[camera]; !ok {
		return "", fmt.Errorf("%w: no camera %q at this node; GET /api/v1/cameras lists them", api.ErrNotFound, camera)
	}
	return b.n.cfg.Kelurahan, nil
}

// OwnKelurahan implements api.CameraLocator.
func (b *backend) OwnKelurahan() string { return b.n.cfg.Kelurahan }

// allowLive is the RTSPS re-stream's authorisation: the user as the
// directory has them now, and the live row of the table.
func (n *Node) allowLive(user, camera string) error {
	u, ok := n.users.list.Lookup(user)
	if !ok {
		return errors.New("unknown user")
	}
	return auth.Authorize(auth.Principal{User: u.Name, Role: u.Role, Scope: u.Scope}, auth.ActLive,
		auth.Target{Camera: camera, Kelurahan: n.cfg.Kelurahan, Now: time.Now(), AtNode: true})
}
