package store

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/internal/auditchain"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// appendNodeAudit applies node's audit events from seq on (continuing its
// chain from the event stored at seq-1) at raft index idx.
func appendNodeAudit(t *testing.T, f *fsm, idx uint64, node string, seq uint64, evs ...*rondav1.AuditEvent) {
	t.Helper()
	prev := auditchain.Genesis
	if seq > 1 {
		var last rondav1.StoredAuditEvent
		if found, err := getProto(f.db, auditKey(node, seq-1), &last); err != nil || !found {
			t.Fatalf("%s #%d: %v %v", node, seq-1, found, err)
		}
		prev = auditchain.Hash(last.GetEvent())
	}
	var recs []*rondav1.Record
	for i, e := range evs {
		e.AuditSeq, e.PrevSha256 = seq+uint64(i), prev
		prev = auditchain.Hash(e)
		recs = append(recs, &rondav1.Record{Seq: 1000 + idx*10 + uint64(i), Body: &rondav1.Record_Audit{Audit: e}})
	}
	if r := applyAt(t, f, idx, nodeCmd(t, node, int64(idx), recs...)); r.err != nil {
		t.Fatal(r.err)
	}
}

func exportEv(at int64, user, cam, outcome string) *rondav1.AuditEvent {
	return &rondav1.AuditEvent{AtUnixNano: at, User: user, Action: "export", CameraId: cam, FromUnixNano: at - 600e9, ToUnixNano: at - 60e9,
		Reason: "JAKI-" + user, Outcome: outcome}
}

// exportIDs lists the export index as node/id.
func exportIDs(t *testing.T, s *Store) []string {
	t.Helper()
	recs, err := s.Exports()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.NodeID+"/"+r.ExportID)
	}
	return out
}

// buildExports: n1 makes E1 and E3 (and a failed export, and an event that
// names E1 again), n2 makes E2 and its own E1; newest event last.
func buildExports(t *testing.T) (*fsm, *Store) {
	t.Helper()
	f, s, _ := buildAuditLog(t) // n1 #1..#20, the hub's #1..#5
	applyAt(t, f, 200, nodeCmd(t, "n2", 1, regRec(1, "n2", "31.74.01.1001")))
	appendNodeAudit(t, f, 201, "n1", 21,
		exportEv(10_000, "auditor", "3171011001-cam1", api.ExportOutcome("E1", "aa11")),
		exportEv(10_100, "operator", "3171011001-cam1", "error: no recordings in that range"),
		&rondav1.AuditEvent{AtUnixNano: 10_150, User: "auditor", Action: "export-proof n1 E1", Outcome: "ok"},
		exportEv(10_200, "operator", "3171011001-cam2", api.ExportOutcome("E3", "cc33")),
		exportEv(10_300, "mallory", "3171011001-cam2", api.ExportOutcome("E1", "ffff")), // names E1 again: not the export
	)
	appendNodeAudit(t, f, 202, "n2", 1,
		exportEv(10_250, "auditor", "3174011001-cam1", api.ExportOutcome("E2", "bb22")),
		exportEv(10_260, "auditor", "3174011001-cam1", api.ExportOutcome("E1", "dd44")),
	)
	return f, s
}

// Every export event is indexed as it is applied: the list of exports,
// newest first, and the event behind each come from the index, the first
// event naming an export wins, and failed exports are not listed.
func TestExportIndexIsWrittenWhenAuditEventsApply(t *testing.T) {
	_, s := buildExports(t)
	if got, want := exportIDs(t, s), []string{"n2/E1", "n2/E2", "n1/E3", "n1/E1"}; !slices.Equal(got, want) {
		t.Fatalf("exports %v, want %v (newest first)", got, want)
	}
	recs, _ := s.Exports()
	e1 := recs[3]
	if e1.SHA256 != "aa11" || e1.Event.GetEvent().GetUser() != "auditor" || e1.Event.GetEvent().GetAuditSeq() != 21 || e1.Leaf == nil || *e1.Leaf != 25 {
		t.Fatalf("n1's E1: sha %s by %s, #%d, leaf %v", e1.SHA256, e1.Event.GetEvent().GetUser(), e1.Event.GetEvent().GetAuditSeq(), e1.Leaf)
	}
	ev, leaf, err := s.ExportEvent("n1", "E1")
	if err != nil || ev.GetEvent().GetAuditSeq() != 21 || leaf != 25 {
		t.Fatalf("ExportEvent(n1, E1): #%d leaf %d, %v", ev.GetEvent().GetAuditSeq(), leaf, err)
	}
	if ev, _, err := s.ExportEvent("n2", "E1"); err != nil || ev.GetEvent().GetOutcome() != api.ExportOutcome("E1", "dd44") {
		t.Fatalf("ExportEvent(n2, E1): %v %v", ev, err)
	}
	if _, _, err := s.ExportEvent("n2", "E3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("n2 made no E3: %v", err)
	}
	if nodes, _ := s.ExportNodes("E1"); !slices.Equal(nodes, []string{"n1", "n2"}) {
		t.Fatalf("nodes of E1: %v", nodes)
	}
	if nodes, _ := s.ExportNodes("E3"); !slices.Equal(nodes, []string{"n1"}) {
		t.Fatalf("nodes of E3: %v", nodes)
	}
}

func TestExportOfOutcomeReadsWhatExportOutcomeWrites(t *testing.T) {
	id, sha, ok := ExportOfOutcome(api.ExportOutcome("20261122T100000-0a1b2c3d", "9f86d081"))
	if !ok || id != "20261122T100000-0a1b2c3d" || sha != "9f86d081" {
		t.Fatalf("%q %q %v", id, sha, ok)
	}
	for _, o := range []string{"ok", "error: ok export=E1 file_sha256=x", "denied: forbidden", "ok export= file_sha256=x", "ok export=a\x00b file_sha256=x"} {
		if id, _, ok := ExportOfOutcome(o); ok {
			t.Errorf("%q read as export %q", o, id)
		}
	}
}

// A v3 database (no export index) is migrated when it is opened: the index
// is built from its audit events, and the schema version becomes 4.
func TestOpeningAV3DatabaseBuildsTheExportIndex(t *testing.T) {
	f, s := buildExports(t)
	want := exportIDs(t, s)
	dir := f.dir
	// Make it what a v3 member wrote: no e/ keys, schema 3.
	if err := f.db.DeleteRange(prefixExport, prefixUpperBound(prefixExport), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Set(keySchemaVersion, encodeUint32(3), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if got := exportIDs(t, s); len(got) != 0 {
		t.Fatalf("v3 state lists exports: %v", got)
	}
	if err := f.close(); err != nil {
		t.Fatal(err)
	}
	f2 := newTestFSM(t, dir)
	s2 := &Store{fsm: f2, log: testLogger()}
	if got := exportIDs(t, s2); !slices.Equal(got, want) {
		t.Fatalf("after the migration: exports %v, want %v", got, want)
	}
	v, closer, err := f2.db.Get(keySchemaVersion)
	if err != nil {
		t.Fatal(err)
	}
	ver, _ := decodeUint32(keySchemaVersion, v)
	closer.Close()
	if ver != SchemaVersion || SchemaVersion != 4 {
		t.Fatalf("schema version %d after the migration", ver)
	}
	// The migrated index is byte for byte what applying wrote.
	fresh, _ := buildExports(t)
	if a, b := exportKeys(t, f2), exportKeys(t, fresh); !slices.Equal(a, b) {
		t.Fatalf("migrated index %q, applied index %q", a, b)
	}
}

func exportKeys(t *testing.T, f *fsm) []string {
	t.Helper()
	var out []string
	if err := scanPrefix(f.db, prefixExport, func(k, v []byte) error { out = append(out, string(k)+"="+string(v)); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// The audit log newest first, across nodes in the order the cluster
// committed it: leaves descending, filtered by node, the scan bounded and
// resumed with the cursor.
func TestAuditNewestWalksLeavesDownward(t *testing.T) {
	_, s, _ := buildAuditLog(t) // leaves 0..19: n1 #1..#20; 20..24: the hub's #1..#5
	type got struct {
		leaf uint64
		node string
		seq  uint64
	}
	walk := func(node string, before uint64, maxScan, limit int) ([]got, int, uint64, bool) {
		t.Helper()
		var out []got
		scanned, next, more, err := s.AuditNewest(node, before, maxScan, func(leaf uint64, e *rondav1.StoredAuditEvent) bool {
			out = append(out, got{leaf, e.GetNodeId(), e.GetEvent().GetAuditSeq()})
			return len(out) >= limit
		})
		if err != nil {
			t.Fatal(err)
		}
		return out, scanned, next, more
	}
	evs, scanned, next, more := walk("", 0, 100, 3)
	if want := []got{{24, HubAuditNode, 5}, {23, HubAuditNode, 4}, {22, HubAuditNode, 3}}; !slices.Equal(evs, want) || scanned != 3 || next != 22 || !more {
		t.Fatalf("newest three: %v scanned %d next %d more %v", evs, scanned, next, more)
	}
	evs, _, next, _ = walk("", next, 100, 3)
	if evs[0].leaf != 21 || next != 19 {
		t.Fatalf("the next page starts at leaf %d (next %d), want 21", evs[0].leaf, next)
	}
	// One node's: the hub's leaves are examined but skipped.
	evs, scanned, next, more = walk("n1", 0, 100, 2)
	if want := []got{{19, "n1", 20}, {18, "n1", 19}}; !slices.Equal(evs, want) || scanned != 7 || next != 18 || !more {
		t.Fatalf("n1's newest two: %v scanned %d next %d more %v", evs, scanned, next, more)
	}
	// The scan bound: 4 leaves examined, none of n1's among them.
	evs, scanned, next, more = walk("n1", 0, 4, 10)
	if len(evs) != 0 || scanned != 4 || next != 21 || !more {
		t.Fatalf("bounded scan: %v scanned %d next %d more %v", evs, scanned, next, more)
	}
	// To the oldest: no cursor left.
	evs, scanned, next, more = walk("", 3, 100, 10)
	if want := []got{{2, "n1", 3}, {1, "n1", 2}, {0, "n1", 1}}; !slices.Equal(evs, want) || scanned != 3 || more {
		t.Fatalf("the oldest three: %v scanned %d next %d more %v", evs, scanned, next, more)
	}
	// The oldest-first listing carries each event's leaf.
	entries, err := s.AuditEntries("n1", 18, 5)
	if err != nil || len(entries) != 2 || entries[0].Leaf == nil || *entries[0].Leaf != 18 || *entries[1].Leaf != 19 {
		t.Fatalf("entries after n1 #18: %+v %v", entries, err)
	}
}

func TestAllHoldsListsEveryCamera(t *testing.T) {
	f := newTestFSM(t, filepath.Join(t.TempDir(), "fsm"))
	s := &Store{fsm: f, log: testLogger()}
	applyAt(t, f, 1, nodeCmd(t, "n1", 1, regRec(1, "n1", "31.71.01.1001"), camsRec(2, "3171011001-a", "3171011001-b")))
	applyAt(t, f, 2, holdCmd(t, "3171011001-a", "hub-1", false))
	applyAt(t, f, 3, holdCmd(t, "3171011001-b", "hub-2", false))
	applyAt(t, f, 4, holdCmd(t, "3171011001-b", "hub-2", true))
	var got []string
	for _, sh := range s.AllHolds() {
		got = append(got, sh.GetHold().GetCameraId()+"/"+sh.GetHold().GetHoldId()+"/"+sh.GetState()+"/"+sh.GetNodeId())
	}
	if want := []string{"3171011001-a/hub-1/pending/n1", "3171011001-b/hub-2/release_pending/n1"}; !slices.Equal(got, want) {
		t.Fatalf("all holds %v, want %v", got, want)
	}
}
