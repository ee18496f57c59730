package evidence_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/ronda-jakarta/ronda/hub/evidence"
	"github.com/ronda-jakarta/ronda/hub/peer"
	"github.com/ronda-jakarta/ronda/hub/store"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
)

const converge = 20 * time.Second

// logBook keeps a member's log records for the test to look at.
type logBook struct {
	mu   sync.Mutex
	recs []record
}

type record struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

type bookHandler struct {
	book  *logBook
	attrs []slog.Attr
}

func (h *bookHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *bookHandler) Handle(_ context.Context, r slog.Record) error {
	rec := record{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { rec.attrs[a.Key] = a.Value.String(); return true })
	h.book.mu.Lock()
	h.book.recs = append(h.book.recs, rec)
	h.book.mu.Unlock()
	if os.Getenv("RONDA_TEST_LOG") != "" {
		fmt.Fprintf(os.Stderr, "%s %s %v\n", r.Level, r.Message, rec.attrs)
	}
	return nil
}
func (h *bookHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &bookHandler{book: h.book, attrs: append(slices.Clone(h.attrs), as...)}
}
func (h *bookHandler) WithGroup(string) slog.Handler { return h }

// errorAbout reports whether an error naming the blob, with msg in its
// message, was logged.
func (b *logBook) errorAbout(sha, msg string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.recs {
		if r.level >= slog.LevelError && r.attrs["blob"] == sha && strings.Contains(r.msg, msg) {
			return true
		}
	}
	return false
}

type member struct {
	id, raftAddr, grpcAddr string
	st                     *store.Store
	ev                     *evidence.Store
	rep                    *evidence.Replicator
	fwd                    *peer.Forwarder
	gs                     *grpc.Server
	logs                   *logBook
}

// freeAddr returns a free loopback port below the ephemeral range (see
// hub/store's tests: picked now, bound later).
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 200 {
		addr := fmt.Sprintf("127.0.0.1:%d", 10000+mrand.IntN(20000))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

// newCluster starts n members: a real Raft cluster on 127.0.0.1, each with
// the HubPeer service (FetchBlob from its evidence store) and a Replicator.
func newCluster(t *testing.T, n int, tune func(*evidence.ReplicatorConfig)) []*member {
	t.Helper()
	var ms []*member
	var peers []store.Peer
	addrs := map[string]string{}
	for i := range n {
		m := &member{id: fmt.Sprintf("hub-%d", i+1), raftAddr: freeAddr(t), grpcAddr: freeAddr(t), logs: &logBook{}}
		ms = append(ms, m)
		peers = append(peers, store.Peer{ID: m.id, RaftAddr: m.raftAddr})
		addrs[m.id] = m.grpcAddr
	}
	base := t.TempDir()
	for _, m := range ms {
		m.fwd = peer.NewForwarder(func(id string) (string, bool) { a, ok := addrs[id]; return a, ok }, nil)
		st, err := store.Open(store.Config{ID: m.id, RaftAddr: m.raftAddr, DataDir: filepath.Join(base, m.id, "raft"), Peers: peers,
			Forwarder: m.fwd, Logger: slog.New(slog.DiscardHandler),
			HeartbeatTimeout: 400 * time.Millisecond, ElectionTimeout: 400 * time.Millisecond, LeaderLeaseTimeout: 250 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		m.st = st
		if m.ev, err = evidence.Open(filepath.Join(base, m.id, "evidence")); err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", m.grpcAddr)
		if err != nil {
			t.Fatal(err)
		}
		m.gs = grpc.NewServer()
		rpcv1.RegisterHubPeerServer(m.gs, peer.NewServer(st).WithLogger(slog.New(slog.DiscardHandler)).WithBlobs(m.ev))
		go m.gs.Serve(lis)
		cfg := evidence.ReplicatorConfig{Self: m.id, Store: m.ev, Catalog: st, Fetcher: m.fwd,
			Interval: 100 * time.Millisecond, Logger: slog.New(&bookHandler{book: m.logs})}
		if tune != nil {
			tune(&cfg)
		}
		m.rep = evidence.NewReplicator(cfg)
		m.rep.Start()
	}
	t.Cleanup(func() {
		for _, m := range ms {
			m.rep.Close()
		}
		for _, m := range ms {
			m.gs.Stop()
			if err := m.st.Close(); err != nil {
				t.Errorf("%s: close: %v", m.id, err)
			}
			m.fwd.Close()
		}
	})
	eventually(t, "a leader", func() error {
		for _, m := range ms {
			if m.st.IsLeader() {
				return nil
			}
		}
		return errors.New("no leader")
	})
	return ms
}

func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(converge)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, converge, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func blobFile(t *testing.T, size int) (data []byte, sha string) {
	t.Helper()
	data = make([]byte, size)
	rand.Read(data)
	s := sha256.Sum256(data)
	return data, hex.EncodeToString(s[:])
}

// storeAt puts data into m's evidence store and records m as its holder,
// as Hub.StoreEvidence does for the puller.
func storeAt(t *testing.T, m *member, data []byte, sha, ref string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "pulled")
	if err := os.WriteFile(src, data, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := m.ev.Put(t.Context(), src, sha, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), converge)
	defer cancel()
	if err := m.st.AddBlobHolder(ctx, sha, int64(len(data)), "video/mp4", m.id, ref); err != nil {
		t.Fatal(err)
	}
}

func byID(ms []*member, id string) *member {
	for _, m := range ms {
		if m.id == id {
			return m
		}
	}
	return nil
}

// goodHolders returns the blob's holders (as member a sees it) once every
// holder has a good copy.
func goodHolders(ms []*member, a *member, sha string) ([]string, error) {
	b, err := a.st.Blob(sha)
	if err != nil {
		return nil, err
	}
	for _, h := range b.GetHolders() {
		if err := byID(ms, h).ev.Check(sha); err != nil {
			return nil, fmt.Errorf("holder %s: %w", h, err)
		}
	}
	return b.GetHolders(), nil
}

// A blob stored at one member is copied to a second; a holder that loses
// its copy (a lost disk) drops itself and another member copies it again.
func TestReplicationKeepsTwoCopies(t *testing.T) {
	ms := newCluster(t, 3, func(c *evidence.ReplicatorConfig) {
		c.CheckEvery = 300 * time.Millisecond
		c.Grace = 3 * time.Second // the second choice waits: one copy is made
	})
	a := ms[0]
	data, sha := blobFile(t, 700_000) // several 256 KiB chunks
	storeAt(t, a, data, sha, "case/C1/i1")

	var holders []string
	eventually(t, "a second copy", func() error {
		var err error
		holders, err = goodHolders(ms, a, sha)
		if err == nil && len(holders) < 2 {
			err = fmt.Errorf("holders %v", holders)
		}
		return err
	})
	t.Logf("holders after the first copy: %v", holders)
	if len(holders) != 2 || !slices.Contains(holders, a.id) {
		t.Fatalf("holders %v: want %s and one more", holders, a.id)
	}
	var x, y *member // x copied it; y did not
	for _, m := range ms[1:] {
		if slices.Contains(holders, m.id) {
			x = m
		} else {
			y = m
		}
	}
	eventually(t, x.id+" counts its copy", func() error {
		if s := x.rep.Stats(); s.Copied != 1 {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})

	// x loses its disk.
	if err := x.ev.Remove(sha); err != nil {
		t.Fatal(err)
	}
	eventually(t, x.id+" drops itself and says so", func() error {
		if !x.logs.errorAbout(sha, "missing") {
			return errors.New("no error logged naming the blob")
		}
		return nil
	})
	eventually(t, "another copy at "+y.id, func() error {
		hs, err := goodHolders(ms, a, sha)
		if err == nil && (!slices.Contains(hs, y.id) || len(hs) < 2) {
			err = fmt.Errorf("holders %v", hs)
		}
		holders = hs
		return err
	})
	t.Logf("holders after %s lost its copy: %v", x.id, holders)
	eventually(t, "the drop and the copy counted", func() error {
		if x.rep.Stats().Dropped != 1 || y.rep.Stats().Copied != 1 {
			return fmt.Errorf("stats: %s %+v, %s %+v", x.id, x.rep.Stats(), y.id, y.rep.Stats())
		}
		return nil
	})
	// Every member agrees.
	eventually(t, "all members see it", func() error {
		for _, m := range ms {
			b, err := m.st.Blob(sha)
			if err != nil {
				return err
			}
			if !slices.Equal(b.GetHolders(), holders) || !slices.Equal(b.GetRefs(), []string{"case/C1/i1"}) {
				return fmt.Errorf("%s: %v", m.id, b)
			}
		}
		return nil
	})
}

// A copy that does not hash to the blob's name (its only holder's disk
// rotted) is refused by the members fetching it: nothing stored.
func TestReplicationRefusesACorruptSource(t *testing.T) {
	ms := newCluster(t, 3, func(c *evidence.ReplicatorConfig) {
		c.CheckEvery = time.Hour // the holder does not find its own rot during the test
		c.Grace = 100 * time.Millisecond
	})
	eventually(t, "every replicator's first round (its start check)", func() error {
		for _, m := range ms {
			if m.rep.Stats().Rounds == 0 {
				return fmt.Errorf("%s has not run", m.id)
			}
		}
		return nil
	})
	a := ms[0]
	data, sha := blobFile(t, 400_000)
	rotten := slices.Clone(data)
	rotten[300_000] ^= 0x40
	p, err := a.ev.Path(sha)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(p), 0o750)
	if err := os.WriteFile(p, rotten, 0o640); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), converge)
	defer cancel()
	if err := a.st.AddBlobHolder(ctx, sha, int64(len(data)), "video/mp4", a.id, "case/C2/i1"); err != nil {
		t.Fatal(err)
	}

	eventually(t, "both other members tried and refused", func() error {
		for _, m := range ms[1:] {
			if m.rep.Stats().Refused == 0 || !m.logs.errorAbout(sha, "refused") {
				return fmt.Errorf("%s: %+v", m.id, m.rep.Stats())
			}
		}
		return nil
	})
	for _, m := range ms[1:] {
		if m.ev.Has(sha) {
			t.Fatalf("%s stored the corrupt copy", m.id)
		}
		if ents, _ := os.ReadDir(filepath.Join(m.ev.Dir(), "partial")); len(ents) != 0 {
			t.Fatalf("%s kept a partial copy: %v", m.id, ents)
		}
		if ents, _ := os.ReadDir(filepath.Join(m.ev.Dir(), "sha256")); len(ents) != 0 {
			t.Fatalf("%s stored something: %v", m.id, ents)
		}
		b, err := m.st.Blob(sha)
		if err != nil || !slices.Equal(b.GetHolders(), []string{a.id}) {
			t.Fatalf("%s sees %v %v", m.id, b, err)
		}
	}
}
