package evidence

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/ronda-jakarta/ronda/hub/store"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// Catalog is the Raft side of the evidence store (*store.Store).
type Catalog interface {
	Blobs() []*rondav1.StoredBlob
	AddBlobHolder(ctx context.Context, sha string, size int64, mediaType, member, ref string) error
	RemoveBlobHolder(ctx context.Context, sha, member string) error
	Cluster() store.ClusterInfo
}

// Fetcher opens a HubPeer.FetchBlob stream from another member
// (*peer.Forwarder).
type Fetcher interface {
	FetchBlob(ctx context.Context, memberID, sha string, offset int64) (grpc.ServerStreamingClient[rondav1.BlobChunk], error)
}

// Defaults of ReplicatorConfig.
const (
	DefaultMinCopies   = 2
	DefaultInterval    = 2 * time.Second
	DefaultCheckEvery  = 5 * time.Minute
	DefaultCheckBytes  = 1 << 30
	DefaultFetchBudget = 4
	DefaultGrace       = 30 * time.Second
	DefaultStall       = 30 * time.Second
	maxRetryWait       = 5 * time.Minute
	minRetryWait       = 5 * time.Second
	raftTimeout        = 10 * time.Second
)

// ReplicatorConfig configures a Replicator; zero fields take the defaults.
type ReplicatorConfig struct {
	Self    string // this member's id
	Store   *Store
	Catalog Catalog
	Fetcher Fetcher
	// MinCopies: a blob held by fewer members than min(MinCopies, voters)
	// is copied. Default 2.
	MinCopies int
	// Interval between rounds (a Poke starts one at once). Default 2s.
	Interval time.Duration
	// CheckEvery: how often the blobs this member holds are checked (and
	// once at start). Default 5m.
	CheckEvery time.Duration
	// CheckBytes: how many bytes one check round re-hashes (at least one
	// blob), continuing where the last round stopped; every round also
	// looks for missing and truncated files. Default 1 GiB.
	CheckBytes int64
	// FetchBudget: blobs fetched in one round at most (one at a time). Default 4.
	FetchBudget int
	// Grace: a member that is not the first choice to copy a blob waits
	// this long per place behind it before copying it anyway. Default 30s.
	Grace time.Duration
	// Stall: a fetch that receives nothing for this long is abandoned (and
	// resumed later). Default 30s.
	Stall  time.Duration
	Logger *slog.Logger
	Now    func() time.Time
}

// ReplicatorStats counts what a Replicator did since it started.
type ReplicatorStats struct {
	Copied      int64 // blobs fetched from another member, verified and stored
	Registered  int64 // blobs found verified on this disk and recorded as held
	Refused     int64 // fetched copies refused: not the blob's SHA-256 or size
	FetchErrors int64 // fetches that failed otherwise (to be resumed)
	Dropped     int64 // blobs this member stopped holding: missing or corrupt here
	Checked     int64 // blobs re-hashed by checks
	Rounds      int64 // rounds run with a leader known (the first one checks)
}

// Replicator keeps every blob on at least min(MinCopies, voters) members:
// it copies blobs short of copies that this member does not hold from a
// member that does, and drops this member as the holder of blobs it lost.
// One runs on every member.
type Replicator struct {
	cfg     ReplicatorConfig
	log     *slog.Logger
	poke    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	started atomic.Bool

	copied, registered, refused, fetchErrors, dropped, checked, rounds atomic.Int64

	// Only the loop goroutine touches these.
	nextCheck  time.Time
	cursor     string               // the last blob re-hashed
	firstShort map[string]time.Time // when this member first saw a blob short of copies
	retry      map[string]*retryState
	lost       map[string]bool // blobs this member dropped: it copies them last
}

type retryState struct {
	next time.Time
	wait time.Duration
	from int // the next attempt starts with this source
}

// NewReplicator returns a Replicator; Start runs it.
func NewReplicator(cfg ReplicatorConfig) *Replicator {
	if cfg.MinCopies <= 0 {
		cfg.MinCopies = DefaultMinCopies
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = DefaultCheckEvery
	}
	if cfg.CheckBytes <= 0 {
		cfg.CheckBytes = DefaultCheckBytes
	}
	if cfg.FetchBudget <= 0 {
		cfg.FetchBudget = DefaultFetchBudget
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Stall <= 0 {
		cfg.Stall = DefaultStall
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Replicator{cfg: cfg, log: log, poke: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		firstShort: map[string]time.Time{}, retry: map[string]*retryState{}, lost: map[string]bool{}}
}

// Start runs the replicator until Close (once; later calls do nothing).
func (r *Replicator) Start() {
	if r.started.CompareAndSwap(false, true) {
		go r.run()
	}
}

// Close stops the replicator (an unfinished fetch is resumed next time)
// and waits for it. A replicator never started just stays stopped.
func (r *Replicator) Close() {
	if r == nil {
		return
	}
	r.once.Do(func() { close(r.stop) })
	if !r.started.CompareAndSwap(false, true) {
		<-r.done
	}
}

// Poke starts a round now (or right after the current one).
func (r *Replicator) Poke() {
	if r == nil {
		return
	}
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// Stats returns the counters.
func (r *Replicator) Stats() ReplicatorStats {
	return ReplicatorStats{Copied: r.copied.Load(), Registered: r.registered.Load(), Refused: r.refused.Load(),
		FetchErrors: r.fetchErrors.Load(), Dropped: r.dropped.Load(), Checked: r.checked.Load(), Rounds: r.rounds.Load()}
}

func (r *Replicator) run() {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		r.round(ctx)
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.poke:
		}
	}
}

// view is one round's picture of the cluster.
type view struct {
	members map[string]bool // in the Raft configuration
	voters  int
}

// want is how many copies a blob needs: min(MinCopies, voters).
func (v view) want(minCopies int) int { return max(1, min(minCopies, v.voters)) }

// live counts the holders still in the configuration.
func (v view) live(b *rondav1.StoredBlob) int {
	n := 0
	for _, h := range b.GetHolders() {
		if v.members[h] {
			n++
		}
	}
	return n
}

func (r *Replicator) round(ctx context.Context) {
	info := r.cfg.Catalog.Cluster()
	if info.Leader == "" || len(info.Members) == 0 {
		return // nothing can be recorded without a leader
	}
	v := view{members: map[string]bool{}}
	for _, m := range info.Members {
		v.members[m.ID] = true
		if m.Suffrage == "voter" {
			v.voters++
		}
	}
	if v.voters == 0 {
		return
	}
	blobs := r.cfg.Catalog.Blobs()
	now := r.cfg.Now()
	if !now.Before(r.nextCheck) {
		if r.check(ctx, blobs, v) {
			r.nextCheck = now.Add(r.cfg.CheckEvery)
		} else {
			r.nextCheck = now.Add(min(r.cfg.CheckEvery, 10*r.cfg.Interval))
		}
	}
	if ctx.Err() == nil {
		r.copyShort(ctx, blobs, v)
	}
	r.rounds.Add(1)
}

func holds(b *rondav1.StoredBlob, member string) bool {
	return slices.Contains(b.GetHolders(), member)
}

// copyShort fetches, one at a time, the blobs short of copies that this
// member should copy now.
func (r *Replicator) copyShort(ctx context.Context, blobs []*rondav1.StoredBlob, v view) {
	want := v.want(r.cfg.MinCopies)
	now := r.cfg.Now()
	budget := r.cfg.FetchBudget
	for _, b := range blobs {
		sha := b.GetSha256()
		if holds(b, r.cfg.Self) || v.live(b) >= want {
			delete(r.firstShort, sha)
			delete(r.retry, sha)
			continue
		}
		if !v.members[r.cfg.Self] {
			continue // not (or no longer) a member: copy nothing
		}
		first, ok := r.firstShort[sha]
		if !ok {
			first = now
			r.firstShort[sha] = now
		}
		if now.Sub(first) < r.wait(b, v) {
			continue
		}
		if rs := r.retry[sha]; rs != nil && now.Before(rs.next) {
			continue
		}
		if budget == 0 || ctx.Err() != nil {
			return
		}
		budget--
		r.copyOne(ctx, b, v)
	}
}

// wait is how long this member lets a blob stay short of copies before it
// copies it: the members without a copy are put in one order, the same on
// every member (a rendezvous hash of blob and member); the first copies at
// once, the one at place n waits n × Grace. A member that lost its own copy
// (only it knows) waits until everyone else's turn has passed.
func (r *Replicator) wait(b *rondav1.StoredBlob, v view) time.Duration {
	type cand struct {
		id string
		h  uint64
	}
	var cs []cand
	for id := range v.members {
		if holds(b, id) {
			continue
		}
		h := sha256.Sum256([]byte(b.GetSha256() + "/" + id))
		cs = append(cs, cand{id: id, h: binary.BigEndian.Uint64(h[:8])})
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].h != cs[j].h {
			return cs[i].h < cs[j].h
		}
		return cs[i].id < cs[j].id
	})
	place := len(cs)
	for i, c := range cs {
		if c.id == r.cfg.Self {
			place = i
			break
		}
	}
	if r.lost[b.GetSha256()] {
		place += len(cs)
	}
	return time.Duration(place) * r.cfg.Grace
}

// copyOne makes this member a holder of b: from its own disk if a verified
// copy is there already (a crash between storing and recording it), else
// fetched from a holder.
func (r *Replicator) copyOne(ctx context.Context, b *rondav1.StoredBlob, v view) {
	sha, size := b.GetSha256(), b.GetSize()
	if got, err := r.cfg.Store.Size(sha); err == nil {
		err := r.cfg.Store.CheckContext(ctx, sha)
		switch {
		case err == nil && got == size:
			if r.record(ctx, b) {
				r.registered.Add(1)
				r.log.Info("recorded an evidence blob found on this member's disk", "blob", sha, "size", size)
			}
			return
		case ctx.Err() != nil:
			return
		default:
			where, qerr := r.cfg.Store.Quarantine(sha)
			r.log.Error("an unrecorded copy of an evidence blob on this member's disk is corrupt; moved aside, fetching a good one",
				"blob", sha, "size", got, "want_size", size, "check", err, "moved_to", where, "move_err", qerr)
		}
	}
	var sources []string
	for _, h := range b.GetHolders() {
		if h != r.cfg.Self && v.members[h] {
			sources = append(sources, h)
		}
	}
	for _, h := range b.GetHolders() { // holders no longer members may still answer
		if h != r.cfg.Self && !v.members[h] {
			sources = append(sources, h)
		}
	}
	if len(sources) == 0 {
		return // no copy anywhere: the FSM logged it when the last holder dropped itself
	}
	rs := r.retry[sha]
	if rs == nil {
		rs = &retryState{}
		r.retry[sha] = rs
	}
	for i := range sources {
		src := sources[(rs.from+i)%len(sources)]
		start := r.cfg.Now()
		n, err := r.fetch(ctx, src, b)
		if err == nil {
			if r.record(ctx, b) {
				r.copied.Add(1)
				r.log.Info("copied an evidence blob from another member", "blob", sha, "size", size, "from", src,
					"fetched_bytes", n, "took", r.cfg.Now().Sub(start).Round(time.Millisecond))
				delete(r.retry, sha)
				delete(r.firstShort, sha)
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrMismatch) {
			r.refused.Add(1)
			r.log.Error("refused a copy of an evidence blob: it is not the blob its SHA-256 names; nothing stored",
				"blob", sha, "size", size, "from", src, "err", err)
		} else {
			r.fetchErrors.Add(1)
			r.log.Warn("fetching an evidence blob failed; resumed later", "blob", sha, "from", src, "err", err)
		}
	}
	rs.from++
	rs.wait = min(max(2*rs.wait, minRetryWait), maxRetryWait)
	rs.next = r.cfg.Now().Add(rs.wait)
}

// record adds this member as a holder of b.
func (r *Replicator) record(ctx context.Context, b *rondav1.StoredBlob) bool {
	rctx, cancel := context.WithTimeout(ctx, raftTimeout)
	defer cancel()
	if err := r.cfg.Catalog.AddBlobHolder(rctx, b.GetSha256(), b.GetSize(), b.GetMediaType(), r.cfg.Self, ""); err != nil {
		if ctx.Err() == nil {
			r.log.Warn("recording this member as a holder of an evidence blob failed; retried next round",
				"blob", b.GetSha256(), "err", err)
		}
		return false
	}
	delete(r.lost, b.GetSha256())
	return true
}

// fetch copies b from member src into DIR/partial/<sha256> (resuming what
// is there), then Puts it: a copy that is not b is removed and refused
// (ErrMismatch). It returns the bytes received.
func (r *Replicator) fetch(ctx context.Context, src string, b *rondav1.StoredBlob) (int64, error) {
	sha, size := b.GetSha256(), b.GetSize()
	part := r.cfg.Store.partialPath(sha)
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	off := fi.Size()
	if off > size {
		if err := f.Truncate(0); err != nil {
			return 0, err
		}
		off = 0
	}
	start := off
	if off < size {
		if off, err = r.receive(ctx, src, b, f, off); err != nil {
			if errors.Is(err, ErrMismatch) {
				f.Close()
				os.Remove(part)
			}
			return off - start, err
		}
	}
	if err := f.Sync(); err != nil {
		return off - start, err
	}
	if err := f.Close(); err != nil {
		return off - start, err
	}
	if err := r.cfg.Store.Put(ctx, part, sha, size); err != nil {
		if errors.Is(err, ErrMismatch) {
			os.Remove(part)
		}
		return off - start, err
	}
	return off - start, nil
}

// receive writes the FetchBlob stream from off on into f and returns the
// offset reached (size when complete).
func (r *Replicator) receive(ctx context.Context, src string, b *rondav1.StoredBlob, f *os.File, off int64) (int64, error) {
	sha, size := b.GetSha256(), b.GetSize()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stalled atomic.Bool
	watchdog := time.AfterFunc(r.cfg.Stall, func() { stalled.Store(true); cancel() })
	defer watchdog.Stop()
	stream, err := r.cfg.Fetcher.FetchBlob(fctx, src, sha, off)
	if err != nil {
		return off, err
	}
	for {
		c, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if stalled.Load() {
				return off, fmt.Errorf("member %s sent nothing for %s at byte %d of %d", src, r.cfg.Stall, off, size)
			}
			return off, err
		}
		watchdog.Reset(r.cfg.Stall)
		if c.GetOffset() != off {
			return off, fmt.Errorf("member %s sent bytes at offset %d, expected %d", src, c.GetOffset(), off)
		}
		if off+int64(len(c.GetData())) > size {
			return off, fmt.Errorf("%w: member %s sent more than the blob's %d bytes", ErrMismatch, src, size)
		}
		if _, err := f.WriteAt(c.GetData(), off); err != nil {
			return off, err
		}
		off += int64(len(c.GetData()))
	}
	if off != size {
		return off, fmt.Errorf("member %s ended the blob at byte %d of %d", src, off, size)
	}
	return off, nil
}

// check looks at every blob Raft says this member holds: a missing or
// truncated file, or (within CheckBytes, continuing where the last round
// stopped) one whose bytes no longer hash to its name, makes this member
// drop itself as the blob's holder so that another copy is made. It also
// removes partial copies no longer needed. It reports whether every drop
// was recorded.
func (r *Replicator) check(ctx context.Context, blobs []*rondav1.StoredBlob, v view) bool {
	ok := true
	var held []*rondav1.StoredBlob
	known := make(map[string]*rondav1.StoredBlob, len(blobs))
	for _, b := range blobs {
		known[b.GetSha256()] = b
		if holds(b, r.cfg.Self) {
			held = append(held, b)
		}
	}
	drop := func(b *rondav1.StoredBlob, why string, attrs ...any) {
		r.log.Error("evidence blob "+b.GetSha256()+" is "+why+" on this member; dropping this member as its holder so another copy is made",
			append([]any{"blob", b.GetSha256(), "size", b.GetSize(), "refs", b.GetRefs()}, attrs...)...)
		rctx, cancel := context.WithTimeout(ctx, raftTimeout)
		defer cancel()
		if err := r.cfg.Catalog.RemoveBlobHolder(rctx, b.GetSha256(), r.cfg.Self); err != nil {
			r.log.Warn("recording the loss of an evidence blob failed; retried soon", "blob", b.GetSha256(), "err", err)
			ok = false
			return
		}
		r.lost[b.GetSha256()] = true
		r.dropped.Add(1)
	}
	var good []*rondav1.StoredBlob
	for _, b := range held {
		if ctx.Err() != nil {
			return false
		}
		size, err := r.cfg.Store.Size(b.GetSha256())
		switch {
		case errors.Is(err, ErrNotFound):
			drop(b, "missing")
		case err != nil:
			r.log.Warn("checking an evidence blob failed", "blob", b.GetSha256(), "err", err)
			ok = false
		case size != b.GetSize():
			where, qerr := r.cfg.Store.Quarantine(b.GetSha256())
			drop(b, "corrupt (wrong size)", "found_size", size, "moved_to", where, "move_err", qerr)
		default:
			good = append(good, b)
		}
	}
	// Re-hash within the budget, continuing after the last blob checked.
	if len(good) > 0 {
		i, _ := slices.BinarySearchFunc(good, r.cursor, func(b *rondav1.StoredBlob, s string) int {
			return cmpString(b.GetSha256(), s)
		})
		if i < len(good) && good[i].GetSha256() == r.cursor {
			i++
		}
		var spent int64
		for n := 0; n < len(good) && (n == 0 || spent < r.cfg.CheckBytes); n++ {
			b := good[(i+n)%len(good)]
			err := r.cfg.Store.CheckContext(ctx, b.GetSha256())
			if ctx.Err() != nil {
				return false
			}
			r.checked.Add(1)
			spent += b.GetSize()
			r.cursor = b.GetSha256()
			switch {
			case errors.Is(err, ErrMismatch):
				where, qerr := r.cfg.Store.Quarantine(b.GetSha256())
				drop(b, "corrupt", "check", err, "moved_to", where, "move_err", qerr)
			case errors.Is(err, ErrNotFound):
				drop(b, "missing")
			case err != nil:
				r.log.Warn("checking an evidence blob failed", "blob", b.GetSha256(), "err", err)
			}
		}
	}
	r.cleanPartials(known, v)
	for sha := range r.lost {
		if known[sha] == nil {
			delete(r.lost, sha)
		}
	}
	return ok
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cleanPartials removes partial copies of blobs that are unknown, stored
// here, or no longer short of copies.
func (r *Replicator) cleanPartials(known map[string]*rondav1.StoredBlob, v view) {
	dir := filepath.Join(r.cfg.Store.dir, "partial")
	ents, err := os.ReadDir(dir)
	if err != nil {
		r.log.Warn("listing partial evidence copies failed", "err", err)
		return
	}
	want := v.want(r.cfg.MinCopies)
	for _, e := range ents {
		sha := e.Name()
		b := known[sha]
		if b != nil && !holds(b, r.cfg.Self) && v.live(b) < want && ValidName(sha) == nil {
			continue
		}
		if err := os.Remove(filepath.Join(dir, sha)); err != nil {
			r.log.Warn("removing a partial evidence copy failed", "file", filepath.Join(dir, sha), "err", err)
		}
	}
}
