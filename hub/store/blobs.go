package store

// Evidence blobs (CommandBlob): the manifest of the hub's content-addressed
// evidence store (hub/evidence). The bytes live on the members' disks,
// outside Raft; Raft records, per blob, its size and media type, which
// members hold a verified copy, and what it is evidence for.
//
// A blob is created by its first holder and never deleted here: when its
// last holder drops itself (lost disk, corrupt copy), the record stays with
// no holders, so the loss is visible instead of silently forgotten.

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// CommandBlob carries a rondav1.BlobCommand.
const CommandBlob CommandType = 11

// Limits of a blob record's fields.
const (
	maxMediaTypeLen = 255
	maxBlobRefLen   = 512
	// MaxBlobRefs bounds the refs of one blob: a record is rewritten by every
	// holder change, and must stay far below MaxCommandBytes.
	MaxBlobRefs = 1000
)

func init() {
	commands[CommandBlob] = commandSpec{
		name:   "Blob",
		decode: func(p []byte) (proto.Message, error) { return decodeBlob(p) },
		apply:  applyBlob,
	}
}

func blobKey(sha string) []byte { return joinKey(prefixBlob, sha) }

// ValidBlobSHA256 checks a blob name: 64 lower-case hex digits.
func ValidBlobSHA256(sha string) error {
	if len(sha) != 64 {
		return fmt.Errorf("blob sha256 %.80q is %d characters, want 64 hex digits", sha, len(sha))
	}
	for i := 0; i < len(sha); i++ {
		if c := sha[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("blob sha256 %q is not lower-case hex", sha)
		}
	}
	return nil
}

func decodeBlob(payload []byte) (*rondav1.BlobCommand, error) {
	m := new(rondav1.BlobCommand)
	if err := proto.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("%w: Blob: %v", ErrBadCommand, err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: Blob: "+format, append([]any{ErrBadCommand}, a...)...)
	}
	if err := ValidBlobSHA256(m.GetSha256()); err != nil {
		return nil, bad("%v", err)
	}
	if err := validID("member", m.GetMember()); err != nil {
		return nil, bad("%v", err)
	}
	switch m.GetOp() {
	case rondav1.BlobOp_BLOB_OP_ADD_HOLDER:
		switch {
		case m.GetSize() < 0:
			return nil, bad("blob %s has a negative size %d", m.GetSha256(), m.GetSize())
		case len(m.GetMediaType()) > maxMediaTypeLen:
			return nil, bad("media type of blob %s is %d bytes, limit %d", m.GetSha256(), len(m.GetMediaType()), maxMediaTypeLen)
		case len(m.GetRef()) > maxBlobRefLen || strings.IndexByte(m.GetRef(), 0) >= 0:
			return nil, bad("ref %.64q of blob %s is longer than %d bytes or contains a NUL byte", m.GetRef(), m.GetSha256(), maxBlobRefLen)
		}
	case rondav1.BlobOp_BLOB_OP_REMOVE_HOLDER:
	default:
		return nil, bad("unknown op %v (add_holder or remove_holder)", m.GetOp())
	}
	return m, nil
}

// insertSorted adds s to the sorted, unique list and reports whether it was new.
func insertSorted(list []string, s string) ([]string, bool) {
	i, found := slices.BinarySearch(list, s)
	if found {
		return list, false
	}
	return slices.Insert(list, i, s), true
}

// applyBlob adds or removes a holder. Re-applying either is a no-op.
func applyBlob(b *pebble.Batch, payload []byte, log *slog.Logger) (uint64, error) {
	m, err := decodeBlob(payload)
	if err != nil {
		return 0, err
	}
	sha, member := m.GetSha256(), m.GetMember()
	key := blobKey(sha)
	var blob rondav1.StoredBlob
	found, err := getProto(b, key, &blob)
	if err != nil {
		return 0, err
	}
	if m.GetOp() == rondav1.BlobOp_BLOB_OP_REMOVE_HOLDER {
		if !found {
			return 0, fmt.Errorf("%w: Blob: no blob %s in the evidence store", ErrBadCommand, sha)
		}
		i, held := slices.BinarySearch(blob.Holders, member)
		if !held {
			return 0, nil
		}
		blob.Holders = slices.Delete(blob.Holders, i, i+1)
		if len(blob.Holders) == 0 {
			log.Error("evidence blob has no copy left on any hub member", "blob", sha, "size", blob.GetSize(),
				"refs", blob.GetRefs(), "last_holder", member)
		}
		return 0, putProto(b, key, &blob)
	}

	if !found {
		blob = rondav1.StoredBlob{Sha256: sha, Size: m.GetSize(), MediaType: m.GetMediaType(), CreatedUnixNano: m.GetAtUnixNano()}
	} else if blob.GetSize() != m.GetSize() {
		return 0, fmt.Errorf("%w: Blob: blob %s is stored with %d bytes; member %s offered %d bytes under the same SHA-256",
			ErrBadCommand, sha, blob.GetSize(), member, m.GetSize())
	}
	changed := !found
	var added bool
	blob.Holders, added = insertSorted(blob.Holders, member)
	changed = changed || added
	if ref := m.GetRef(); ref != "" {
		if _, present := slices.BinarySearch(blob.Refs, ref); !present && len(blob.Refs) >= MaxBlobRefs {
			return 0, fmt.Errorf("%w: Blob: blob %s already has %d refs, limit %d", ErrBadCommand, sha, len(blob.Refs), MaxBlobRefs)
		}
		blob.Refs, added = insertSorted(blob.Refs, ref)
		changed = changed || added
	}
	if blob.GetMediaType() == "" && m.GetMediaType() != "" {
		blob.MediaType = m.GetMediaType()
		changed = true
	}
	if !changed {
		return 0, nil
	}
	return 0, putProto(b, key, &blob)
}

// normalizeBlobSHA lower-cases a blob name and checks it.
func normalizeBlobSHA(sha string) (string, error) {
	sha = strings.ToLower(sha)
	if err := ValidBlobSHA256(sha); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	return sha, nil
}

func (s *Store) applyBlobCommand(ctx context.Context, m *rondav1.BlobCommand) error {
	m.AtUnixNano = s.cfg.Now().UnixNano()
	cmd, err := EncodeCommand(CommandBlob, m)
	if err != nil {
		return err
	}
	_, _, err = s.Apply(ctx, cmd)
	return err
}

// AddBlobHolder records that member holds a verified copy of the blob
// (creating the blob with its size and media type if it is new) and, if ref
// is not empty, that the blob is evidence for ref. It is refused
// (ErrBadCommand) if the blob is known with another size.
func (s *Store) AddBlobHolder(ctx context.Context, sha string, size int64, mediaType, member, ref string) error {
	sha, err := normalizeBlobSHA(sha)
	if err != nil {
		return err
	}
	return s.applyBlobCommand(ctx, &rondav1.BlobCommand{Op: rondav1.BlobOp_BLOB_OP_ADD_HOLDER,
		Sha256: sha, Size: size, MediaType: mediaType, Member: member, Ref: ref})
}

// RemoveBlobHolder records that member no longer holds a good copy. Removing
// a member that is not a holder is a no-op; an unknown blob is refused.
func (s *Store) RemoveBlobHolder(ctx context.Context, sha, member string) error {
	sha, err := normalizeBlobSHA(sha)
	if err != nil {
		return err
	}
	return s.applyBlobCommand(ctx, &rondav1.BlobCommand{Op: rondav1.BlobOp_BLOB_OP_REMOVE_HOLDER, Sha256: sha, Member: member})
}

// Blob returns one blob's record (this member's state); ErrNotFound if the
// evidence store has no such blob.
func (s *Store) Blob(sha string) (*rondav1.StoredBlob, error) {
	sha = strings.ToLower(sha)
	if err := ValidBlobSHA256(sha); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	var blob rondav1.StoredBlob
	found, err := s.fsm.getProto(blobKey(sha), &blob)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: no blob %s in the evidence store", ErrNotFound, sha)
	}
	return &blob, nil
}

// Blobs lists every blob (in SHA-256 order), this member's state.
func (s *Store) Blobs() []*rondav1.StoredBlob {
	return scanAll(s, prefixBlob, func() *rondav1.StoredBlob { return new(rondav1.StoredBlob) })
}
