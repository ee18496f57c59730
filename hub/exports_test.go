package hub

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/hub/store"
	"github.com/ronda-jakarta/ronda/internal/auditchain"
	"github.com/ronda-jakarta/ronda/internal/auditlog"
	"github.com/ronda-jakarta/ronda/internal/pebbleutil"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

const testCam = "3171011001-gerbang"

// soloHub is a one-member hub (its store and the backend the API serves)
// in dataDir.
func soloHub(t *testing.T, dataDir, raftAddr string) (*backend, *store.Store) {
	t.Helper()
	self := store.Peer{ID: "h1", RaftAddr: raftAddr}
	st, err := store.Open(store.Config{ID: "h1", RaftAddr: raftAddr, DataDir: dataDir, Peers: []store.Peer{self},
		Logger: slog.New(slog.DiscardHandler), HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := st.LeaderWait(ctx); err != nil {
		t.Fatal(err)
	}
	key := auth.DeriveSigningKey([]byte(strings.Repeat("s", 32)))
	h := &Hub{store: st, cfg: &Config{MemberID: "h1"}, log: slog.New(slog.DiscardHandler),
		lists: &userLists{key: key, pub: key.Public().(ed25519.PublicKey)}}
	return &backend{h: h}, st
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// signCheckpoint signs the log's head, as the leader's checkpoint loop does.
func signCheckpoint(t *testing.T, b *backend) uint64 {
	t.Helper()
	size, root, err := b.h.store.AuditLogHead()
	if err != nil {
		t.Fatal(err)
	}
	cp := &rondav1.AuditCheckpoint{Size: size, Root: root, AtUnixNano: time.Now().UnixNano(), Member: "h1"}
	cp.Signature = auth.Sign(b.h.lists.key, auditlog.SignPurpose, auditchain.CheckpointText(size, root, cp.AtUnixNano))
	if err := b.h.store.ProposeCheckpoint(t.Context(), cp); err != nil {
		t.Fatal(err)
	}
	return size
}

// nodeWithExport: node n1 registers with its API URL, uploads 4 chained
// audit events (the third the export E1), and the leader signs a checkpoint.
func nodeWithExport(t *testing.T, b *backend) {
	t.Helper()
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	recs := []*rondav1.Record{
		{Seq: 1, Body: &rondav1.Record_Registration{Registration: &rondav1.NodeInfo{NodeId: "n1", KelurahanCode: "31.71.01.1001", ApiUrl: "https://n1.example:8443/", Version: "t"}}},
		{Seq: 2, Body: &rondav1.Record_Cameras{Cameras: &rondav1.CameraInventory{Cameras: []*rondav1.Camera{{Id: testCam, Name: "gerbang", State: "streaming"}}}}},
	}
	prev := auditchain.Genesis
	for i, e := range []*rondav1.AuditEvent{
		{User: "siti", Action: "live", CameraId: testCam, Outcome: "ok"},
		{User: "budi", Action: "playback", CameraId: testCam, Outcome: "denied: forbidden"},
		{User: "auditor", Action: "export", CameraId: testCam, FromUnixNano: at.Add(-time.Hour).UnixNano(), ToUnixNano: at.Add(-50 * time.Minute).UnixNano(),
			Reason: "JAKI-2026-0042", Outcome: api.ExportOutcome("E1", "9f86d081884c7d65")},
		{User: "auditor", Action: "download-file", CameraId: "E1", Outcome: "ok"},
	} {
		e.AuditSeq, e.AtUnixNano, e.PrevSha256 = uint64(i+1), at.Add(time.Duration(i)*time.Minute).UnixNano(), prev
		prev = auditchain.Hash(e)
		recs = append(recs, &rondav1.Record{Seq: uint64(3 + i), Body: &rondav1.Record_Audit{Audit: e}})
	}
	if _, err := b.h.store.ApplyNodeRecords(t.Context(), "n1", recs); err != nil {
		t.Fatal(err)
	}
	signCheckpoint(t, b)
}

// The hub lists the exports its nodes made, from their audit events, with
// the node's URLs; verifies one against the signed audit log; lists the log
// newest first with leaves; and verifies its own log.
func TestHubExportsFromTheAuditLog(t *testing.T) {
	b, _ := soloHub(t, t.TempDir(), freeAddr(t))
	defer b.h.store.Close()
	nodeWithExport(t, b)
	ctx := t.Context()

	list, err := b.Exports(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("exports: %+v %v", list, err)
	}
	e := list[0]
	if e.ID != "E1" || e.NodeID != "n1" || e.Status != "at_node" || e.Camera != testCam || e.SHA256 != "9f86d081884c7d65" ||
		e.RequestedBy != "auditor" || e.Reason != "JAKI-2026-0042" || e.Created.Format(time.RFC3339) != "2026-11-22T10:02:00Z" ||
		e.From.Format(time.RFC3339) != "2026-11-22T09:00:00Z" || e.To.Format(time.RFC3339) != "2026-11-22T09:10:00Z" ||
		e.FileURL != "https://n1.example:8443/api/v1/exports/E1/file.mp4" || e.ManifestURL != "https://n1.example:8443/api/v1/exports/E1/manifest.json" {
		t.Fatalf("the hub's view of export E1: %+v", e)
	}
	if _, _, _, err := b.OpenExport(ctx, "E1", "file"); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "kept by node n1 (https://n1.example:8443/api/v1/exports/E1/)") {
		t.Fatalf("downloading at the hub: %v", err)
	}

	v, err := b.VerifyExport(ctx, "E1", "")
	if err != nil {
		t.Fatal(err)
	}
	if !v.Verified || len(v.Problems) != 0 || v.Method != "audit-log" || v.NodeID != "n1" || v.Signer != "h1" || v.Leaf == nil || *v.Leaf != 2 || v.CheckpointSize != 4 {
		t.Fatalf("verification: %+v", v)
	}
	want := []string{"audit event n1 #3 records export E1 of camera " + testCam + " with file SHA-256 9f86d081884c7d65",
		"audit event n1 #3 is leaf 2 of the log signed at size 4 by h1", "the checkpoint at size 4 is signed with the hub key"}
	for i, w := range want {
		if len(v.Checks) != 3 || !strings.HasPrefix(v.Checks[i], w) {
			t.Fatalf("check %d: %q, want it to start %q (all: %q)", i, v.Checks, w, v.Checks)
		}
	}
	if _, err := b.VerifyExport(ctx, "E9", ""); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "GET /api/v1/exports lists") {
		t.Fatalf("an unknown export: %v", err)
	}
	if _, err := b.VerifyExport(ctx, "E1", "n7"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("E1 of another node: %v", err)
	}

	// Newest first across the log, by leaf; filters are the query's.
	page, err := b.AuditNewest(ctx, api.AuditQuery{Limit: 2, MaxScan: api.MaxAuditScan})
	if err != nil || len(page.Events) != 2 || page.Events[0].Action != "download-file" || *page.Events[0].Leaf != 3 || page.NextBefore == nil || *page.NextBefore != 2 {
		t.Fatalf("newest two: %+v %v", page, err)
	}
	page, _ = b.AuditNewest(ctx, api.AuditQuery{Limit: 10, Outcome: "denied"})
	if len(page.Events) != 1 || page.Events[0].User != "budi" || page.NextBefore != nil || page.Scanned != 4 {
		t.Fatalf("denied ones: %+v", page)
	}
	old, _ := b.Audit(ctx, api.AuditQuery{NodeID: "n1", Limit: 10})
	if len(old) != 4 || old[2].Leaf == nil || *old[2].Leaf != 2 {
		t.Fatalf("the oldest-first listing shows leaves: %+v", old)
	}

	rep, err := b.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	av := rep.(AuditVerification)
	if !av.OK || av.Member != "h1" || av.Leaves != 4 || av.Checkpoints != 1 || av.Findings == nil || av.Checked.IsZero() {
		t.Fatalf("the member's own log: %+v", av)
	}
}

// Tamper test: an audit record rewritten in a member's store is named by
// the member's own verification, and the export whose event was changed no
// longer verifies.
func TestHubAuditVerifyFindsATamperedStore(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	b, st := soloHub(t, dir, addr)
	nodeWithExport(t, b)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// Someone with the disk edits two events: who was refused, and the export's file hash.
	db, err := pebble.Open(filepath.Join(dir, "fsm"), &pebble.Options{Logger: pebbleutil.NewLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	for seq, edit := range map[uint64]func(e *rondav1.AuditEvent){
		2: func(e *rondav1.AuditEvent) { e.Outcome = "ok" },
		3: func(e *rondav1.AuditEvent) { e.Outcome = api.ExportOutcome("E1", "00000000deadbeef") },
	} {
		key := binary.BigEndian.AppendUint64([]byte("u/n1\x00"), seq)
		v, closer, err := db.Get(key)
		if err != nil {
			t.Fatal(err)
		}
		var ev rondav1.StoredAuditEvent
		if err := proto.Unmarshal(v, &ev); err != nil {
			t.Fatal(err)
		}
		closer.Close()
		edit(ev.Event)
		nv, _ := proto.Marshal(&ev)
		if err := db.Set(key, nv, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	b, st = soloHub(t, dir, addr)
	defer st.Close()
	rep, err := b.VerifyAudit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	av := rep.(AuditVerification)
	named := map[uint64]bool{}
	for _, f := range av.Findings {
		t.Log(f)
		if f.NodeID == "n1" && strings.Contains(f.Problem, "rewritten") {
			named[f.Seq] = true
		}
	}
	if av.OK || !named[2] || !named[3] {
		t.Fatalf("the tampered store verifies OK %v; rewritten records named: %v", av.OK, named)
	}
	v, err := b.VerifyExport(t.Context(), "E1", "n1")
	if err != nil {
		t.Fatal(err)
	}
	if v.Verified || len(v.Problems) == 0 || !strings.Contains(strings.Join(v.Problems, " "), "is not leaf 2 of the log") {
		t.Fatalf("the altered export event verifies: %+v", v)
	}
	for _, c := range v.Checks {
		if strings.Contains(c, "is leaf") {
			t.Fatalf("a check claims what failed: %q", c)
		}
	}
}
