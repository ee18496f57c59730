package store

import (
	"github.com/ronda-jakarta/ronda/internal/pebbleutil"

	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// Directory suffixes used while restoring a snapshot next to the live FSM dir.
const (
	restoreTmpSuffix = ".restore-tmp" // being written; deleted on startup
	restoreNewSuffix = ".restore"     // complete and verified; promoted on startup
	restoreOldSuffix = ".old"         // previous state; deleted on startup
)

// applyResponse is what fsm.Apply returns through raft's ApplyFuture.
type applyResponse struct {
	result uint64
	err    error // a rejection (ErrBadCommand / ErrUnknownCommand), same on every member
}

// fsm is the raft.FSM over a Pebble database.
//
// Apply, Snapshot and Restore are called by raft on one goroutine; reads come
// from any goroutine and hold mu for reading so Restore can swap the database.
type fsm struct {
	dir string
	log *slog.Logger

	mu sync.RWMutex
	db *pebble.DB // nil once closed

	applied atomic.Uint64 // raft index of the last command in db

	notifyMu  sync.Mutex
	appliedCh chan struct{} // closed and replaced after every apply/restore

	snapMu sync.Mutex
	snaps  map[*fsmSnapshot]struct{} // open point-in-time snapshots pinning db

	cat *catalog // in-memory query index, always at the applied index
}

// fsmCache is the block cache of the process's FSM databases (the live one
// and one being restored), shared: a hub member is a server with memory to
// spare, and Pebble's default (8 MiB) made every apply read and decompress
// SSTable blocks.
var fsmCache = pebble.NewCache(128 << 20)

// pebbleOptions: bloom filters on every level, because applying a node's
// records looks up keys that often do not exist yet (a camera's first span
// of the day, a camera not in the inventory yet), and without filters a
// miss reads a block of every level. BenchmarkSpanIngest's profile showed
// 76 % of apply time in such lookups.
func pebbleOptions(log *slog.Logger) *pebble.Options {
	o := &pebble.Options{Logger: pebbleutil.NewLogger(log), Cache: fsmCache}
	o.Levels[0].FilterPolicy = bloom.FilterPolicy(10) // inherited by the levels below
	return o
}

// openFSM opens (or creates) the FSM database in dir, finishing or discarding
// a restore interrupted by a crash.
func openFSM(dir string, log *slog.Logger) (*fsm, error) {
	if err := recoverRestoreDirs(dir, log); err != nil {
		return nil, err
	}
	db, applied, err := openFSMDB(dir, log)
	if err != nil {
		return nil, err
	}
	f := &fsm{dir: dir, log: log, db: db, appliedCh: make(chan struct{}), snaps: make(map[*fsmSnapshot]struct{}), cat: newCatalog()}
	f.applied.Store(applied)
	if err := f.cat.rebuild(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("FSM database %s: build the catalog index: %w", dir, err)
	}
	return f, nil
}

func openFSMDB(dir string, log *slog.Logger) (*pebble.DB, uint64, error) {
	db, err := pebble.Open(dir, pebbleOptions(log))
	if err != nil {
		return nil, 0, fmt.Errorf("open FSM database %s (is another hub process using this data dir?): %w", dir, err)
	}
	applied, err := checkSchema(db)
	if err != nil {
		db.Close()
		return nil, 0, fmt.Errorf("FSM database %s: %w", dir, err)
	}
	return db, applied, nil
}

// checkSchema verifies (or, on an empty database, writes) the schema version
// and returns the stored applied index.
func checkSchema(db *pebble.DB) (uint64, error) {
	v, closer, err := db.Get(keySchemaVersion)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		empty, err := isEmpty(db)
		if err != nil {
			return 0, err
		}
		if !empty {
			return 0, fmt.Errorf("%w: data present but no schema version key; restore from a snapshot or move the directory away", ErrSchema)
		}
		if err := db.Set(keySchemaVersion, encodeUint32(SchemaVersion), pebble.Sync); err != nil {
			return 0, fmt.Errorf("write schema version: %w", err)
		}
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	ver, err := decodeUint32(keySchemaVersion, v)
	closer.Close()
	if err != nil {
		return 0, err
	}
	if upgradableFrom[ver] {
		if err := migrate(db, ver); err != nil {
			return 0, fmt.Errorf("upgrade schema version %d to %d: %w", ver, SchemaVersion, err)
		}
		ver = SchemaVersion
	}
	if ver != SchemaVersion {
		return 0, fmt.Errorf("%w: database has version %d, this binary uses %d; run a matching binary, or rebuild the member from a snapshot (a member whose data is disposable, like the demo's, can move its data dir away and restart)",
			ErrSchema, ver, SchemaVersion)
	}
	return readUint64(db, keyAppliedIndex)
}

func isEmpty(r pebble.Reader) (bool, error) {
	it, err := r.NewIter(nil)
	if err != nil {
		return false, err
	}
	empty := !it.First()
	return empty, it.Close()
}

// recoverRestoreDirs completes or rolls back a restore that crashed halfway.
// A "<dir>.restore" directory is only ever created by renaming a fully written
// and verified database, so it is promoted; a "<dir>.restore-tmp" is discarded.
func recoverRestoreDirs(dir string, log *slog.Logger) error {
	if err := os.RemoveAll(dir + restoreTmpSuffix); err != nil {
		return fmt.Errorf("remove incomplete FSM restore: %w", err)
	}
	if _, err := os.Stat(dir + restoreNewSuffix); err == nil {
		log.Warn("completing an FSM snapshot restore interrupted by a crash", "dir", dir)
		if err := swapDirs(dir, dir+restoreNewSuffix); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stat FSM restore dir: %w", err)
	}
	if err := os.RemoveAll(dir + restoreOldSuffix); err != nil {
		return fmt.Errorf("remove previous FSM state: %w", err)
	}
	return nil
}

// swapDirs moves dir aside (to dir.old) and renames fresh to dir, then syncs
// the parent directory so the renames are durable.
func swapDirs(dir, fresh string) error {
	if err := os.RemoveAll(dir + restoreOldSuffix); err != nil {
		return fmt.Errorf("remove %s: %w", dir+restoreOldSuffix, err)
	}
	if err := os.Rename(dir, dir+restoreOldSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("move live FSM dir aside: %w", err)
	}
	if err := os.Rename(fresh, dir); err != nil {
		return fmt.Errorf("move restored FSM dir into place: %w", err)
	}
	return syncDir(filepath.Dir(dir))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

func (f *fsm) appliedIndex() uint64 { return f.applied.Load() }

// appliedChan returns a channel closed at the next apply or restore.
func (f *fsm) appliedChan() <-chan struct{} {
	f.notifyMu.Lock()
	defer f.notifyMu.Unlock()
	return f.appliedCh
}

func (f *fsm) notifyApplied() {
	f.notifyMu.Lock()
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	f.notifyMu.Unlock()
}

// Apply implements raft.FSM. Entries at or below the stored applied index are
// skipped: with NoSnapshotRestoreOnStart raft replays the log tail after a
// restart onto state that already contains it.
func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM: the committed entries raft hands
// over together are applied in order into one Pebble batch, with the applied
// index of the last one, and committed with one sync. Each entry gets its
// response ([]applyResponse: one per command, several for a batch command).
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	last := f.applied.Load()
	var todo []*raft.Log
	for _, l := range logs {
		if l.Type == raft.LogCommand && l.Index > last {
			todo = append(todo, l)
		}
	}
	if len(todo) == 0 {
		return out
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		// Only reachable if raft outlives Close, which Store prevents.
		panic("hub/store: FSM apply after close")
	}
	b := f.db.NewIndexedBatch()
	defer func() { b.Close() }()
	for i, l := range logs {
		if l.Type != raft.LogCommand || l.Index <= last {
			continue
		}
		resps, err := applyEntry(b, l.Data, f.log)
		if err != nil {
			f.fatal(l.Index, err)
		}
		for _, r := range resps {
			if errors.Is(r.err, ErrUnknownCommand) {
				// Skipping it would silently diverge from members that know it.
				f.log.Error("the raft log contains a command type this binary does not know; "+
					"upgrade this member to the version the other members run, then restart it",
					"index", l.Index, "error", r.err)
				panic(fmt.Sprintf("hub/store: raft index %d: %v", l.Index, r.err))
			}
			if r.err != nil {
				// A rejected command changes nothing but its index.
				f.log.Warn("FSM command rejected", "index", l.Index, "error", r.err)
			}
		}
		out[i] = resps
		last = l.Index
	}
	if err := b.Set(keyAppliedIndex, encodeUint64(last), nil); err != nil {
		f.fatal(last, err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		f.fatal(last, err)
	}
	if err := f.cat.update(f.db, b); err != nil {
		f.log.Error("catalog index update failed; rebuilding it from the database", "index", last, "error", err)
		if err := f.cat.rebuild(f.db); err != nil {
			f.fatal(last, err)
		}
	}
	f.applied.Store(last)
	f.notifyApplied()
	return out
}

// fatal stops the process: continuing after a failed write would make this
// member's state diverge from the log.
func (f *fsm) fatal(index uint64, err error) {
	f.log.Error("FSM cannot persist a committed raft entry; stopping this member to avoid divergent state. "+
		"Check the disk under the data dir, then restart: the entry is replayed from the raft log.",
		"index", index, "dir", f.dir, "error", err)
	panic(fmt.Sprintf("hub/store: FSM apply of raft index %d failed: %v", index, err))
}

// Snapshot implements raft.FSM: it pins a Pebble point-in-time snapshot; the
// expensive streaming happens in Persist, concurrently with new applies.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, ErrClosed
	}
	s := &fsmSnapshot{f: f, snap: f.db.NewSnapshot()}
	f.snapMu.Lock()
	f.snaps[s] = struct{}{}
	f.snapMu.Unlock()
	return s, nil
}

// invalidateSnapshots closes every open point-in-time snapshot so the
// database can be closed. It waits for a Persist in progress (which never
// waits on raft); a Persist not yet started fails and raft discards it.
func (f *fsm) invalidateSnapshots() {
	f.snapMu.Lock()
	snaps := make([]*fsmSnapshot, 0, len(f.snaps))
	for s := range f.snaps {
		snaps = append(snaps, s)
	}
	f.snapMu.Unlock()
	for _, s := range snaps {
		s.close()
	}
}

type fsmSnapshot struct {
	f    *fsm
	mu   sync.Mutex
	snap *pebble.Snapshot // nil once released or invalidated
}

// Persist implements raft.FSMSnapshot.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	err := s.persist(sink)
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("persist FSM snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) persist(w io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap == nil {
		return errors.New("FSM snapshot was invalidated by a concurrent restore")
	}
	applied, err := readUint64(s.snap, keyAppliedIndex)
	if err != nil {
		return err
	}
	sw, err := newSnapshotWriter(w, applied)
	if err != nil {
		return err
	}
	it, err := s.snap.NewIter(nil)
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		if err := sw.entry(it.Key(), v); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	return sw.finish()
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() { s.close() }

func (s *fsmSnapshot) close() {
	s.mu.Lock()
	if s.snap != nil {
		s.snap.Close()
		s.snap = nil
	}
	s.mu.Unlock()
	s.f.snapMu.Lock()
	delete(s.f.snaps, s)
	s.f.snapMu.Unlock()
}

// Restore implements raft.FSM: it verifies the stream into a fresh database
// next to the live one and only then swaps the directories. A corrupt stream
// leaves the live state untouched.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	tmp := f.dir + restoreTmpSuffix
	applied, err := buildFromSnapshot(tmp, rc, f.log)
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, f.dir+restoreNewSuffix); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("restore FSM: %w", err)
	}

	f.invalidateSnapshots()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil {
		return ErrClosed
	}
	if err := f.db.Close(); err != nil {
		f.log.Warn("closing FSM database before restore", "error", err)
	}
	f.db = nil
	if err := swapDirs(f.dir, f.dir+restoreNewSuffix); err != nil {
		// Startup recovery finishes the swap; this process cannot go on without state.
		panic(fmt.Sprintf("hub/store: restore FSM: %v; restart the member to complete the restore", err))
	}
	db, got, err := openFSMDB(f.dir, f.log)
	if err != nil {
		panic(fmt.Sprintf("hub/store: reopen FSM after restore: %v", err))
	}
	f.db = db
	if err := f.cat.rebuild(db); err != nil {
		panic(fmt.Sprintf("hub/store: catalog index after restore: %v", err))
	}
	if got != applied {
		f.log.Warn("snapshot header and data disagree on the applied index", "header", applied, "data", got)
	}
	f.applied.Store(got)
	if err := os.RemoveAll(f.dir + restoreOldSuffix); err != nil {
		f.log.Warn("removing previous FSM state after restore", "error", err)
	}
	f.log.Info("FSM restored from snapshot", "applied_index", got)
	f.notifyApplied()
	return nil
}

// buildFromSnapshot writes a verified snapshot stream into a new database at
// dir and returns the applied index from its header.
func buildFromSnapshot(dir string, r io.Reader, log *slog.Logger) (uint64, error) {
	if err := os.RemoveAll(dir); err != nil {
		return 0, fmt.Errorf("restore FSM: %w", err)
	}
	sr, hdr, err := newSnapshotReader(r)
	if err != nil {
		return 0, err
	}
	opts := pebbleOptions(log)
	opts.ErrorIfExists = true
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return 0, fmt.Errorf("restore FSM: create %s: %w", dir, err)
	}
	defer db.Close()
	b := db.NewBatch()
	defer func() { b.Close() }()
	var sawSchema bool
	for {
		k, v, ok, err := sr.next()
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		if bytes.Equal(k, keySchemaVersion) {
			sawSchema = true
		}
		if err := b.Set(k, v, nil); err != nil {
			return 0, fmt.Errorf("restore FSM: %w", err)
		}
		if b.Len() >= 4<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return 0, fmt.Errorf("restore FSM: %w", err)
			}
			b.Close()
			b = db.NewBatch()
		}
	}
	if !sawSchema {
		return 0, fmt.Errorf("%w: no schema version entry", ErrBadSnapshot)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("restore FSM: %w", err)
	}
	if err := db.Flush(); err != nil {
		return 0, fmt.Errorf("restore FSM: %w", err)
	}
	return hdr.applied, nil
}

// readSnapshotHeader returns the applied index recorded in a snapshot stream.
func readSnapshotHeader(r io.Reader) (uint64, error) {
	_, hdr, err := newSnapshotReader(r)
	return hdr.applied, err
}

func (f *fsm) close() error {
	f.invalidateSnapshots()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil {
		return nil
	}
	err := f.db.Close()
	f.db = nil
	return err
}

// read runs fn against the live database; ok is false after close.
func (f *fsm) read(fn func(r pebble.Reader) error) (ok bool, err error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return false, ErrClosed
	}
	return true, fn(f.db)
}

func (f *fsm) getProto(key []byte, m proto.Message) (found bool, err error) {
	_, err = f.read(func(r pebble.Reader) error {
		found, err = getProto(r, key, m)
		return err
	})
	return found, err
}
