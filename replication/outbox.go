package replication

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/ronda-jakarta/ronda/internal/auditchain"
	"github.com/ronda-jakarta/ronda/internal/pebbleutil"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// Outbox keys (this file owns the outbox database's schema).
var (
	keyOutboxVersion = []byte("v")     // schema version
	keyLastSeq       = []byte("s")     // last assigned sequence
	keyAcked         = []byte("a")     // highest acknowledged sequence
	prefixRecord     = []byte("r")     // r + seq(8, big endian) -> Record
	keyDirectiveSeq  = []byte("D")     // newest hub directive applied
	keyAuditSeq      = []byte("A")     // newest audit_seq in the node's audit log
	keyAuditHead     = []byte("H")     // that event's auditchain.Hash
	prefixAudit      = []byte("l")     // l + audit_seq(8, big endian) -> AuditEvent (kept after the ack)
	auditKeyUpper    = []byte("l\xff") // above every audit key
	outboxVersion    = []byte{0x01}    // version 1
	recordKeyUpper   = []byte("r\xff") // above every record key
)

// PebbleOutbox is a durable outbox in its own Pebble database. Append assigns
// the next sequence number and syncs before returning, so a record that was
// appended survives a crash; Ack deletes what the hub committed.
type PebbleOutbox struct {
	mu    sync.Mutex
	db    *pebble.DB
	last  uint64
	acked uint64
	// sent is the newest seq that may have left the node (handed to a push).
	// Records above it can still be rewritten: coalescing extends them.
	sent uint64
	// open is, per camera, the newest unsent span record (its seq and span),
	// which a following contiguous span extends instead of adding a record.
	open map[string]openSpan
	// The node's audit log: newest sequence and its chain hash.
	auditSeq  uint64
	auditHead []byte
	// directiveSeq is the newest hub directive applied.
	directiveSeq uint64
}

type openSpan struct {
	seq  uint64
	span *rondav1.Span
}

// CoalesceGap: a span starting at most this long after the camera's pending
// span ends extends it (the node flushes coverage every 2 s; a continuous
// recording is one span however long the link is down).
const CoalesceGap = 3 * time.Second

// OpenOutbox opens (or creates) the outbox in dir.
func OpenOutbox(dir string, log *slog.Logger) (*PebbleOutbox, error) {
	return openOutbox(dir, &pebble.Options{Logger: pebbleutil.NewLogger(log)})
}

// OpenMemOutbox returns an outbox held in memory (pebble's in-memory
// filesystem): the same records, sequence numbers and coalescing as a node's,
// nothing on disk and nothing kept after exit. For simulated nodes in
// benchmarks (hundreds per process); a real node uses OpenOutbox.
func OpenMemOutbox(log *slog.Logger) (*PebbleOutbox, error) {
	return openOutbox("", &pebble.Options{Logger: pebbleutil.NewLogger(log), FS: vfs.NewMem(), MemTableSize: 1 << 20})
}

func openOutbox(dir string, opts *pebble.Options) (*PebbleOutbox, error) {
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w", dir, err)
	}
	o := &PebbleOutbox{db: db, open: map[string]openSpan{}}
	if v, ok, err := o.get(keyOutboxVersion); err != nil {
		db.Close()
		return nil, err
	} else if !ok {
		if err := db.Set(keyOutboxVersion, outboxVersion, pebble.Sync); err != nil {
			db.Close()
			return nil, err
		}
	} else if string(v) != string(outboxVersion) {
		db.Close()
		return nil, fmt.Errorf("outbox: %s has schema version %x; this build reads %x", dir, v, outboxVersion)
	}
	for _, x := range []struct {
		k []byte
		v *uint64
	}{{keyLastSeq, &o.last}, {keyAcked, &o.acked}, {keyDirectiveSeq, &o.directiveSeq}} {
		v, ok, err := o.get(x.k)
		if err != nil {
			db.Close()
			return nil, err
		}
		if ok && len(v) == 8 {
			*x.v = binary.BigEndian.Uint64(v)
		}
	}
	if v, ok, err := o.get(keyAuditSeq); err != nil {
		db.Close()
		return nil, err
	} else if ok && len(v) == 8 {
		o.auditSeq = binary.BigEndian.Uint64(v)
	}
	if v, ok, err := o.get(keyAuditHead); err != nil {
		db.Close()
		return nil, err
	} else if ok {
		o.auditHead = v
	}
	// Anything already in the outbox may have reached a hub before a crash
	// (committed, but the ack lost): never rewrite it.
	o.sent = o.last
	return o, nil
}

func (o *PebbleOutbox) get(k []byte) ([]byte, bool, error) { return pebbleutil.Get(o.db, k) }

func recordKey(seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixRecord[0]
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// Append stores records durably, assigning each the next sequence number.
func (o *PebbleOutbox) Append(recs ...*rondav1.Record) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.db.NewBatch()
	defer b.Close()
	last := o.last
	for _, r := range recs {
		last++
		r.Seq = last
		raw, err := proto.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Set(recordKey(last), raw, nil); err != nil {
			return err
		}
	}
	if err := b.Set(keyLastSeq, u64(last), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("outbox: append: %w", err)
	}
	o.last = last
	return nil
}

// AppendCoalescing is Append, except that a span record that continues the
// camera's newest span record not yet handed to a push (starting within
// CoalesceGap of its end) extends that record instead of adding one. During
// a WAN outage a continuously recording camera thus queues one span, not one
// per flush, and the backlog that drains when the link returns stays small.
func (o *PebbleOutbox) AppendCoalescing(recs ...*rondav1.Record) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.db.NewBatch()
	defer b.Close()
	last := o.last
	opened := map[string]openSpan{}
	for _, r := range recs {
		if sp := r.GetSpan(); sp != nil {
			prev, ok := opened[sp.GetCameraId()]
			if !ok {
				prev, ok = o.open[sp.GetCameraId()]
			}
			if ok && prev.seq > o.sent && sp.GetStartUnixNano() >= prev.span.GetStartUnixNano() &&
				sp.GetStartUnixNano() <= prev.span.GetEndUnixNano()+int64(CoalesceGap) {
				merged := &rondav1.Span{CameraId: sp.GetCameraId(), StartUnixNano: prev.span.GetStartUnixNano(),
					EndUnixNano: max(prev.span.GetEndUnixNano(), sp.GetEndUnixNano())}
				raw, err := proto.Marshal(&rondav1.Record{Seq: prev.seq, Body: &rondav1.Record_Span{Span: merged}})
				if err != nil {
					return err
				}
				if err := b.Set(recordKey(prev.seq), raw, nil); err != nil {
					return err
				}
				r.Seq = prev.seq
				opened[sp.GetCameraId()] = openSpan{prev.seq, merged}
				continue
			}
		}
		last++
		r.Seq = last
		raw, err := proto.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Set(recordKey(last), raw, nil); err != nil {
			return err
		}
		if sp := r.GetSpan(); sp != nil {
			opened[sp.GetCameraId()] = openSpan{last, proto.CloneOf(sp)}
		}
	}
	if err := b.Set(keyLastSeq, u64(last), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("outbox: append: %w", err)
	}
	o.last = last
	for cam, os := range opened {
		o.open[cam] = os
	}
	return nil
}

// AppendAudit adds an event to the node's audit log and queues it for the
// hub, in one synced batch: an event the node logged always reaches the hub
// (and one that is not logged never does). It assigns the event's audit_seq
// and chains it to the previous event (see internal/auditchain). The audit
// log is kept after the hub acknowledges the record.
func (o *PebbleOutbox) AppendAudit(e *rondav1.AuditEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	e.AuditSeq = o.auditSeq + 1
	e.PrevSha256 = o.auditHead
	if len(e.PrevSha256) == 0 {
		e.PrevSha256 = auditchain.Genesis
	}
	head := auditchain.Hash(e)
	raw, err := proto.Marshal(e)
	if err != nil {
		return err
	}
	rec, err := proto.Marshal(&rondav1.Record{Seq: o.last + 1, Body: &rondav1.Record_Audit{Audit: e}})
	if err != nil {
		return err
	}
	b := o.db.NewBatch()
	defer b.Close()
	for _, kv := range [][2][]byte{{auditKey(e.AuditSeq), raw}, {keyAuditSeq, u64(e.AuditSeq)}, {keyAuditHead, head},
		{recordKey(o.last + 1), rec}, {keyLastSeq, u64(o.last + 1)}} {
		if err := b.Set(kv[0], kv[1], nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("outbox: audit: %w", err)
	}
	o.last++
	o.auditSeq, o.auditHead = e.AuditSeq, head
	return nil
}

// DirectiveSeq is the newest hub directive the node applied.
func (o *PebbleOutbox) DirectiveSeq() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.directiveSeq
}

// AppendDirectiveResult records that the node applied directive seq (or
// could not: errText) and queues the outcome for the hub, in one synced
// write, so a directive is reported exactly once and never applied again
// after a restart.
func (o *PebbleOutbox) AppendDirectiveResult(seq uint64, errText string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	rec, err := proto.Marshal(&rondav1.Record{Seq: o.last + 1, Body: &rondav1.Record_DirectiveResult{DirectiveResult: &rondav1.DirectiveResult{Seq: seq, Error: errText}}})
	if err != nil {
		return err
	}
	b := o.db.NewBatch()
	defer b.Close()
	for _, kv := range [][2][]byte{{recordKey(o.last + 1), rec}, {keyLastSeq, u64(o.last + 1)}, {keyDirectiveSeq, u64(max(seq, o.directiveSeq))}} {
		if err := b.Set(kv[0], kv[1], nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("outbox: directive result: %w", err)
	}
	o.last++
	o.directiveSeq = max(seq, o.directiveSeq)
	return nil
}

func auditKey(seq uint64) []byte { return append([]byte{prefixAudit[0]}, u64(seq)...) }

// AuditEvents returns up to n events of the node's audit log with
// audit_seq > after, oldest first.
func (o *PebbleOutbox) AuditEvents(after uint64, n int) ([]*rondav1.AuditEvent, error) {
	return readProtos(o.db, auditKey(after+1), auditKeyUpper, n, func() *rondav1.AuditEvent { return new(rondav1.AuditEvent) }, "audit event")
}

// readProtos decodes up to n values of the keys in [lo, hi), in key order.
func readProtos[T proto.Message](db *pebble.DB, lo, hi []byte, n int, newT func() T, what string) ([]T, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []T
	for ok := it.First(); ok && len(out) < n; ok = it.Next() {
		m := newT()
		if err := proto.Unmarshal(it.Value(), m); err != nil {
			return nil, fmt.Errorf("outbox: %s %x is corrupt: %w", what, it.Key(), err)
		}
		out = append(out, m)
	}
	return out, it.Error()
}

// InsertBeforeUnsent stores records ahead of every record not yet handed to
// a push: those are renumbered after them (they never left the node, so
// their numbers are free to change). A node re-sending its history to a hub
// that lost it uses it, so the history reaches the hub before anything the
// node queued since it started (a segment recovered at start must not
// overtake the earlier segments of its day).
func (o *PebbleOutbox) InsertBeforeUnsent(recs ...*rondav1.Record) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	boundary := max(o.sent, o.acked)
	tail, err := readProtos(o.db, recordKey(boundary+1), recordKeyUpper, int(o.last-boundary)+1, func() *rondav1.Record { return new(rondav1.Record) }, "record")
	if err != nil {
		return err
	}
	b := o.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(recordKey(boundary+1), recordKeyUpper, nil); err != nil {
		return err
	}
	seq := boundary
	shift := uint64(len(recs))
	for _, r := range append(append([]*rondav1.Record(nil), recs...), tail...) {
		seq++
		r.Seq = seq
		raw, err := proto.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Set(recordKey(seq), raw, nil); err != nil {
			return err
		}
	}
	if err := b.Set(keyLastSeq, u64(seq), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("outbox: insert: %w", err)
	}
	o.last = seq
	for cam, os := range o.open {
		if os.seq > boundary {
			os.seq += shift
			o.open[cam] = os
		}
	}
	return nil
}

// PendingToSend is Pending for a push about to leave: in the same critical
// section it marks the records returned as possibly sent, so coalescing
// never rewrites a record after it was read for a push.
func (o *PebbleOutbox) PendingToSend(n int) ([]*rondav1.Record, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	out, err := o.pendingLocked(n)
	if err != nil || len(out) == 0 {
		return out, err
	}
	o.sent = max(o.sent, out[len(out)-1].Seq)
	for cam, os := range o.open {
		if os.seq <= o.sent {
			delete(o.open, cam)
		}
	}
	return out, nil
}

// Pending implements Outbox.
func (o *PebbleOutbox) Pending(n int) ([]*rondav1.Record, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pendingLocked(n)
}

func (o *PebbleOutbox) pendingLocked(n int) ([]*rondav1.Record, error) {
	return readProtos(o.db, recordKey(o.acked+1), recordKeyUpper, n, func() *rondav1.Record { return new(rondav1.Record) }, "record")
}

// Ack implements Outbox.
func (o *PebbleOutbox) Ack(seq uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if seq <= o.acked {
		return nil
	}
	if seq > o.last {
		return fmt.Errorf("outbox: hub acknowledged sequence %d but the last record is %d; the hub's state belongs to another node with this id", seq, o.last)
	}
	b := o.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(recordKey(o.acked+1), recordKey(seq+1), nil); err != nil {
		return err
	}
	if err := b.Set(keyAcked, u64(seq), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	o.acked = seq
	return nil
}

// Stats returns the last assigned and the acknowledged sequence.
func (o *PebbleOutbox) Stats() (last, acked uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last, o.acked
}

// Close closes the database.
func (o *PebbleOutbox) Close() error { return o.db.Close() }
