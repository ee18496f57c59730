// Package manifest defines the per-day segment manifest hash a node reports
// and the hub keeps in its coverage index: for one camera and UTC day, the
// segments that started that day folded in segment order,
//
//	h0 = 32 zero bytes
//	h(n) = SHA-256(h(n-1) || id || start || end || bytes || SHA-256 of the file)
//
// with id, start and end (Unix nanoseconds) and bytes as 64-bit big-endian
// integers. Both ends compute it with this one function.
package manifest

import (
	"crypto/sha256"
	"encoding/binary"
)

// Chain folds one segment into a day's manifest hash; prev is nil for the
// day's first segment.
func Chain(prev []byte, id uint64, startNs, endNs, bytes int64, fileSHA256 []byte) []byte {
	var zero [32]byte
	if len(prev) == 0 {
		prev = zero[:]
	}
	h := sha256.New()
	h.Write(prev)
	var buf [32]byte
	binary.BigEndian.PutUint64(buf[0:], id)
	binary.BigEndian.PutUint64(buf[8:], uint64(startNs))
	binary.BigEndian.PutUint64(buf[16:], uint64(endNs))
	binary.BigEndian.PutUint64(buf[24:], uint64(bytes))
	h.Write(buf[:])
	h.Write(fileSHA256)
	return h.Sum(nil)
}
