package store

// Users managed through the API: replicated, so a user created, changed,
// logged out or deleted at one member is so at every member, and every
// node learns it with its next signed user list (the users version grows
// with every command).

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// CommandUser carries a rondav1.UserCommand.
const CommandUser CommandType = 8

// MaxUserName bounds a user name.
const MaxUserName = 64

func init() {
	commands[CommandUser] = commandSpec{
		name:   "User",
		decode: func(p []byte) (proto.Message, error) { return decodeUser(p) },
		apply:  applyUser,
	}
}

var keyUsersVersion = []byte("m/users")

func userKey(name string) []byte { return joinKey(prefixUser, name) }

// ValidUserName: 1-64 of letters, digits and . _ - @.
func ValidUserName(name string) error {
	if name == "" || len(name) > MaxUserName || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@") != "" {
		return fmt.Errorf("user name %q: use 1-%d letters, digits and . _ - @", name, MaxUserName)
	}
	return nil
}

func decodeUser(payload []byte) (*rondav1.UserCommand, error) {
	m := new(rondav1.UserCommand)
	if err := proto.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("%w: User: %v", ErrBadCommand, err)
	}
	u := m.GetUser()
	if err := ValidUserName(u.GetName()); err != nil {
		return nil, fmt.Errorf("%w: User: %v", ErrBadCommand, err)
	}
	if !m.GetDelete() && !m.GetLogout() && (u.GetPasswordHash() == "" || u.GetRole() == "") {
		return nil, fmt.Errorf("%w: User: a user needs a password hash and a role", ErrBadCommand)
	}
	return m, nil
}

func applyUser(b *pebble.Batch, payload []byte, _ *slog.Logger) (uint64, error) {
	m, err := decodeUser(payload)
	if err != nil {
		return 0, err
	}
	key := userKey(m.GetUser().GetName())
	var have rondav1.StoredUser
	found, err := getProto(b, key, &have)
	if err != nil {
		return 0, err
	}
	switch {
	case m.GetDelete():
		if !found {
			return 0, fmt.Errorf("%w: %w: no user %q", ErrBadCommand, ErrNotFound, m.GetUser().GetName())
		}
		err = b.Delete(key, nil)
	case m.GetLogout() && !found:
		// A configured (hub.yaml) user: the logout itself is replicated.
		lkey := joinKey(prefixLogout, m.GetUser().GetName())
		have, err := readUint64(b, lkey)
		if err != nil {
			return 0, err
		}
		err = b.Set(lkey, encodeUint64(uint64(max(int64(have), m.GetUser().GetValidAfterUnixMilli()))), nil)
	case m.GetLogout():
		if v := m.GetUser().GetValidAfterUnixMilli(); v > have.ValidAfterUnixMilli {
			have.ValidAfterUnixMilli = v
		}
		err = putProto(b, key, &have)
	default:
		u := proto.Clone(m.GetUser()).(*rondav1.StoredUser)
		if found {
			u.CreatedUnixNano = have.GetCreatedUnixNano()
			if u.ValidAfterUnixMilli < have.ValidAfterUnixMilli {
				u.ValidAfterUnixMilli = have.ValidAfterUnixMilli
			}
		}
		err = putProto(b, key, u)
	}
	if err != nil {
		return 0, err
	}
	v, err := readUint64(b, keyUsersVersion)
	if err != nil {
		return 0, err
	}
	return 0, b.Set(keyUsersVersion, encodeUint64(v+1), nil)
}

// PutUser creates or replaces a user (the caller has checked role and scope).
func (s *Store) PutUser(ctx context.Context, u *rondav1.StoredUser) error {
	return s.applyUser(ctx, &rondav1.UserCommand{User: u})
}

// DeleteUser deletes a user (ErrNotFound if there is none).
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return s.applyUser(ctx, &rondav1.UserCommand{User: &rondav1.StoredUser{Name: name}, Delete: true})
}

// LogoutUser voids the user's tokens issued before atMilli, everywhere.
func (s *Store) LogoutUser(ctx context.Context, name string, atMilli int64) error {
	return s.applyUser(ctx, &rondav1.UserCommand{User: &rondav1.StoredUser{Name: name, ValidAfterUnixMilli: atMilli}, Logout: true})
}

func (s *Store) applyUser(ctx context.Context, c *rondav1.UserCommand) error {
	cmd, err := EncodeCommand(CommandUser, c)
	if err != nil {
		return err
	}
	_, _, err = s.Apply(ctx, cmd)
	return err
}

// User returns a user from this member's state.
func (s *Store) User(name string) (*rondav1.StoredUser, bool) {
	if ValidUserName(name) != nil {
		return nil, false
	}
	var u rondav1.StoredUser
	found, err := s.fsm.getProto(userKey(name), &u)
	if err != nil || !found {
		return nil, false
	}
	return &u, true
}

// Users lists the replicated users by name.
func (s *Store) Users() []*rondav1.StoredUser {
	return scanAll(s, prefixUser, func() *rondav1.StoredUser { return new(rondav1.StoredUser) })
}

// LoggedOutAt is when a configured user last logged out (unix ms; 0: never).
func (s *Store) LoggedOutAt(name string) int64 {
	var v uint64
	_, _ = s.fsm.read(func(r pebble.Reader) error {
		var err error
		v, err = readUint64(r, joinKey(prefixLogout, name))
		return err
	})
	return int64(v)
}

// UsersVersion grows with every user command (0: none yet).
func (s *Store) UsersVersion() uint64 {
	var v uint64
	_, _ = s.fsm.read(func(r pebble.Reader) error {
		var err error
		v, err = readUint64(r, keyUsersVersion)
		return err
	})
	return v
}
