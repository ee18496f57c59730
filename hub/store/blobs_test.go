package store

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

func blobCmd(t *testing.T, m *rondav1.BlobCommand) []byte {
	t.Helper()
	cmd, err := EncodeCommand(CommandBlob, m)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func addHolder(t *testing.T, sha string, size int64, member, ref string, at int64) []byte {
	return blobCmd(t, &rondav1.BlobCommand{Op: rondav1.BlobOp_BLOB_OP_ADD_HOLDER, Sha256: sha, Size: size,
		MediaType: "video/mp4", Member: member, Ref: ref, AtUnixNano: at})
}

func removeHolder(t *testing.T, sha, member string) []byte {
	return blobCmd(t, &rondav1.BlobCommand{Op: rondav1.BlobOp_BLOB_OP_REMOVE_HOLDER, Sha256: sha, Member: member})
}

// rawBlob is the blob's stored value, byte for byte (nil if absent).
func rawBlob(t *testing.T, f *fsm, sha string) []byte {
	t.Helper()
	var out []byte
	if _, err := f.read(func(r pebble.Reader) error {
		v, closer, err := r.Get(blobKey(sha))
		if errors.Is(err, pebble.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		defer closer.Close()
		out = bytes.Clone(v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func getBlob(t *testing.T, f *fsm, sha string) *rondav1.StoredBlob {
	t.Helper()
	var b rondav1.StoredBlob
	if found, err := f.getProto(blobKey(sha), &b); err != nil || !found {
		t.Fatalf("blob %s: found=%v err=%v", sha, found, err)
	}
	return &b
}

func TestBlobHoldersApplyIdempotentlyAndSorted(t *testing.T) {
	f := newTestFSM(t, filepath.Join(t.TempDir(), "fsm"))
	sha := strings.Repeat("ab", 32)

	if r := applyAt(t, f, 1, addHolder(t, sha, 1000, "hub-2", "case/C2/i1", 50)); r.err != nil {
		t.Fatal(r.err)
	}
	first := rawBlob(t, f, sha)
	// Re-applied (a retried command): the same bytes.
	if r := applyAt(t, f, 2, addHolder(t, sha, 1000, "hub-2", "case/C2/i1", 60)); r.err != nil {
		t.Fatal(r.err)
	}
	if !bytes.Equal(first, rawBlob(t, f, sha)) {
		t.Fatal("re-applying add_holder changed the blob")
	}
	applyAt(t, f, 3, addHolder(t, sha, 1000, "hub-1", "case/C1/i9", 70))
	applyAt(t, f, 4, addHolder(t, sha, 1000, "hub-3", "", 80))
	b := getBlob(t, f, sha)
	if !slices.Equal(b.Holders, []string{"hub-1", "hub-2", "hub-3"}) || !slices.Equal(b.Refs, []string{"case/C1/i9", "case/C2/i1"}) ||
		b.Size != 1000 || b.MediaType != "video/mp4" || b.CreatedUnixNano != 50 || b.Sha256 != sha {
		t.Fatalf("blob %v", b)
	}

	// The same SHA-256 with another size is refused and changes nothing.
	before := rawBlob(t, f, sha)
	r := applyAt(t, f, 5, addHolder(t, sha, 999, "hub-4", "", 90))
	if !errors.Is(r.err, ErrBadCommand) || !strings.Contains(r.err.Error(), "stored with 1000 bytes") {
		t.Fatalf("size mismatch: %v", r.err)
	}
	if !bytes.Equal(before, rawBlob(t, f, sha)) {
		t.Fatal("a refused command changed the blob")
	}

	// Remove, and remove again (a retry): a no-op.
	applyAt(t, f, 6, removeHolder(t, sha, "hub-2"))
	afterRemove := rawBlob(t, f, sha)
	if r := applyAt(t, f, 7, removeHolder(t, sha, "hub-2")); r.err != nil {
		t.Fatalf("re-applied remove: %v", r.err)
	}
	if !bytes.Equal(afterRemove, rawBlob(t, f, sha)) {
		t.Fatal("re-applying remove_holder changed the blob")
	}
	if b := getBlob(t, f, sha); !slices.Equal(b.Holders, []string{"hub-1", "hub-3"}) || len(b.Refs) != 2 {
		t.Fatalf("after remove: %v", b)
	}
	// The last holder gone: the record stays, with no holders.
	applyAt(t, f, 8, removeHolder(t, sha, "hub-1"))
	applyAt(t, f, 9, removeHolder(t, sha, "hub-3"))
	if b := getBlob(t, f, sha); len(b.Holders) != 0 || b.Size != 1000 {
		t.Fatalf("blob without holders: %v", b)
	}

	// Unknown blob.
	if r := applyAt(t, f, 10, removeHolder(t, strings.Repeat("cd", 32), "hub-1")); !errors.Is(r.err, ErrBadCommand) || !strings.Contains(r.err.Error(), "no blob") {
		t.Fatalf("remove from an unknown blob: %v", r.err)
	}
}

func TestBlobCommandValidation(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	for name, m := range map[string]*rondav1.BlobCommand{
		"upper-case sha": {Op: rondav1.BlobOp_BLOB_OP_ADD_HOLDER, Sha256: strings.ToUpper(sha), Member: "h1"},
		"short sha":      {Op: rondav1.BlobOp_BLOB_OP_ADD_HOLDER, Sha256: "abcd", Member: "h1"},
		"path sha":       {Op: rondav1.BlobOp_BLOB_OP_ADD_HOLDER, Sha256: "../" + sha[3:], Member: "h1"},
		"no member":      {Op: rondav1.BlobOp_BLOB_OP_ADD_HOLDER, Sha256: sha},
		"no op":          {Sha256: sha, Member: "h1"},
		"negative size":  {Op: rondav1.BlobOp_BLOB_OP_ADD_HOLDER, Sha256: sha, Member: "h1", Size: -1},
		"NUL in ref":     {Op: rondav1.BlobOp_BLOB_OP_ADD_HOLDER, Sha256: sha, Member: "h1", Ref: "case/\x00"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := blobCmd(t, m)
			if err := ValidateCommand(cmd); !errors.Is(err, ErrBadCommand) {
				t.Fatalf("ValidateCommand: %v, want ErrBadCommand", err)
			}
		})
	}
}
