package pebbleutil

import (
	"errors"

	"github.com/cockroachdb/pebble/v2"
)

// Get returns a copy of the value of k, and whether k exists.
func Get(db *pebble.DB, k []byte) ([]byte, bool, error) {
	v, c, err := db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	c.Close()
	return out, true, nil
}
