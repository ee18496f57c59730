package store

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

func testLogger() *slog.Logger {
	if os.Getenv("RONDA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newTestFSM(t *testing.T, dir string) *fsm {
	t.Helper()
	f, err := openFSM(dir, testLogger())
	if err != nil {
		t.Fatalf("openFSM: %v", err)
	}
	t.Cleanup(func() { f.close() })
	return f
}

func regRec(seq uint64, node, kel string) *rondav1.Record {
	return &rondav1.Record{Seq: seq, Body: &rondav1.Record_Registration{Registration: &rondav1.NodeInfo{NodeId: node, KelurahanCode: kel, Version: "t"}}}
}

func camsRec(seq uint64, ids ...string) *rondav1.Record {
	inv := &rondav1.CameraInventory{}
	for _, id := range ids {
		inv.Cameras = append(inv.Cameras, &rondav1.Camera{Id: id, Name: id, State: "streaming"})
	}
	return &rondav1.Record{Seq: seq, Body: &rondav1.Record_Cameras{Cameras: inv}}
}

func spanRec(seq uint64, cam string, startSec, endSec int64) *rondav1.Record {
	return &rondav1.Record{Seq: seq, Body: &rondav1.Record_Span{Span: &rondav1.Span{CameraId: cam, StartUnixNano: startSec * sec, EndUnixNano: endSec * sec}}}
}

func nodeCmd(t *testing.T, node string, now int64, recs ...*rondav1.Record) []byte {
	t.Helper()
	cmd, err := EncodeNodeRecords(&rondav1.NodeRecords{NodeId: node, Records: recs, ProposedUnixNano: now})
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func applyAt(t testing.TB, f *fsm, index uint64, cmd []byte) applyResponse {
	t.Helper()
	r := f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: cmd})
	if r == nil {
		return applyResponse{}
	}
	resps := r.([]applyResponse)
	if len(resps) != 1 {
		t.Fatalf("one command answered with %d results", len(resps))
	}
	return resps[0]
}

func getNode(t *testing.T, f *fsm, id string) *rondav1.StoredNode {
	t.Helper()
	var n rondav1.StoredNode
	found, err := f.getProto(nodeKey(id), &n)
	if err != nil || !found {
		t.Fatalf("node %s: found=%v err=%v", id, found, err)
	}
	return &n
}

func getCamera(t *testing.T, f *fsm, id string) (*rondav1.StoredCamera, bool) {
	t.Helper()
	var c rondav1.StoredCamera
	found, err := f.getProto(cameraKey(id), &c)
	if err != nil {
		t.Fatal(err)
	}
	return &c, found
}

func getCoverage(t *testing.T, f *fsm, cam string) []interval {
	t.Helper()
	var out []interval
	if _, err := f.read(func(r pebble.Reader) error {
		var err error
		out, err = readCoverage(r, cam, 0, 1<<62)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFSMApplyNodeRecordsIdempotent(t *testing.T) {
	f := newTestFSM(t, filepath.Join(t.TempDir(), "fsm"))
	cmd := nodeCmd(t, "n1", 1000,
		regRec(1, "ignored-id", "31.71.01.1001"),
		camsRec(2, "3171011001-a", "3171011001-b"),
		spanRec(3, "3171011001-a", 100, 160),
		spanRec(4, "3171011001-a", 161, 220), // 1 s hole: merges
		spanRec(5, "3171011001-a", 300, 360), // real gap
	)
	r := applyAt(t, f, 5, cmd)
	if r.err != nil || r.result != 5 {
		t.Fatalf("first apply: %+v", r)
	}
	n := getNode(t, f, "n1")
	if n.GetInfo().GetNodeId() != "n1" || n.GetInfo().GetKelurahanCode() != "31.71.01.1001" ||
		n.GetAppliedSeq() != 5 || n.GetRegisteredUnixNano() != 1000 || n.GetUpdatedUnixNano() != 1000 {
		t.Fatalf("node: %v", n)
	}
	c, ok := getCamera(t, f, "3171011001-a")
	if !ok || c.GetNodeId() != "n1" || c.GetKelurahanCode() != "31.71.01.1001" {
		t.Fatalf("camera: %v %v", ok, c)
	}
	wantCov := ivs(100, 220, 300, 360)
	if got := getCoverage(t, f, "3171011001-a"); !equalIntervals(got, wantCov) {
		t.Fatalf("coverage %v, want %v", got, wantCov)
	}

	// The same records again (a retried push) under a new raft index.
	r = applyAt(t, f, 6, nodeCmd(t, "n1", 2000, spanRec(4, "3171011001-a", 161, 220), spanRec(5, "3171011001-a", 300, 360)))
	if r.err != nil || r.result != 5 {
		t.Fatalf("retry: %+v", r)
	}
	if got := getNode(t, f, "n1"); got.GetUpdatedUnixNano() != 1000 {
		t.Fatalf("retry changed the node: %v", got)
	}
	if got := getCoverage(t, f, "3171011001-a"); !equalIntervals(got, wantCov) {
		t.Fatalf("coverage after retry %v, want %v", got, wantCov)
	}
	if f.appliedIndex() != 6 {
		t.Fatalf("applied index %d, want 6", f.appliedIndex())
	}

	// A partially new batch applies only the new tail.
	r = applyAt(t, f, 7, nodeCmd(t, "n1", 3000, spanRec(5, "3171011001-a", 300, 360), spanRec(6, "3171011001-a", 362, 400)))
	if r.err != nil || r.result != 6 {
		t.Fatalf("tail: %+v", r)
	}
	if got, want := getCoverage(t, f, "3171011001-a"), ivs(100, 220, 300, 400); !equalIntervals(got, want) {
		t.Fatalf("coverage %v, want %v", got, want)
	}
}

func equalIntervals(a, b []interval) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFSMSkipsAppliedIndexAfterReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fsm")
	f, err := openFSM(dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	applyAt(t, f, 3, nodeCmd(t, "n1", 1, spanRec(1, "cam", 0, 10)))
	if err := f.close(); err != nil {
		t.Fatal(err)
	}
	f = newTestFSM(t, dir)
	if f.appliedIndex() != 3 {
		t.Fatalf("applied index after reopen %d, want 3", f.appliedIndex())
	}
	// Raft replays index 3 with different content (impossible in practice; it
	// proves the entry is skipped by index, not by seq).
	if r := f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: nodeCmd(t, "n1", 1, spanRec(2, "cam", 100, 110))}); r != nil {
		t.Fatalf("replayed entry returned %v", r)
	}
	if got := getCoverage(t, f, "cam"); !equalIntervals(got, ivs(0, 10)) {
		t.Fatalf("replayed entry was applied: %v", got)
	}
}

func TestFSMInventory(t *testing.T) {
	f := newTestFSM(t, filepath.Join(t.TempDir(), "fsm"))
	applyAt(t, f, 1, nodeCmd(t, "n1", 1, regRec(1, "n1", "K1"), camsRec(2, "a", "b", "c")))
	applyAt(t, f, 2, nodeCmd(t, "n2", 1, regRec(1, "n2", "K2"), camsRec(2, "d")))

	// n1 drops b; n2 claims c.
	applyAt(t, f, 3, nodeCmd(t, "n1", 2, camsRec(3, "a", "c")))
	applyAt(t, f, 4, nodeCmd(t, "n2", 2, camsRec(3, "d", "c")))
	if _, ok := getCamera(t, f, "b"); ok {
		t.Fatal("camera b still present after n1 dropped it")
	}
	if c, _ := getCamera(t, f, "c"); c.GetNodeId() != "n2" || c.GetKelurahanCode() != "K2" {
		t.Fatalf("camera c should belong to n2/K2: %v", c)
	}
	// n1 later drops c: it belongs to n2 now and must survive.
	applyAt(t, f, 5, nodeCmd(t, "n1", 3, camsRec(4, "a")))
	if c, ok := getCamera(t, f, "c"); !ok || c.GetNodeId() != "n2" {
		t.Fatalf("camera c lost: %v %v", ok, c)
	}
	// n1 moves kelurahan: its cameras follow.
	applyAt(t, f, 6, nodeCmd(t, "n1", 4, regRec(5, "n1", "K9")))
	if c, _ := getCamera(t, f, "a"); c.GetKelurahanCode() != "K9" {
		t.Fatalf("camera a kelurahan: %v", c)
	}
	// A span for a camera owned by another node is ignored, but consumes its seq.
	r := applyAt(t, f, 7, nodeCmd(t, "n1", 5, spanRec(6, "d", 0, 10)))
	if r.result != 6 || len(getCoverage(t, f, "d")) != 0 {
		t.Fatalf("span for foreign camera: %+v, coverage %v", r, getCoverage(t, f, "d"))
	}
	ids, err := nodeCameraIDs(f.db, "n1")
	if err != nil || len(ids) != 1 || ids[0] != "a" {
		t.Fatalf("n1 index: %v %v", ids, err)
	}
	ids, _ = nodeCameraIDs(f.db, "n2")
	if len(ids) != 2 {
		t.Fatalf("n2 index: %v", ids)
	}
}

func TestFSMRejectsBadCommands(t *testing.T) {
	f := newTestFSM(t, filepath.Join(t.TempDir(), "fsm"))
	// An unknown command type in the log stops the member: skipping it would
	// diverge from members that know it.
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("unknown command type in the log did not stop the FSM")
			}
		}()
		applyAt(t, f, 1, []byte{0x7f, 1, 2})
	}()
	if f.appliedIndex() != 0 {
		t.Fatalf("unknown command advanced the applied index to %d", f.appliedIndex())
	}
	if r := applyAt(t, f, 2, []byte{byte(CommandNodeRecords), 0xff, 0xff}); !errors.Is(r.err, ErrBadCommand) {
		t.Fatalf("garbage payload: %v", r.err)
	}
	if r := applyAt(t, f, 3, nodeCmd(t, "", 1)); !errors.Is(r.err, ErrBadCommand) {
		t.Fatalf("empty node id: %v", r.err)
	}
	if f.appliedIndex() != 3 {
		t.Fatalf("rejected commands must still advance the applied index: %d", f.appliedIndex())
	}
	if err := ValidateCommand([]byte{0x7e}); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("ValidateCommand: %v", err)
	}
}

type memSink struct {
	bytes.Buffer
	canceled, closed bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.canceled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

func snapshotBytes(t *testing.T, f *fsm) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	if !sink.closed {
		t.Fatal("sink not closed")
	}
	return sink.Bytes()
}

func dump(t *testing.T, f *fsm) map[string]string {
	t.Helper()
	out := map[string]string{}
	_, err := f.read(func(r pebble.Reader) error {
		it, err := r.NewIter(nil)
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			out[string(it.Key())] = string(it.Value())
		}
		return it.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFSMSnapshotRestore(t *testing.T) {
	src := newTestFSM(t, filepath.Join(t.TempDir(), "fsm"))
	applyAt(t, src, 4, nodeCmd(t, "n1", 1, regRec(1, "n1", "K1"), camsRec(2, "a", "b"), spanRec(3, "a", 0, 60)))
	applyAt(t, src, 9, nodeCmd(t, "n2", 1, regRec(1, "n2", "K2"), camsRec(2, "c"), spanRec(3, "c", 10, 20)))
	data := snapshotBytes(t, src)

	dstDir := filepath.Join(t.TempDir(), "fsm")
	dst := newTestFSM(t, dstDir)
	applyAt(t, dst, 2, nodeCmd(t, "other", 1, camsRec(1, "zzz")))
	before := dump(t, dst)

	// Corruption anywhere, or truncation, is detected and leaves dst untouched.
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"flipped byte", func() []byte { d := bytes.Clone(data); d[len(d)/2] ^= 0x40; return d }()},
		{"flipped checksum", func() []byte { d := bytes.Clone(data); d[len(d)-1] ^= 1; return d }()},
		{"truncated", data[:len(data)-7]},
		{"trailing garbage", append(bytes.Clone(data), 0)},
		{"not a snapshot", []byte("hello world, this is not a snapshot at all")},
	} {
		err := dst.Restore(io.NopCloser(bytes.NewReader(tc.data)))
		if !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("%s: Restore = %v, want ErrBadSnapshot", tc.name, err)
		}
		if after := dump(t, dst); !mapsEqual(before, after) {
			t.Fatalf("%s: failed restore changed the live state", tc.name)
		}
	}
	if _, err := os.Stat(dstDir + restoreTmpSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary restore dir left behind: %v", err)
	}

	if err := dst.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got, want := dump(t, dst), dump(t, src); !mapsEqual(got, want) {
		t.Fatalf("restored state differs:\n got %v\nwant %v", got, want)
	}
	if dst.appliedIndex() != 9 {
		t.Fatalf("applied index after restore %d, want 9", dst.appliedIndex())
	}
	// The restored FSM keeps working and survives a reopen.
	applyAt(t, dst, 10, nodeCmd(t, "n1", 2, spanRec(4, "a", 61, 70)))
	dst.close()
	dst = newTestFSM(t, dstDir)
	if got := getCoverage(t, dst, "a"); !equalIntervals(got, ivs(0, 70)) {
		t.Fatalf("coverage after reopen: %v", got)
	}
	if _, ok := getCamera(t, dst, "zzz"); ok {
		t.Fatal("pre-restore state leaked into restored FSM")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestFSMRestoreInvalidatesPendingSnapshot(t *testing.T) {
	f := newTestFSM(t, filepath.Join(t.TempDir(), "fsm"))
	applyAt(t, f, 1, nodeCmd(t, "n1", 1, camsRec(1, "a")))
	data := snapshotBytes(t, f)
	pending, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Raft may install a snapshot while one of its own is not yet persisted;
	// the restore must not wait for it (that could deadlock raft).
	if err := f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := pending.Persist(&sink); err == nil || !sink.canceled {
		t.Fatalf("Persist of an invalidated snapshot: err=%v canceled=%v", err, sink.canceled)
	}
	pending.Release()
}

func TestFSMCompletesInterruptedRestore(t *testing.T) {
	base := t.TempDir()
	src := newTestFSM(t, filepath.Join(base, "src"))
	applyAt(t, src, 5, nodeCmd(t, "n1", 1, camsRec(1, "a")))
	data := snapshotBytes(t, src)

	dir := filepath.Join(base, "fsm")
	old, err := openFSM(dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	old.close()
	// Simulate a crash after the verified copy was renamed into place-to-be.
	if _, err := buildFromSnapshot(dir+restoreTmpSuffix, bytes.NewReader(data), testLogger()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir+restoreTmpSuffix, dir+restoreNewSuffix); err != nil {
		t.Fatal(err)
	}
	// And a leftover incomplete one from an earlier attempt.
	if err := os.MkdirAll(dir+restoreTmpSuffix, 0o700); err != nil {
		t.Fatal(err)
	}
	f := newTestFSM(t, dir)
	if f.appliedIndex() != 5 {
		t.Fatalf("applied index %d, want 5", f.appliedIndex())
	}
	if _, ok := getCamera(t, f, "a"); !ok {
		t.Fatal("restored data missing")
	}
	for _, suffix := range []string{restoreTmpSuffix, restoreNewSuffix, restoreOldSuffix} {
		if _, err := os.Stat(dir + suffix); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s left behind: %v", suffix, err)
		}
	}
}
