package store

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ronda-jakarta/ronda/internal/auditchain"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// auditRecs makes a node's chained audit events 1..n as outbox records
// starting at outbox seq first.
func auditRecs(first uint64, n int) []*rondav1.Record {
	var out []*rondav1.Record
	prev := auditchain.Genesis
	for i := 1; i <= n; i++ {
		e := &rondav1.AuditEvent{AuditSeq: uint64(i), AtUnixNano: int64(i) * sec, User: "siti", Action: "playback", CameraId: "3171011001-a", Outcome: "ok", PrevSha256: prev}
		prev = auditchain.Hash(e)
		out = append(out, &rondav1.Record{Seq: first + uint64(i) - 1, Body: &rondav1.Record_Audit{Audit: e}})
	}
	return out
}

func readNodeAudit(t *testing.T, f *fsm, node string) []*rondav1.StoredAuditEvent {
	t.Helper()
	var out []*rondav1.StoredAuditEvent
	if _, err := f.read(func(r pebble.Reader) error {
		var err error
		out, err = readAudit(r, auditPrefix(node), auditPrefix(node), 1000)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// A node's audit events are stored once each, in order, chained; a retried
// push stores nothing twice; an upload with an event missing is kept but
// flagged with what is missing.
func TestFSMStoresNodeAuditEventsOnceAndChecksTheirChain(t *testing.T) {
	f := newTestFSM(t, filepath.Join(t.TempDir(), "fsm"))
	recs := auditRecs(2, 4) // outbox seqs 2..5, audit seqs 1..4
	applyAt(t, f, 1, nodeCmd(t, "n1", 1000, append([]*rondav1.Record{regRec(1, "n1", "31.71.01.1001")}, recs[:3]...)...))
	// The push is retried (its ack was lost) with one more event.
	if r := applyAt(t, f, 2, nodeCmd(t, "n1", 2000, recs[1:]...)); r.err != nil || r.result != 5 {
		t.Fatalf("retried push: %+v", r)
	}
	got := readNodeAudit(t, f, "n1")
	if len(got) != 4 {
		t.Fatalf("%d audit events stored, want 4 (each once)", len(got))
	}
	for i, e := range got {
		if e.GetEvent().GetAuditSeq() != uint64(i+1) || e.GetChainError() != "" || e.GetNodeId() != "n1" {
			t.Fatalf("event %d: %v", i+1, e)
		}
	}
	if n := getNode(t, f, "n1"); n.GetAuditSeq() != 4 || string(n.GetAuditHeadSha256()) != string(auditchain.Hash(recs[3].GetAudit())) {
		t.Fatalf("node's chain head: seq %d", n.GetAuditSeq())
	}

	// Another node uploads events 1, 2 and 4: 3 never arrives (a tampered
	// or broken node). All three are kept; 4 says 3 is missing.
	other := auditRecs(1, 4)
	applyAt(t, f, 3, nodeCmd(t, "n2", 3000, other[0], other[1], other[3]))
	got = readNodeAudit(t, f, "n2")
	if len(got) != 3 || got[2].GetChainError() == "" || !strings.Contains(got[2].GetChainError(), "events 3..3 are missing") {
		t.Fatalf("n2's events: %v", got)
	}
	if got[0].GetChainError() != "" || got[1].GetChainError() != "" {
		t.Fatalf("intact events flagged: %v", got[:2])
	}
	// n1's log is untouched by n2's.
	if len(readNodeAudit(t, f, "n1")) != 4 {
		t.Fatal("n1's audit log changed")
	}
}
