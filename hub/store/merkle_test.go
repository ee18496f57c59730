package store

import (
	"context"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/internal/auditchain"
	"github.com/ronda-jakarta/ronda/internal/auditlog"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// storeSource serves a Store's log to the verifier, as the API does.
type storeSource struct{ s *Store }

func (src storeSource) Checkpoints(context.Context) ([]auditlog.Checkpoint, error) {
	var out []auditlog.Checkpoint
	for _, c := range src.s.AuditCheckpoints() {
		out = append(out, auditlog.Checkpoint{Size: c.GetSize(), Root: c.GetRoot(), At: c.GetAtUnixNano(), Member: c.GetMember(), Signature: c.GetSignature()})
	}
	return out, nil
}

func (src storeSource) Leaves(_ context.Context, start uint64, count int) ([]auditlog.Leaf, error) {
	lrs, err := src.s.AuditLeaves(start, count)
	var out []auditlog.Leaf
	for _, lr := range lrs {
		l := auditlog.Leaf{Index: lr.Index, NodeID: lr.Leaf.GetNodeId(), Seq: lr.Leaf.GetAuditSeq(), LeafHash: lr.Leaf.GetLeafHash()}
		if lr.Event != nil {
			r := auditchain.Record(lr.Event.GetNodeId(), lr.Event.GetEvent())
			r.ChainError = lr.Event.GetChainError()
			l.Record = &r
		}
		out = append(out, l)
	}
	return out, err
}

func (src storeSource) Proof(_ context.Context, index, size uint64, consistency bool) ([][]byte, error) {
	return src.s.AuditProof(index, size, consistency)
}

// checkpoint signs the FSM's current head, as the leader does.
func checkpoint(t testing.TB, f *fsm, s *Store, key ed25519.PrivateKey, index uint64) {
	t.Helper()
	size, root, err := s.AuditLogHead()
	if err != nil {
		t.Fatal(err)
	}
	cp := &rondav1.AuditCheckpoint{Size: size, Root: root, AtUnixNano: int64(index), Member: "h1"}
	cp.Signature = auth.Sign(key, auditlog.SignPurpose, auditchain.CheckpointText(size, root, cp.AtUnixNano))
	cmd, err := EncodeCommand(CommandAuditCheckpoint, cp)
	if err != nil {
		t.Fatal(err)
	}
	if r := applyAt(t, f, index, cmd); r.err != nil {
		t.Fatal(r.err)
	}
}

// buildAuditLog: node n1 uploads 20 chained events, the hub logs 5 of its
// own; checkpoints are signed at 12 leaves and at 25.
func buildAuditLog(t *testing.T) (*fsm, *Store, ed25519.PrivateKey) {
	t.Helper()
	f := newTestFSM(t, filepath.Join(t.TempDir(), "fsm"))
	s := &Store{fsm: f, log: testLogger()}
	key := auth.DeriveSigningKey([]byte(strings.Repeat("s", 32)))
	idx := uint64(1)
	applyAt(t, f, idx, nodeCmd(t, "n1", 1, regRec(1, "n1", "31.71.01.1001")))
	prev := auditchain.Genesis
	for i := uint64(1); i <= 20; i++ {
		e := &rondav1.AuditEvent{AuditSeq: i, AtUnixNano: int64(1000 + i), User: "rtrw", Action: "live", CameraId: "3171011001-cam1", Outcome: "ok", PrevSha256: prev}
		prev = auditchain.Hash(e)
		idx++
		if r := applyAt(t, f, idx, nodeCmd(t, "n1", int64(i), &rondav1.Record{Seq: i + 1, Body: &rondav1.Record_Audit{Audit: e}})); r.err != nil {
			t.Fatal(r.err)
		}
		if i == 12 {
			idx++
			checkpoint(t, f, s, key, idx)
		}
	}
	var evs []*rondav1.AuditEvent
	for i := 0; i < 5; i++ {
		evs = append(evs, &rondav1.AuditEvent{AtUnixNano: int64(5000 + i), User: "admin", Action: "user-create", Outcome: "ok"})
	}
	cmd, _ := EncodeCommand(CommandHubAudit, &rondav1.HubAuditCommand{Member: "h1", Events: evs})
	idx++
	applyAt(t, f, idx, cmd)
	idx++
	checkpoint(t, f, s, key, idx)
	return f, s, key
}

func verifyLog(t *testing.T, s *Store, key ed25519.PrivateKey) auditlog.Report {
	t.Helper()
	rep, err := auditlog.Verify(context.Background(), storeSource{s}, key.Public().(ed25519.PublicKey), nil)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestAuditMerkleLogVerifies(t *testing.T) {
	_, s, key := buildAuditLog(t)
	rep := verifyLog(t, s, key)
	if !rep.OK() || rep.Leaves != 25 || rep.Checkpoints != 2 || rep.Consistency != 1 || rep.Inclusion < 25 || rep.Nodes != 2 {
		t.Fatalf("untouched log: %+v", rep)
	}
	// Proofs against the RFC 6962 root computed independently.
	size, root, _ := s.AuditLogHead()
	if size != 25 || len(root) != 32 || string(root) == string(rfc6962.DefaultHasher.EmptyRoot()) {
		t.Fatalf("head %d %x", size, root)
	}
	// Another key does not verify the checkpoints.
	other := auth.DeriveSigningKey([]byte(strings.Repeat("o", 32)))
	rep, _ = auditlog.Verify(context.Background(), storeSource{s}, other.Public().(ed25519.PublicKey), nil)
	if rep.OK() || !strings.Contains(rep.Findings[0].Problem, "signature") {
		t.Fatalf("checkpoints signed by another key: %+v", rep)
	}
}

// Tamper test: one record edited in the member's store, another deleted;
// the verifier names both.
func TestAuditVerifyNamesARewrittenAndADeletedRecord(t *testing.T) {
	f, s, key := buildAuditLog(t)
	var ev rondav1.StoredAuditEvent
	if _, err := getProto(f.db, auditKey("n1", 5), &ev); err != nil {
		t.Fatal(err)
	}
	ev.Event.Outcome = "denied: forbidden" // someone hides what happened
	v, _ := marshalValue(&ev)
	if err := f.db.Set(auditKey("n1", 5), v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Delete(auditKey(HubAuditNode, 3), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	rep := verifyLog(t, s, key)
	var rewritten, deleted bool
	for _, fd := range rep.Findings {
		t.Log(fd)
		if fd.NodeID == "n1" && fd.Seq == 5 && fd.Leaf == 4 && strings.Contains(fd.Problem, "rewritten") {
			rewritten = true
		}
		if fd.NodeID == HubAuditNode && fd.Seq == 3 && strings.Contains(fd.Problem, "missing") {
			deleted = true
		}
	}
	if !rewritten || !deleted {
		t.Fatalf("rewritten named: %v, deleted named: %v: %+v", rewritten, deleted, rep.Findings)
	}
}

// A record and its leaf hash rewritten together: the chain names the
// record, and the signed checkpoints no longer match.
func TestAuditVerifyCatchesARewriteOfRecordAndLeaf(t *testing.T) {
	f, s, key := buildAuditLog(t)
	var ev rondav1.StoredAuditEvent
	_, _ = getProto(f.db, auditKey("n1", 7), &ev)
	ev.Event.User = "someone-else"
	v, _ := marshalValue(&ev)
	_ = f.db.Set(auditKey("n1", 7), v, pebble.Sync)
	var leaf rondav1.AuditLeaf
	_, _ = getProto(f.db, leafKey(6), &leaf)
	leaf.LeafHash = rfc6962.DefaultHasher.HashLeaf(auditchain.LeafData("n1", 7, auditchain.Hash(ev.Event)))
	lv, _ := marshalValue(&leaf)
	_ = f.db.Set(leafKey(6), lv, pebble.Sync)
	rep := verifyLog(t, s, key)
	var chain, root bool
	for _, fd := range rep.Findings {
		t.Log(fd)
		chain = chain || (fd.NodeID == "n1" && fd.Seq == 7 && strings.Contains(fd.Problem, "changed"))
		root = root || strings.Contains(fd.Problem, "not the signed")
	}
	if !chain || !root {
		t.Fatalf("chain named the record: %v, checkpoint mismatch: %v", chain, root)
	}
}

// An export's audit event is found by its export id, with its leaf; an
// inclusion proof from there verifies against the log's root.
func TestExportEventAndItsLeaf(t *testing.T) {
	f, s, _ := buildAuditLog(t)
	var last rondav1.StoredAuditEvent
	if _, err := getProto(f.db, auditKey("n1", 20), &last); err != nil {
		t.Fatal(err)
	}
	e := &rondav1.AuditEvent{AuditSeq: 21, AtUnixNano: 9000, User: "auditor", Action: "export", CameraId: "3171011001-cam1",
		Outcome: "ok export=E1 file_sha256=abcd", PrevSha256: auditchain.Hash(last.GetEvent())}
	if r := applyAt(t, f, 100, nodeCmd(t, "n1", 9, &rondav1.Record{Seq: 22, Body: &rondav1.Record_Audit{Audit: e}})); r.err != nil {
		t.Fatal(r.err)
	}
	ev, index, err := s.ExportEvent("n1", "E1")
	if err != nil || ev.GetEvent().GetAuditSeq() != 21 || index != 25 {
		t.Fatalf("export event: %v seq %d leaf %d", err, ev.GetEvent().GetAuditSeq(), index)
	}
	if _, _, err := s.ExportEvent("n1", "E2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an unknown export: %v", err)
	}
	size, root, _ := s.AuditLogHead()
	p, err := s.AuditProof(index, size, false)
	if err != nil {
		t.Fatal(err)
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(auditchain.LeafData("n1", 21, auditchain.Hash(e)))
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leaf, p, root); err != nil {
		t.Fatal(err)
	}
}
