package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/hub/evidence"
	"github.com/ronda-jakarta/ronda/hub/store"
)

// evidenceHub is a one-member hub with its evidence store (not started).
func evidenceHub(t *testing.T) *Hub {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raftAddr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	st, err := store.Open(store.Config{ID: "h1", RaftAddr: raftAddr, DataDir: filepath.Join(dir, "raft"),
		Peers: []store.Peer{{ID: "h1", RaftAddr: raftAddr}}, Logger: slog.New(slog.DiscardHandler),
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := st.LeaderWait(ctx); err != nil {
		t.Fatal(err)
	}
	ev, err := evidence.Open(filepath.Join(dir, "evidence"))
	if err != nil {
		t.Fatal(err)
	}
	return &Hub{store: st, evidence: ev, cfg: &Config{MemberID: "h1"}, log: slog.New(slog.DiscardHandler)}
}

func TestStoreEvidenceMovesInAndRecords(t *testing.T) {
	h := evidenceHub(t)
	data := []byte("pulled footage, verified by the puller")
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	src := filepath.Join(t.TempDir(), "pull.mp4")
	os.WriteFile(src, data, 0o640)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	// Not the bytes it claims: refused, nothing stored or recorded.
	if err := h.StoreEvidence(ctx, src, hex.EncodeToString(make([]byte, 32)), int64(len(data)), "video/mp4", "case/C1/i1"); !errors.Is(err, evidence.ErrMismatch) {
		t.Fatalf("mismatch: %v", err)
	}
	if len(h.store.Blobs()) != 0 {
		t.Fatal("a refused blob was recorded")
	}

	if err := h.StoreEvidence(ctx, src, sha, int64(len(data)), "video/mp4", "case/C1/i1"); err != nil {
		t.Fatal(err)
	}
	if !h.Evidence().Has(sha) {
		t.Fatal("not in the evidence store")
	}
	b, err := h.store.Blob(sha)
	if err != nil || !slices.Equal(b.GetHolders(), []string{"h1"}) || !slices.Equal(b.GetRefs(), []string{"case/C1/i1"}) || b.GetSize() != int64(len(data)) {
		t.Fatalf("recorded %v %v", b, err)
	}
	// Repeated (the file is gone: it was moved in), for another item: recorded too.
	if err := h.StoreEvidence(ctx, src, sha, int64(len(data)), "video/mp4", "case/C2/i1"); err != nil {
		t.Fatalf("repeated: %v", err)
	}
	if b, _ := h.store.Blob(sha); len(b.GetRefs()) != 2 {
		t.Fatalf("refs %v", b.GetRefs())
	}
}

func TestEvidenceConfigDefaults(t *testing.T) {
	c, err := LoadConfig("../deploy/hub.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Evidence.Dir != filepath.Join(c.DataDir, "evidence") || c.Evidence.MinCopies != 2 {
		t.Fatalf("evidence config %+v", c.Evidence)
	}
	p := filepath.Join(t.TempDir(), "hub.yaml")
	os.WriteFile(p, []byte("member_id: h1\ndata_dir: /d\ntls: {cert: c, key: k, ca: a}\nmembers: [{id: h1, raft: '127.0.0.1:7001', grpc: 'x:2'}]\n"+
		"auth: {token_secret_file: s, users: [{name: a, password_hash: h, role: admin}]}\nevidence: {min_copies: -1}\n"), 0o600)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "evidence.min_copies") {
		t.Fatalf("negative min_copies: %v", err)
	}
}
