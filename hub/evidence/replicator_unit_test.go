package evidence

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/ronda-jakarta/ronda/hub/store"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// fakeCatalog is Raft in memory.
type fakeCatalog struct {
	mu      sync.Mutex
	blobs   map[string]*rondav1.StoredBlob
	members []store.Member
	added   []string // "sha member" of every AddBlobHolder
	removed []string
}

func newFakeCatalog(members ...string) *fakeCatalog {
	c := &fakeCatalog{blobs: map[string]*rondav1.StoredBlob{}}
	for _, m := range members {
		c.members = append(c.members, store.Member{ID: m, Suffrage: "voter"})
	}
	return c
}

func (c *fakeCatalog) Blobs() []*rondav1.StoredBlob {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*rondav1.StoredBlob
	for _, b := range c.blobs {
		out = append(out, proto.CloneOf(b))
	}
	slices.SortFunc(out, func(a, b *rondav1.StoredBlob) int { return cmpString(a.GetSha256(), b.GetSha256()) })
	return out
}

func (c *fakeCatalog) AddBlobHolder(_ context.Context, sha string, size int64, mediaType, member, ref string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.blobs[sha]
	if b == nil {
		b = &rondav1.StoredBlob{Sha256: sha, Size: size, MediaType: mediaType}
		c.blobs[sha] = b
	}
	if b.Size != size {
		return errors.New("size mismatch")
	}
	if !slices.Contains(b.Holders, member) {
		b.Holders = append(b.Holders, member)
		slices.Sort(b.Holders)
	}
	c.added = append(c.added, sha+" "+member)
	return nil
}

func (c *fakeCatalog) RemoveBlobHolder(_ context.Context, sha, member string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := c.blobs[sha]; b != nil {
		b.Holders = slices.DeleteFunc(b.Holders, func(h string) bool { return h == member })
	}
	c.removed = append(c.removed, sha+" "+member)
	return nil
}

func (c *fakeCatalog) Cluster() store.ClusterInfo {
	return store.ClusterInfo{Leader: c.members[0].ID, Members: c.members}
}

// fakeFetcher serves blobs from memory, breaking the stream after failAfter
// bytes when set, and remembers the offsets asked for.
type fakeFetcher struct {
	mu        sync.Mutex
	data      map[string][]byte // by sha
	failAfter int
	offsets   []int64
}

type sliceStream struct {
	grpc.ClientStream
	chunks []*rondav1.BlobChunk
	err    error
}

func (s *sliceStream) Recv() (*rondav1.BlobChunk, error) {
	if len(s.chunks) == 0 {
		if s.err != nil {
			return nil, s.err
		}
		return nil, io.EOF
	}
	c := s.chunks[0]
	s.chunks = s.chunks[1:]
	return c, nil
}

func (f *fakeFetcher) FetchBlob(_ context.Context, _ string, sha string, offset int64) (grpc.ServerStreamingClient[rondav1.BlobChunk], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offsets = append(f.offsets, offset)
	data := f.data[sha]
	s := &sliceStream{}
	end := int64(len(data))
	if f.failAfter > 0 && offset+int64(f.failAfter) < end {
		end = offset + int64(f.failAfter)
		s.err = errors.New("connection reset")
	}
	for off := offset; off < end; off += 100_000 {
		s.chunks = append(s.chunks, &rondav1.BlobChunk{Offset: off, Data: data[off:min(off+100_000, end)]})
	}
	return s, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// A fetch broken off is resumed from where it stopped, not from the start.
func TestReplicatorResumesAPartialCopy(t *testing.T) {
	data := randomBytes(1_000_000)
	sha := shaOf(data)
	cat := newFakeCatalog("a", "b")
	cat.AddBlobHolder(t.Context(), sha, int64(len(data)), "video/mp4", "a", "")
	fetch := &fakeFetcher{data: map[string][]byte{sha: data}, failAfter: 350_000}
	st := openStore(t)
	r := NewReplicator(ReplicatorConfig{Self: "b", Store: st, Catalog: cat, Fetcher: fetch})

	r.round(t.Context())
	if st.Has(sha) {
		t.Fatal("stored after a broken fetch")
	}
	fi, err := os.Stat(st.partialPath(sha))
	if err != nil || fi.Size() != 350_000 {
		t.Fatalf("partial copy: %v, %v (want the 350000 bytes received)", err, fi)
	}
	if got := r.Stats().FetchErrors; got != 1 {
		t.Fatalf("fetch errors %d", got)
	}
	fetch.failAfter = 0
	clear(r.retry) // skip the backoff
	r.round(t.Context())
	if !slices.Equal(fetch.offsets, []int64{0, 350_000}) {
		t.Fatalf("offsets asked for: %v, want [0 350000]", fetch.offsets)
	}
	if err := st.Check(sha); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(st.partialPath(sha)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("partial copy left after the blob was stored: %v", err)
	}
	if b := cat.Blobs()[0]; !slices.Equal(b.Holders, []string{"a", "b"}) {
		t.Fatalf("holders %v", b.Holders)
	}
	if s := r.Stats(); s.Copied != 1 || s.Refused != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A copy whose bytes are not the blob is refused and removed; a blob whose
// copy here is lost or corrupt makes this member drop itself.
func TestReplicatorRefusesBadCopiesAndDropsLostOnes(t *testing.T) {
	good := randomBytes(300_000)
	sha := shaOf(good)
	bad := bytes.Clone(good)
	bad[1000] ^= 0xff
	cat := newFakeCatalog("a", "b")
	cat.AddBlobHolder(t.Context(), sha, int64(len(good)), "", "a", "")
	st := openStore(t)
	r := NewReplicator(ReplicatorConfig{Self: "b", Store: st, Catalog: cat, Fetcher: &fakeFetcher{data: map[string][]byte{sha: bad}}})
	r.round(t.Context())
	if st.Has(sha) || fileExists(st.partialPath(sha)) || r.Stats().Refused != 1 {
		t.Fatalf("a corrupt copy: stored %v, partial left %v, stats %+v", st.Has(sha), fileExists(st.partialPath(sha)), r.Stats())
	}
	if b := cat.Blobs()[0]; !slices.Equal(b.Holders, []string{"a"}) {
		t.Fatalf("holders %v", b.Holders)
	}

	// b holds two blobs: one's file vanishes, the other's rots.
	lost, rotten := randomBytes(1000), randomBytes(2000)
	for _, d := range [][]byte{lost, rotten} {
		if err := st.Put(t.Context(), writeFile(t, t.TempDir(), "f", d), shaOf(d), int64(len(d))); err != nil {
			t.Fatal(err)
		}
		cat.AddBlobHolder(t.Context(), shaOf(d), int64(len(d)), "", "b", "")
		cat.AddBlobHolder(t.Context(), shaOf(d), int64(len(d)), "", "a", "")
	}
	os.Remove(st.path(shaOf(lost)))
	p := st.path(shaOf(rotten))
	os.WriteFile(p, append(bytes.Clone(rotten[:1999]), rotten[1999]^1), 0o640)
	cat.mu.Lock()
	cat.removed = nil
	cat.mu.Unlock()
	r.check(t.Context(), cat.Blobs(), view{members: map[string]bool{"a": true, "b": true}, voters: 2})
	slices.Sort(cat.removed)
	want := []string{shaOf(lost) + " b", shaOf(rotten) + " b"}
	slices.Sort(want)
	if !slices.Equal(cat.removed, want) {
		t.Fatalf("dropped %v, want %v", cat.removed, want)
	}
	if st.Has(shaOf(rotten)) {
		t.Fatal("the corrupt copy is still in the store")
	}
	if ents, _ := os.ReadDir(filepath.Join(st.dir, "corrupt")); len(ents) != 1 {
		t.Fatalf("quarantined: %v", ents)
	}
	if r.Stats().Dropped != 2 || !r.lost[shaOf(lost)] {
		t.Fatalf("stats %+v", r.Stats())
	}
}

// A verified copy already on this disk (stored, then a crash before Raft
// heard of it) is recorded without fetching.
func TestReplicatorRecordsALocalCopy(t *testing.T) {
	data := randomBytes(5000)
	sha := shaOf(data)
	cat := newFakeCatalog("a", "b", "c")
	cat.AddBlobHolder(t.Context(), sha, int64(len(data)), "", "a", "")
	st := openStore(t)
	if err := st.Put(t.Context(), writeFile(t, t.TempDir(), "f", data), sha, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	fetch := &fakeFetcher{}
	r := NewReplicator(ReplicatorConfig{Self: "b", Store: st, Catalog: cat, Fetcher: fetch, Grace: 1 << 40})
	// b may be behind c in the order of who copies first: its turn has come.
	r.firstShort[sha] = r.cfg.Now().Add(-1 << 50)
	r.round(t.Context())
	if len(fetch.offsets) != 0 || r.Stats().Registered != 1 {
		t.Fatalf("fetched %v, stats %+v", fetch.offsets, r.Stats())
	}
	if b := cat.Blobs()[0]; !slices.Equal(b.Holders, []string{"a", "b"}) {
		t.Fatalf("holders %v", b.Holders)
	}
}

// Of the members without a copy, one copies at once and the others wait;
// a member that lost the blob waits until the others' turns are over.
func TestReplicatorWait(t *testing.T) {
	b := &rondav1.StoredBlob{Sha256: shaOf([]byte("x")), Holders: []string{"a"}}
	v := view{members: map[string]bool{"a": true, "b": true, "c": true, "d": true}, voters: 4}
	waits := map[time.Duration]string{}
	for _, m := range []string{"b", "c", "d"} {
		waits[NewReplicator(ReplicatorConfig{Self: m, Grace: time.Second}).wait(b, v)] = m
	}
	if len(waits) != 3 || waits[0] == "" || waits[time.Second] == "" || waits[2*time.Second] == "" {
		t.Fatalf("waits %v: want 0s, 1s and 2s once each", waits)
	}
	first := NewReplicator(ReplicatorConfig{Self: waits[0], Grace: time.Second})
	first.lost[b.Sha256] = true
	if got := first.wait(b, v); got != 3*time.Second {
		t.Fatalf("a member that lost the blob waits %s, want 3s (after the others)", got)
	}
	if got := NewReplicator(ReplicatorConfig{Self: "z", Grace: time.Second}).wait(b, v); got != 3*time.Second {
		t.Fatalf("a non-member waits %s", got)
	}
}
