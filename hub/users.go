package hub

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/hub/store"
	"github.com/ronda-jakarta/ronda/kelurahan"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// hubUsers is the hub's directory: hub.yaml's users (each member's
// break-glass accounts, read-only through the API) and the replicated ones.
type hubUsers struct {
	cfg   auth.StaticUsers
	store *store.Store
}

func (d hubUsers) Lookup(name string) (auth.User, bool) {
	if u, ok := d.cfg[name]; ok {
		u.ValidAfter = max(u.ValidAfter, d.store.LoggedOutAt(name))
		return u, true
	}
	su, ok := d.store.User(name)
	if !ok {
		return auth.User{}, false
	}
	return userFromStored(su), true
}

func (d hubUsers) Complete() bool { return true }

func userFromStored(su *rondav1.StoredUser) auth.User {
	return auth.User{Name: su.GetName(), PasswordHash: su.GetPasswordHash(), Role: su.GetRole(),
		Scope:    auth.Scope{Areas: su.GetAreas(), Cameras: su.GetCameras(), PlaybackHours: int(su.GetPlaybackHours())},
		Disabled: su.GetDisabled(), ValidAfter: su.GetValidAfterUnixMilli()}
}

// all lists every user the hub knows, configured ones first.
func (d hubUsers) all() []auth.User {
	out := make([]auth.User, 0, len(d.cfg))
	for _, u := range d.cfg {
		u.ValidAfter = max(u.ValidAfter, d.store.LoggedOutAt(u.Name))
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b auth.User) int { return strings.Compare(a.Name, b.Name) })
	for _, su := range d.store.Users() {
		if _, cfg := d.cfg[su.GetName()]; !cfg {
			out = append(out, userFromStored(su))
		}
	}
	return out
}

// validArea: a kota, kecamatan or kelurahan code of the embedded table.
func validArea(code string) bool {
	for _, k := range kelurahan.All() {
		if k.Code == code || strings.HasPrefix(k.Code, code+".") {
			return true
		}
	}
	return false
}

// Users implements api.UserAdmin.
func (b *backend) Users(ctx context.Context) ([]api.UserInfo, error) {
	var out []api.UserInfo
	for _, u := range b.h.users.all() {
		info := api.UserInfo{Name: u.Name, Role: u.Role, Scope: u.Scope, Disabled: u.Disabled, Source: "hub"}
		if _, cfg := b.h.users.cfg[u.Name]; cfg {
			info.Source = "config"
		} else if su, ok := b.h.store.User(u.Name); ok {
			info.Created, info.Changed, info.ChangedBy = time.Unix(0, su.GetCreatedUnixNano()).UTC(), time.Unix(0, su.GetChangedUnixNano()).UTC(), su.GetChangedBy()
		}
		out = append(out, info)
	}
	return out, nil
}

// PutUser implements api.UserAdmin.
func (b *backend) PutUser(ctx context.Context, req api.UserRequest, create bool, by string) (api.UserInfo, error) {
	if err := store.ValidUserName(req.Name); err != nil {
		return api.UserInfo{}, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	if _, cfg := b.h.users.cfg[req.Name]; cfg {
		return api.UserInfo{}, fmt.Errorf("%w: user %q is defined in hub.yaml (a break-glass account); change it there", api.ErrBadRequest, req.Name)
	}
	now := time.Now()
	have, exists := b.h.store.User(req.Name)
	switch {
	case create && exists:
		return api.UserInfo{}, fmt.Errorf("%w: user %q exists already; PATCH /api/v1/users/%s changes it", api.ErrBadRequest, req.Name, req.Name)
	case !create && !exists:
		return api.UserInfo{}, fmt.Errorf("%w: no user %q", api.ErrNotFound, req.Name)
	}
	u := &rondav1.StoredUser{Name: req.Name, CreatedUnixNano: now.UnixNano()}
	if exists {
		u = have
	}
	void := false // tokens issued so far become void
	if req.Role != "" && req.Role != u.Role {
		u.Role, void = req.Role, exists
	}
	if req.Scope != nil {
		u.Areas, u.Cameras, u.PlaybackHours = req.Scope.Areas, req.Scope.Cameras, int32(req.Scope.PlaybackHours)
		void = exists
	} else if req.Role != "" && exists {
		u.Areas, u.Cameras, u.PlaybackHours = nil, nil, 0 // a new role takes its own scope
	}
	if err := auth.CheckRole(u.Role, auth.Scope{Areas: u.Areas, Cameras: u.Cameras, PlaybackHours: int(u.PlaybackHours)}, validArea); err != nil {
		return api.UserInfo{}, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	if req.Password != "" {
		hash, err := auth.HashPassword(req.Password)
		if err != nil {
			return api.UserInfo{}, err
		}
		u.PasswordHash, void = hash, exists
	}
	if req.Disabled != nil {
		u.Disabled = *req.Disabled
		void = void || (*req.Disabled && exists)
	}
	if void {
		u.ValidAfterUnixMilli = now.UnixMilli() + 1
	}
	u.ChangedBy, u.ChangedUnixNano = by, now.UnixNano()
	if err := b.h.store.PutUser(ctx, u); err != nil {
		return api.UserInfo{}, storeErr(err)
	}
	list, _ := b.Users(ctx)
	for _, info := range list {
		if info.Name == u.Name {
			return info, nil
		}
	}
	return api.UserInfo{}, fmt.Errorf("%w: user %q not visible after the write", api.ErrUnavailable, u.Name)
}

// DeleteUser implements api.UserAdmin.
func (b *backend) DeleteUser(ctx context.Context, name, by string) error {
	if _, cfg := b.h.users.cfg[name]; cfg {
		return fmt.Errorf("%w: user %q is defined in hub.yaml; remove it there", api.ErrBadRequest, name)
	}
	return storeErr(b.h.store.DeleteUser(ctx, name))
}

// Logout implements api.LogoutHandler: every token issued to the user until
// now is void at every member, and at every node with its next user list.
func (b *backend) Logout(ctx context.Context, user string) error {
	return storeErr(b.h.store.LogoutUser(ctx, user, time.Now().UnixMilli()+1))
}

func storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	case errors.Is(err, store.ErrBadCommand):
		return fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	case errors.Is(err, store.ErrNoLeader), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: the hub has no leader right now; try again in a few seconds: %v", api.ErrUnavailable, err)
	}
	return err
}

// CameraKelurahan implements api.CameraLocator.
func (b *backend) CameraKelurahan(ctx context.Context, camera string) (string, error) {
	c, err := b.camera(camera)
	if err != nil {
		return "", err
	}
	return c.GetKelurahanCode(), nil
}

// OwnKelurahan implements api.CameraLocator.
func (b *backend) OwnKelurahan() string { return "" }

// userLists builds and signs nodes' user lists, once per users version and
// kelurahan.
type userLists struct {
	key ed25519.PrivateKey
	pub []byte

	mu      sync.Mutex
	version uint64
	signed  map[string][]byte // kelurahan -> signed list
}

// UserList implements replication.UserListProvider.
func (e *hubEnd) UserList(kel string, have uint64) ([]byte, []byte) {
	ul := e.h.lists
	v := e.h.store.UsersVersion() + 1 // 1 before any user command: the configured users
	if have >= v || kel == "" {
		return nil, ul.pub
	}
	ul.mu.Lock()
	defer ul.mu.Unlock()
	if ul.version != v {
		ul.version, ul.signed = v, map[string][]byte{}
	}
	if s, ok := ul.signed[kel]; ok {
		return s, ul.pub
	}
	s, err := auth.SignUserList(ul.key, auth.ListFor(e.h.users.all(), kel, v, time.Now()))
	if err != nil {
		e.h.log.Error("signing a node's user list", "kelurahan", kel, "err", err)
		return nil, ul.pub
	}
	if len(ul.signed) < 1000 {
		ul.signed[kel] = s
	}
	return s, ul.pub
}
