// Package evidence is the hub's content-addressed evidence store: footage
// pulled from nodes for evidence cases, kept on every member's own disk as
// files named by their SHA-256, and copied between members by a Replicator
// so that each blob is on at least two of them. The blobs' manifests
// (size, holders, refs) go through Raft (hub/store, CommandBlob); the bytes
// never do. See DESIGN.md.
package evidence

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ronda-jakarta/ronda/hub/store"
)

// Errors of the Store; test with errors.Is.
var (
	// ErrNotFound: the blob is not stored on this member.
	ErrNotFound = errors.New("hub/evidence: blob not stored on this member")
	// ErrMismatch: the bytes are not what their name (SHA-256) and size say.
	ErrMismatch = errors.New("hub/evidence: blob does not match its SHA-256 or size")
	// ErrBadName: not a SHA-256 in lower-case hex.
	ErrBadName = errors.New("hub/evidence: invalid blob name")
)

// Store is one member's evidence blobs on its disk:
//
//	DIR/sha256/ab/abcdef…   the blob whose SHA-256 is abcdef… (64 hex digits)
//	DIR/tmp/                files being copied in (removed at Open)
//	DIR/partial/<sha256>    copies being fetched from another member (resumed)
//	DIR/corrupt/            copies that failed their check, kept for inspection
//
// Blobs are immutable: written once (atomically, synced), read many times.
type Store struct {
	dir string
}

// Open opens (creating it if needed) the evidence store in dir.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("hub/evidence: no directory given")
	}
	for _, d := range []string{"sha256", "tmp", "partial", "corrupt"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			return nil, fmt.Errorf("hub/evidence: %w", err)
		}
	}
	// Leftovers of copies a crash interrupted: never blobs yet.
	tmp := filepath.Join(dir, "tmp")
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return nil, fmt.Errorf("hub/evidence: %w", err)
	}
	for _, e := range ents {
		_ = os.RemoveAll(filepath.Join(tmp, e.Name()))
	}
	return &Store{dir: dir}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// ValidName checks a blob name: a SHA-256 in lower-case hex.
func ValidName(sha string) error {
	if err := store.ValidBlobSHA256(sha); err != nil {
		return fmt.Errorf("%w: %v", ErrBadName, err)
	}
	return nil
}

// Path is where the blob named sha lives (whether or not it is stored).
func (s *Store) Path(sha string) (string, error) {
	if err := ValidName(sha); err != nil {
		return "", err
	}
	return s.path(sha), nil
}

func (s *Store) path(sha string) string { return filepath.Join(s.dir, "sha256", sha[:2], sha) }

func (s *Store) partialPath(sha string) string { return filepath.Join(s.dir, "partial", sha) }

// Put moves the file at srcPath into the store as the blob sha (lower-case
// hex SHA-256) of size bytes. It hashes the file first and refuses
// (ErrMismatch, srcPath untouched) if it is not that blob. The file is
// renamed into place when it is on the store's filesystem, else copied
// (and srcPath removed); either way it is synced, and so is the directory,
// before Put returns. Putting a blob already stored is a no-op (srcPath is
// removed). After Put returns nil, srcPath is gone.
func (s *Store) Put(ctx context.Context, srcPath, sha string, size int64) error {
	if err := ValidName(sha); err != nil {
		return err
	}
	if err := verifyFile(ctx, srcPath, sha, size); err != nil {
		return err
	}
	dst := s.path(sha)
	if fi, err := os.Stat(dst); err == nil && fi.Mode().IsRegular() && fi.Size() == size {
		if err := os.Remove(srcPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("hub/evidence: blob %s is stored; removing the duplicate %s: %w", sha, srcPath, err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return fmt.Errorf("hub/evidence: %w", err)
	}
	if err := os.Rename(srcPath, dst); err != nil {
		if !errors.Is(err, syscall.EXDEV) {
			return fmt.Errorf("hub/evidence: moving %s into the store: %w", srcPath, err)
		}
		if err := s.copyIn(ctx, srcPath, dst, sha, size); err != nil {
			return err
		}
		if err := os.Remove(srcPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("hub/evidence: blob %s is stored; removing the source %s: %w", sha, srcPath, err)
		}
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("hub/evidence: blob %s: %w", sha, err)
	}
	return nil
}

// verifyFile hashes path and syncs it (so a rename keeps synced bytes).
func verifyFile(ctx context.Context, path, sha string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("hub/evidence: %w", err)
	}
	defer f.Close()
	got, n, err := hashReader(ctx, f)
	if err != nil {
		return fmt.Errorf("hub/evidence: reading %s: %w", path, err)
	}
	if n != size || got != sha {
		return fmt.Errorf("%w: %s has %d bytes with SHA-256 %s, expected %d bytes with SHA-256 %s",
			ErrMismatch, path, n, got, size, sha)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("hub/evidence: syncing %s: %w", path, err)
	}
	return nil
}

// copyIn copies src (on another filesystem) to dst through DIR/tmp,
// hashing again what it copies.
func (s *Store) copyIn(ctx context.Context, src, dst, sha string, size int64) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("hub/evidence: %w", err)
	}
	defer in.Close()
	tmp := filepath.Join(s.dir, "tmp", sha+"."+randomSuffix())
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("hub/evidence: %w", err)
	}
	fail := func(err error) error {
		out.Close()
		os.Remove(tmp)
		return err
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(out, h), ctxReader{ctx, in}, make([]byte, copyBuffer))
	if err != nil {
		return fail(fmt.Errorf("hub/evidence: copying %s into the store: %w", src, err))
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != sha {
		return fail(fmt.Errorf("%w: %s changed while it was copied in (%d bytes, SHA-256 %s)", ErrMismatch, src, n, got))
	}
	if err := out.Sync(); err != nil {
		return fail(fmt.Errorf("hub/evidence: syncing %s: %w", tmp, err))
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("hub/evidence: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("hub/evidence: %w", err)
	}
	return nil
}

// Open opens the blob for reading and returns its size.
func (s *Store) Open(sha string) (io.ReadSeekCloser, int64, error) {
	if err := ValidName(sha); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.path(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s (%w)", ErrNotFound, sha, fs.ErrNotExist)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("hub/evidence: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("hub/evidence: %w", err)
	}
	return f, fi.Size(), nil
}

// Has reports whether the blob is stored here (without checking its bytes).
func (s *Store) Has(sha string) bool {
	_, err := s.Size(sha)
	return err == nil
}

// Size is the size of the stored blob (ErrNotFound if it is not stored).
func (s *Store) Size(sha string) (int64, error) {
	if err := ValidName(sha); err != nil {
		return 0, err
	}
	fi, err := os.Stat(s.path(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, sha)
	}
	if err != nil {
		return 0, fmt.Errorf("hub/evidence: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("hub/evidence: blob %s is not a regular file", sha)
	}
	return fi.Size(), nil
}

// Remove deletes the blob from this member's disk (no error if absent).
func (s *Store) Remove(sha string) error {
	if err := ValidName(sha); err != nil {
		return err
	}
	p := s.path(sha)
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("hub/evidence: %w", err)
	}
	return syncDir(filepath.Dir(p))
}

// Check re-hashes the stored blob: nil if its bytes still have its name,
// ErrNotFound if it is gone, ErrMismatch if it is corrupt.
func (s *Store) Check(sha string) error {
	return s.CheckContext(context.Background(), sha)
}

// CheckContext is Check, stopped by ctx.
func (s *Store) CheckContext(ctx context.Context, sha string) error {
	f, _, err := s.Open(sha)
	if err != nil {
		return err
	}
	defer f.Close()
	got, n, err := hashReader(ctx, f)
	if err != nil {
		return fmt.Errorf("hub/evidence: reading blob %s: %w", sha, err)
	}
	if got != sha {
		return fmt.Errorf("%w: blob %s on this member is corrupt: its %d bytes hash to %s", ErrMismatch, sha, n, got)
	}
	return nil
}

// Quarantine moves a corrupt blob out of the store into DIR/corrupt (kept
// for inspection; an operator deletes it) and returns where it went.
func (s *Store) Quarantine(sha string) (string, error) {
	if err := ValidName(sha); err != nil {
		return "", err
	}
	dst := filepath.Join(s.dir, "corrupt", sha+"."+time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(s.path(sha), dst); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("hub/evidence: %w", err)
	}
	if err := syncDir(filepath.Dir(s.path(sha))); err != nil {
		return dst, fmt.Errorf("hub/evidence: %w", err)
	}
	return dst, nil
}

// copyBuffer is the buffer size for hashing and copying.
const copyBuffer = 256 << 10

// hashReader hashes r to its end.
func hashReader(ctx context.Context, r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.CopyBuffer(h, ctxReader{ctx, r}, make([]byte, copyBuffer))
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ctxReader stops a long read (hashing, copying) when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
