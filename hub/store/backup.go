package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// A backup is the FSM's snapshot stream (snapshot.go): a logical dump of
// every key at one applied index, with the schema version and a checksum
// over all of it. It is taken online from a point-in-time Pebble snapshot,
// so writes go on while it streams, and it is exactly what raft ships to a
// lagging member, so any binary that can install snapshots can restore it.

// BackupInfo describes a backup taken.
type BackupInfo struct {
	AppliedIndex uint64
	Bytes        int64
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// BackupStream is a point-in-time view of a member's state, ready to be
// written out as a backup. Close it when done.
type BackupStream struct {
	snap    *fsmSnapshot
	applied uint64
}

// OpenBackup pins the member's current state (a Pebble snapshot; writes go
// on) for a backup. Run a Default or Linearizable ReadBarrier first if the
// backup must include every write acknowledged so far.
func (s *Store) OpenBackup() (*BackupStream, error) {
	fs, err := s.fsm.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	snap := fs.(*fsmSnapshot)
	snap.mu.Lock()
	var applied uint64
	if snap.snap != nil {
		applied, err = readUint64(snap.snap, keyAppliedIndex)
	}
	snap.mu.Unlock()
	if err != nil {
		snap.Release()
		return nil, fmt.Errorf("backup: %w", err)
	}
	return &BackupStream{snap: snap, applied: applied}, nil
}

// AppliedIndex is the raft index the backup's state reflects.
func (b *BackupStream) AppliedIndex() uint64 { return b.applied }

// WriteTo writes the backup to w.
func (b *BackupStream) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	err := b.snap.persist(cw)
	return cw.n, err
}

// Close releases the pinned state.
func (b *BackupStream) Close() { b.snap.Release() }

// Backup writes a consistent backup of this member's state to w.
func (s *Store) Backup(w io.Writer) (BackupInfo, error) {
	b, err := s.OpenBackup()
	if err != nil {
		return BackupInfo{}, err
	}
	defer b.Close()
	n, err := b.WriteTo(w)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	return BackupInfo{AppliedIndex: b.applied, Bytes: n}, nil
}

// VerifyBackup reads a whole backup and checks its framing and checksum
// without restoring it. Entries counts the keys in it.
func VerifyBackup(r io.Reader) (info BackupInfo, entries uint64, err error) {
	cr := &countingReader{r: r}
	sr, hdr, err := newSnapshotReader(cr)
	if err != nil {
		return BackupInfo{}, 0, err
	}
	for {
		_, _, ok, err := sr.next()
		if err != nil {
			return BackupInfo{}, 0, err
		}
		if !ok {
			break
		}
	}
	return BackupInfo{AppliedIndex: hdr.applied, Bytes: cr.n}, sr.count, nil
}

// BackupEntries reads a whole backup (checking its framing and checksum)
// into its keys and values: for comparing two backups key by key.
func BackupEntries(r io.Reader) (applied uint64, entries map[string][]byte, err error) {
	sr, hdr, err := newSnapshotReader(r)
	if err != nil {
		return 0, nil, err
	}
	entries = map[string][]byte{}
	for {
		k, v, ok, err := sr.next()
		if err != nil {
			return 0, nil, err
		}
		if !ok {
			break
		}
		entries[string(k)] = bytes.Clone(v)
	}
	return hdr.applied, entries, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// RestoreInfo describes a restore.
type RestoreInfo struct {
	AppliedIndex uint64
	Members      int
}

// ErrNotEmpty is returned by RestoreBackup when the member already has state.
var ErrNotEmpty = errors.New("data dir already holds hub state")

// RestoreBackup prepares one member of a new cluster from a backup, before
// it first starts: it verifies the backup while building the member's FSM
// from it, and stores it as the member's first raft snapshot, at the
// backup's index, with cfg.Peers as the cluster's members. Run it with the
// same backup on every member of the new cluster, then start them: they
// elect a leader and continue from the backup's state (raft indexes go on
// after the backup's, so the FSM's applied index stays meaningful). It
// refuses a data dir that already holds state (ErrNotEmpty).
func RestoreBackup(cfg Config, r io.Reader, log *slog.Logger) (RestoreInfo, error) {
	if err := cfg.validate(); err != nil {
		return RestoreInfo{}, err
	}
	if len(cfg.Peers) == 0 {
		return RestoreInfo{}, fmt.Errorf("%w: restore needs the new cluster's members (Peers)", ErrConfig)
	}
	if log == nil {
		log = slog.Default()
	}
	for _, name := range []string{"raft.db", "fsm", "snapshots"} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, name)); err == nil {
			return RestoreInfo{}, fmt.Errorf("%w: %s exists; restore goes into an empty data dir of a new member (move the old one away first)",
				ErrNotEmpty, filepath.Join(cfg.DataDir, name))
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return RestoreInfo{}, fmt.Errorf("create data dir: %w", err)
	}
	// The backup goes to a temporary FSM dir (verified as it is read) and,
	// through a pipe, into a raft snapshot sink. The sink is created only
	// once the header is known (it names the index).
	tmp := filepath.Join(cfg.DataDir, "fsm"+restoreTmpSuffix)
	pr, pw := io.Pipe()
	type built struct {
		applied uint64
		err     error
	}
	done := make(chan built, 1)
	go func() {
		applied, err := buildFromSnapshot(tmp, io.TeeReader(r, pw), log)
		pw.CloseWithError(err)
		done <- built{applied, err}
	}()
	hdrApplied, err := readSnapshotHeaderTee(pr)
	if err != nil {
		pr.CloseWithError(err)
		b := <-done
		os.RemoveAll(tmp)
		return RestoreInfo{}, fmt.Errorf("backup: %w", errors.Join(err, b.err))
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, newHCLog(log, "raft-snapshots"))
	if err != nil {
		pr.CloseWithError(err)
		<-done
		os.RemoveAll(tmp)
		return RestoreInfo{}, fmt.Errorf("open raft snapshot store in %s: %w", cfg.DataDir, err)
	}
	servers := make([]raft.Server, len(cfg.Peers))
	for i, p := range cfg.Peers {
		servers[i] = raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)}
	}
	_, trans := raft.NewInmemTransport("")
	sink, err := snaps.Create(raft.SnapshotVersionMax, hdrApplied.index, 1, raft.Configuration{Servers: servers}, hdrApplied.index, trans)
	if err != nil {
		pr.CloseWithError(err)
		<-done
		os.RemoveAll(tmp)
		return RestoreInfo{}, fmt.Errorf("create raft snapshot: %w", err)
	}
	if _, err := sink.Write(hdrApplied.raw); err == nil {
		_, err = io.Copy(sink, pr)
	}
	b := <-done
	if err == nil {
		err = b.err
	}
	if err != nil {
		sink.Cancel()
		os.RemoveAll(tmp)
		return RestoreInfo{}, fmt.Errorf("restore: %w", err)
	}
	if err := sink.Close(); err != nil {
		os.RemoveAll(tmp)
		return RestoreInfo{}, fmt.Errorf("store raft snapshot: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(cfg.DataDir, "fsm")); err != nil {
		return RestoreInfo{}, fmt.Errorf("move restored FSM into place: %w", err)
	}
	if err := syncDir(cfg.DataDir); err != nil {
		return RestoreInfo{}, err
	}
	return RestoreInfo{AppliedIndex: b.applied, Members: len(servers)}, nil
}

type headerRead struct {
	index uint64
	raw   []byte // the bytes consumed, to pass on
}

// readSnapshotHeaderTee reads just the header of a snapshot stream and
// returns its applied index with the bytes read.
func readSnapshotHeaderTee(r io.Reader) (headerRead, error) {
	rec := &recordingReader{r: r}
	applied, err := readSnapshotHeader(rec)
	return headerRead{index: applied, raw: rec.buf}, err
}

type recordingReader struct {
	r   io.Reader
	buf []byte
}

func (rr *recordingReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	rr.buf = append(rr.buf, p[:n]...)
	return n, err
}
