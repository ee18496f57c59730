package replication

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/ronda-jakarta/ronda/internal/pebbleutil"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// Outbox keys (this file owns the outbox database's schema).
var (
	keyOutboxVersion = []byte("v")     // schema version
	keyLastSeq       = []byte("s")     // last assigned sequence
	keyAcked         = []byte("a")     // highest acknowledged sequence
	prefixRecord     = []byte("r")     // r + seq(8, big endian) -> Record
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
}

// OpenOutbox opens (or creates) the outbox in dir.
func OpenOutbox(dir string, log *slog.Logger) (*PebbleOutbox, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleutil.NewLogger(log)})
	if err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w", dir, err)
	}
	o := &PebbleOutbox{db: db}
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
	}{{keyLastSeq, &o.last}, {keyAcked, &o.acked}} {
		v, ok, err := o.get(x.k)
		if err != nil {
			db.Close()
			return nil, err
		}
		if ok && len(v) == 8 {
			*x.v = binary.BigEndian.Uint64(v)
		}
	}
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

// Pending implements Outbox.
func (o *PebbleOutbox) Pending(max int) ([]*rondav1.Record, error) {
	o.mu.Lock()
	from := recordKey(o.acked + 1)
	o.mu.Unlock()
	it, err := o.db.NewIter(&pebble.IterOptions{LowerBound: from, UpperBound: recordKeyUpper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*rondav1.Record
	for ok := it.First(); ok && len(out) < max; ok = it.Next() {
		r := &rondav1.Record{}
		if err := proto.Unmarshal(it.Value(), r); err != nil {
			return nil, fmt.Errorf("outbox: record %x is corrupt: %w", it.Key(), err)
		}
		out = append(out, r)
	}
	return out, it.Error()
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
