package store

// The export index (e/): nodes make exports, and log each in an audit event
// whose outcome names the export and its file's SHA-256 (api.ExportOutcome:
// "ok export=ID file_sha256=HEX"). When the FSM applies such an event it
// records e/<node> NUL <export id> -> the event's audit seq, so the hub
// lists the city's exports and finds one export's event without reading the
// audit log. The index is derived from the event alone, so every member
// writes the same keys.

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// exportKey is e/<node id> NUL <export id>.
func exportKey(nodeID, exportID string) []byte { return joinKey(prefixExport, nodeID, exportID) }

// parseExportKey splits an e/ key into node and export id.
func parseExportKey(k []byte) (nodeID, exportID string, ok bool) {
	if !bytes.HasPrefix(k, prefixExport) {
		return "", "", false
	}
	rest := k[len(prefixExport):]
	i := bytes.IndexByte(rest, 0)
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return string(rest[:i]), string(rest[i+1:]), true
}

// ExportOfOutcome reads the export id and file SHA-256 an export event's
// outcome names ("ok export=ID file_sha256=HEX", api.ExportOutcome).
func ExportOfOutcome(outcome string) (id, sha256 string, ok bool) {
	rest, found := strings.CutPrefix(outcome, "ok export=")
	if !found {
		return "", "", false
	}
	id, rest, _ = strings.Cut(rest, " ")
	sha256, _ = strings.CutPrefix(rest, "file_sha256=")
	if sha256 == rest {
		sha256 = ""
	}
	sha256, _, _ = strings.Cut(sha256, " ")
	if validID("export", id) != nil {
		return "", "", false
	}
	return id, sha256, true
}

// indexExport records e's export in the index if e is a successful export
// event. Of several events naming one export the lowest audit seq wins (the
// node's first), whatever order they arrive in, so applying and migrate
// index the same event. r must read what w wrote (an indexed batch, as the
// FSM applies with).
func indexExport(r pebble.Reader, w pebble.Writer, nodeID string, e *rondav1.AuditEvent) error {
	if e.GetAction() != "export" {
		return nil
	}
	id, _, ok := ExportOfOutcome(e.GetOutcome())
	if !ok {
		return nil
	}
	key := exportKey(nodeID, id)
	v, closer, err := r.Get(key)
	switch {
	case err == nil:
		have, derr := decodeUint64(key, v)
		closer.Close()
		if derr != nil {
			return derr
		}
		if have <= e.GetAuditSeq() {
			return nil
		}
	case !errors.Is(err, pebble.ErrNotFound):
		return err
	}
	return w.Set(key, encodeUint64(e.GetAuditSeq()), nil)
}

// migrate brings a database of schema version from up to SchemaVersion:
// from v3 (or v2, which has no audit events) it builds the export index
// from the stored audit events, in audit-key order, then records the new
// version, in one synced batch.
func migrate(db *pebble.DB, from uint32) error {
	b := db.NewIndexedBatch()
	defer b.Close()
	if from < 4 {
		err := scanPrefix(db, prefixAudit, func(k, v []byte) error {
			if !bytes.Contains(v, []byte("export=")) {
				return nil
			}
			m := new(rondav1.StoredAuditEvent)
			if err := proto.Unmarshal(v, m); err != nil {
				return fmt.Errorf("%w: decode %q: %v", ErrSchema, k, err)
			}
			return indexExport(b, b, m.GetNodeId(), m.GetEvent())
		})
		if err != nil {
			return fmt.Errorf("build the export index: %w", err)
		}
	}
	if err := b.Set(keySchemaVersion, encodeUint32(SchemaVersion), nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// ExportRecord is an export a node made, as its audit event records it,
// with the event's leaf in the audit log (Leaf nil: no leaf).
type ExportRecord struct {
	NodeID   string
	ExportID string
	SHA256   string
	Event    *rondav1.StoredAuditEvent
	Leaf     *uint64
}

// Exports lists every indexed export, newest event first (by event time,
// then node and export id).
func (s *Store) Exports() ([]ExportRecord, error) {
	var out []ExportRecord
	_, err := s.fsm.read(func(r pebble.Reader) error {
		return scanPrefix(r, prefixExport, func(k, v []byte) error {
			nodeID, exportID, ok := parseExportKey(k)
			if !ok {
				return fmt.Errorf("%w: export index key %q", ErrSchema, k)
			}
			seq, err := decodeUint64(k, v)
			if err != nil {
				return err
			}
			rec, found, err := readExport(r, nodeID, exportID, seq)
			if err != nil || !found {
				return err // an event deleted from this member's store: nothing to list
			}
			out = append(out, rec)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Event.GetEvent().GetAtUnixNano(), out[j].Event.GetEvent().GetAtUnixNano()
		if a != b {
			return a > b
		}
		if out[i].NodeID != out[j].NodeID {
			return out[i].NodeID < out[j].NodeID
		}
		return out[i].ExportID < out[j].ExportID
	})
	return out, err
}

func readExport(r pebble.Reader, nodeID, exportID string, seq uint64) (ExportRecord, bool, error) {
	ev := new(rondav1.StoredAuditEvent)
	found, err := getProto(r, auditKey(nodeID, seq), ev)
	if err != nil || !found {
		return ExportRecord{}, false, err
	}
	_, sha, _ := ExportOfOutcome(ev.GetEvent().GetOutcome())
	rec := ExportRecord{NodeID: nodeID, ExportID: exportID, SHA256: sha, Event: ev}
	if index, ok, err := leafOf(r, nodeID, seq); err != nil {
		return ExportRecord{}, false, err
	} else if ok {
		rec.Leaf = &index
	}
	return rec, true, nil
}

// leafOf reads the leaf index of a node's audit event (ok false: it has none).
func leafOf(r pebble.Reader, nodeID string, seq uint64) (uint64, bool, error) {
	key := leafIndexKey(nodeID, seq)
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer closer.Close()
	index, err := decodeUint64(key, v)
	return index, err == nil, err
}

// ExportNodes lists the nodes that made an export with this id (normally
// one; export ids are unique per node only).
func (s *Store) ExportNodes(exportID string) ([]string, error) {
	if validID("export", exportID) != nil {
		return nil, nil
	}
	suffix := append([]byte{0}, exportID...)
	var out []string
	_, err := s.fsm.read(func(r pebble.Reader) error {
		return scanPrefix(r, prefixExport, func(k, _ []byte) error {
			if bytes.HasSuffix(k, suffix) {
				if nodeID, id, ok := parseExportKey(k); ok && id == exportID {
					out = append(out, nodeID)
				}
			}
			return nil
		})
	})
	return out, err
}

// ExportEvent finds the audit event a node logged for export exportID (its
// outcome names it, api.ExportOutcome) and the event's leaf in the log,
// through the export index.
func (s *Store) ExportEvent(nodeID, exportID string) (*rondav1.StoredAuditEvent, uint64, error) {
	if err := validID("node", nodeID); err != nil || validID("export", exportID) != nil {
		return nil, 0, fmt.Errorf("%w: a node id and an export id are required", ErrBadCommand)
	}
	var rec ExportRecord
	var found bool
	_, err := s.fsm.read(func(r pebble.Reader) error {
		key := exportKey(nodeID, exportID)
		v, closer, err := r.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		seq, err := decodeUint64(key, v)
		closer.Close()
		if err != nil {
			return err
		}
		rec, found, err = readExport(r, nodeID, exportID, seq)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	if !found || rec.Leaf == nil { // no leaf: stored before the Merkle log existed
		return nil, 0, fmt.Errorf("%w: %w: no export %s in node %s's audit log at this member (has the node uploaded it? it may be offline)", ErrBadCommand, ErrNotFound, exportID, nodeID)
	}
	return rec.Event, *rec.Leaf, nil
}
