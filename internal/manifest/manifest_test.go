package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// The chain is order-sensitive and binds every field: changing any segment
// field or reordering changes the day's hash.
func TestChainBindsEveryFieldAndTheOrder(t *testing.T) {
	f1, f2 := sha256.Sum256([]byte("one")), sha256.Sum256([]byte("two"))
	h := Chain(Chain(nil, 1, 10, 20, 100, f1[:]), 2, 20, 30, 200, f2[:])
	if got := hex.EncodeToString(h); len(got) != 64 {
		t.Fatalf("hash %q", got)
	}
	variants := [][]byte{
		Chain(Chain(nil, 2, 20, 30, 200, f2[:]), 1, 10, 20, 100, f1[:]),
		Chain(Chain(nil, 1, 10, 20, 101, f1[:]), 2, 20, 30, 200, f2[:]),
		Chain(Chain(nil, 1, 10, 21, 100, f1[:]), 2, 20, 30, 200, f2[:]),
		Chain(Chain(nil, 1, 11, 20, 100, f1[:]), 2, 20, 30, 200, f2[:]),
		Chain(Chain(nil, 3, 10, 20, 100, f1[:]), 2, 20, 30, 200, f2[:]),
		Chain(Chain(nil, 1, 10, 20, 100, f2[:]), 2, 20, 30, 200, f2[:]),
		Chain(nil, 2, 20, 30, 200, f2[:]),
	}
	for i, v := range variants {
		if bytes.Equal(v, h) {
			t.Fatalf("variant %d has the same hash", i)
		}
	}
	zero := make([]byte, 32)
	if !bytes.Equal(Chain(nil, 1, 10, 20, 100, f1[:]), Chain(zero, 1, 10, 20, 100, f1[:])) {
		t.Fatal("nil and 32 zero bytes must start the chain alike")
	}
}
