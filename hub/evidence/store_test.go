package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func shaOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "evidence"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPutMovesAVerifiedFileIn(t *testing.T) {
	s := openStore(t)
	data := bytes.Repeat([]byte("footage "), 100_000)
	sha := shaOf(data)
	src := writeFile(t, t.TempDir(), "pulled.mp4", data)
	if s.Has(sha) {
		t.Fatal("Has before Put")
	}
	if err := s.Put(t.Context(), src, sha, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(src); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the source is still there after Put: %v", err)
	}
	if want := filepath.Join(s.Dir(), "sha256", sha[:2], sha); !fileExists(want) {
		t.Fatalf("blob not at %s", want)
	}
	if !s.Has(sha) {
		t.Fatal("Has after Put")
	}
	r, size, err := s.Open(sha)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if size != int64(len(data)) || !bytes.Equal(got, data) {
		t.Fatalf("Open: %d bytes (size %d), want %d", len(got), size, len(data))
	}
	if err := s.Check(sha); err != nil {
		t.Fatalf("Check: %v", err)
	}

	// Again (the same blob from another pull): a no-op that takes the file.
	again := writeFile(t, t.TempDir(), "again.mp4", data)
	if err := s.Put(t.Context(), again, sha, int64(len(data))); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	if fileExists(again) {
		t.Fatal("second Put left its source")
	}
	if err := s.Check(sha); err != nil {
		t.Fatal(err)
	}
}

func TestPutRefusesAMismatch(t *testing.T) {
	s := openStore(t)
	data := []byte("the real footage")
	sha := shaOf(data)
	src := writeFile(t, t.TempDir(), "f", []byte("something else!!"))
	err := s.Put(t.Context(), src, sha, int64(len(data)))
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), sha) {
		t.Fatalf("wrong bytes: %v, want ErrMismatch naming the expected SHA-256", err)
	}
	t.Logf("error reads: %v", err)
	if !fileExists(src) || s.Has(sha) {
		t.Fatal("a refused Put must leave the source and store nothing")
	}
	good := writeFile(t, t.TempDir(), "g", data)
	if err := s.Put(t.Context(), good, sha, int64(len(data))+1); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong size: %v", err)
	}
	if err := s.Put(t.Context(), good, "../../etc/passwd", 1); !errors.Is(err, ErrBadName) {
		t.Fatalf("bad name: %v", err)
	}
	if err := s.Put(t.Context(), good, strings.ToUpper(sha), int64(len(data))); !errors.Is(err, ErrBadName) {
		t.Fatalf("upper-case name: %v", err)
	}
	if s.Has("../x") {
		t.Fatal("Has of a bad name")
	}
	if _, _, err := s.Open(shaOf([]byte("nothing"))); !errors.Is(err, ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of an absent blob: %v", err)
	}
}

func TestCheckFindsCorruptionAndLoss(t *testing.T) {
	s := openStore(t)
	data := bytes.Repeat([]byte{1, 2, 3, 4}, 50_000)
	sha := shaOf(data)
	if err := s.Put(t.Context(), writeFile(t, t.TempDir(), "f", data), sha, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	p, _ := s.Path(sha)
	// Flip one byte in place, size unchanged (bit rot).
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{9}, 123_456); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := s.Check(sha); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Check of a corrupt blob: %v", err)
	}
	moved, err := s.Quarantine(sha)
	if err != nil || !fileExists(moved) || s.Has(sha) {
		t.Fatalf("Quarantine: %q %v (still stored: %v)", moved, err, s.Has(sha))
	}
	if err := s.Check(sha); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Check of a missing blob: %v", err)
	}
	// A good copy again, then removed.
	if err := s.Put(t.Context(), writeFile(t, t.TempDir(), "f", data), sha, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(sha); err != nil || s.Has(sha) {
		t.Fatalf("Remove: %v", err)
	}
	if err := s.Remove(sha); err != nil {
		t.Fatalf("Remove again: %v", err)
	}
}

// A file on another filesystem is copied in (and hashed again on the way).
func TestCopyInVerifiesAgain(t *testing.T) {
	s := openStore(t)
	data := []byte("copied across filesystems")
	sha := shaOf(data)
	src := writeFile(t, t.TempDir(), "f", data)
	dst := s.path(sha)
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := s.copyIn(t.Context(), src, dst, sha, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(sha); err != nil {
		t.Fatal(err)
	}
	// Changed between the check and the copy: refused, nothing left behind.
	other := shaOf([]byte("x"))
	if err := s.copyIn(t.Context(), src, s.path(other), other, 1); !errors.Is(err, ErrMismatch) {
		t.Fatalf("copyIn of other bytes: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Dir(), "tmp")); len(ents) != 0 || fileExists(s.path(other)) {
		t.Fatalf("a refused copy left files: %v", ents)
	}
}

func TestOpenClearsInterruptedCopies(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "evidence")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "tmp"), "x.123", []byte("half"))
	if _, err := Open(s.Dir()); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Fatalf("tmp not cleared: %v", ents)
	}
	if _, err := Open(""); err == nil {
		t.Fatal("Open without a directory")
	}
}

func TestPutStopsWithItsContext(t *testing.T) {
	s := openStore(t)
	data := []byte("abc")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Put(ctx, writeFile(t, t.TempDir(), "f", data), shaOf(data), 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a canceled context: %v", err)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
