package store

// On-disk schema of the FSM's Pebble database.
//
// Every key starts with a one-letter namespace and a slash; identifiers are
// validated (non-empty, no NUL byte, bounded length) before they become part
// of a key, so NUL can serve as a separator inside composite keys.
//
//	m/schema                     -> uint32 big-endian schema version
//	m/applied                    -> uint64 big-endian raft index of the last applied command
//	n/<node id>                  -> rondav1.StoredNode
//	c/<camera id>                -> rondav1.StoredCamera
//	i/<node id> NUL <camera id>  -> empty; index of a node's cameras
//	v/<camera id> NUL <day>      -> rondav1.StoredCoverage: the camera's merged spans within one
//	                                UTC day (day: uint32 big-endian days since 1970-01-01),
//	                                clipped to it; spans carry no camera_id
//	a/<area code>                -> rondav1.Area (kota, kecamatan, kelurahan; seeded once)
//	p/<member id>                -> rondav1.HubMember: a member joined or removed by an operator
//	                                (or removed by autopilot); the initial members have none
//	u/<node id> NUL <audit seq>  -> rondav1.StoredAuditEvent (audit seq: uint64 big-endian), since v3
//	h/<camera id> NUL <hold id>  -> rondav1.StoredHold, since v3
//	d/<node id> NUL <seq>        -> rondav1.Directive not yet applied by the node (seq: uint64 big-endian), since v3
//	r/<spiffe identity>          -> rondav1.Revocation, since v3
//	j/<token sha256 hex>         -> rondav1.StoredJoinToken, since v3
//	w/<user name>                -> rondav1.StoredUser, since v3
//	o/<user name>                -> uint64 big-endian: a configured user's last logout (unix ms), since v3
//	m/hubaudit                   -> rondav1.StoredNode: the head (audit seq, chain hash) of the hub's own
//	                                audit events, kept under u/hub NUL <seq>
//	l/<index>                    -> rondav1.AuditLeaf: leaf <index> (uint64 big-endian) of the audit
//	                                Merkle log: the event's node and seq, and its leaf hash, since v3
//	t/<level><index>             -> 32-byte hash of a perfect subtree of the log (level: 1 byte,
//	                                index: uint64 big-endian; level 0 are the leaves), since v3
//	x/<node id> NUL <seq>        -> uint64 big-endian: the leaf of that audit event, since v3
//	k/<size>                     -> rondav1.AuditCheckpoint: a signed (size, root), since v3
//	e/<node id> NUL <export id>  -> uint64 big-endian: the audit seq of the node's "export" event whose
//	                                outcome names the export (ok export=ID file_sha256=HEX), since v4;
//	                                written when the event is applied (the lowest seq naming it wins)
//	b/<sha256 hex>               -> rondav1.StoredBlob: an evidence blob's size, media type, holders
//	                                (members with a verified copy) and refs, since v4 (blobs.go)
//	m/merkle                     -> the log's compact range: uint64 size, then its 32-byte hashes
//	m/users                      -> uint64 big-endian: the users version (grows with every user command)
//
// Bump SchemaVersion whenever the layout or the meaning of a value changes; an
// FSM refuses to open (and Restore refuses snapshots of) another version,
// except the versions in upgradableFrom: those differ only by namespaces
// added since, so their data is valid as it is; opening one fills the added
// namespaces that are derived from existing data (migrate, deterministic,
// so every member derives the same keys) and records the new version.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
)

// SchemaVersion is the version of the FSM key layout written by this binary.
const SchemaVersion uint32 = 4

// upgradableFrom are older schema versions this binary opens: v2 -> v3
// added u/ (audit events), h/ (holds) and d/ (directives); v3 -> v4 added
// e/ (the export index), which opening a v3 database (or restoring a v3
// snapshot) builds from u/ before recording the new version (migrate).
var upgradableFrom = map[uint32]bool{2: true, 3: true}

// maxIDLen bounds node and camera identifiers that become part of keys.
const maxIDLen = 256

var (
	keySchemaVersion = []byte("m/schema")
	keyAppliedIndex  = []byte("m/applied")

	prefixNode       = []byte("n/")
	prefixCamera     = []byte("c/")
	prefixNodeCamera = []byte("i/")
	prefixCoverage   = []byte("v/")
	prefixArea       = []byte("a/")
	prefixMember     = []byte("p/")
	prefixAudit      = []byte("u/")
	prefixHold       = []byte("h/")
	prefixDirective  = []byte("d/")
	prefixRevoked    = []byte("r/")
	prefixJoinToken  = []byte("j/")
	prefixUser       = []byte("w/")
	prefixLogout     = []byte("o/")
	prefixLeaf       = []byte("l/")
	prefixTreeNode   = []byte("t/")
	prefixCheckpoint = []byte("k/")
	prefixLeafIndex  = []byte("x/")
	prefixExport     = []byte("e/")
	// Evidence: cases ("q/", with the reports' index "y/", hub/store/cases.go)
	// and blobs of the evidence store ("b/").
	prefixBlob = []byte("b/") // blobs.go
)

func joinKey(prefix []byte, parts ...string) []byte {
	n := len(prefix)
	for _, p := range parts {
		n += len(p) + 1
	}
	k := make([]byte, 0, n)
	k = append(k, prefix...)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

func nodeKey(nodeID string) []byte     { return joinKey(prefixNode, nodeID) }
func cameraKey(cameraID string) []byte { return joinKey(prefixCamera, cameraID) }
func areaKey(code string) []byte       { return joinKey(prefixArea, code) }
func memberKey(id string) []byte       { return joinKey(prefixMember, id) }

// coveragePrefix is the prefix of all v/ keys of one camera (with the NUL).
func coveragePrefix(cameraID string) []byte {
	return append(joinKey(prefixCoverage, cameraID), 0)
}

func coverageDayKey(cameraID string, day uint32) []byte {
	return binary.BigEndian.AppendUint32(coveragePrefix(cameraID), day)
}

// parseCoverageDayKey splits a v/ key into camera id and day.
func parseCoverageDayKey(key []byte) (cameraID string, day uint32, ok bool) {
	if !bytes.HasPrefix(key, prefixCoverage) || len(key) < len(prefixCoverage)+5 || key[len(key)-5] != 0 {
		return "", 0, false
	}
	return string(key[len(prefixCoverage) : len(key)-5]), binary.BigEndian.Uint32(key[len(key)-4:]), true
}

const nsPerDay = int64(24 * time.Hour)

// dayOf is the UTC day number of a Unix-nanosecond time.
func dayOf(ns int64) uint32 {
	d := ns / nsPerDay
	if ns < 0 && ns%nsPerDay != 0 {
		d--
	}
	return uint32(max(d, 0))
}
func nodeCameraKey(nodeID, cameraID string) []byte {
	return joinKey(prefixNodeCamera, nodeID, cameraID)
}

// nodeCameraPrefix is the prefix of all i/ keys of one node (including the NUL).
func nodeCameraPrefix(nodeID string) []byte {
	return append(joinKey(prefixNodeCamera, nodeID), 0)
}

// cameraFromNodeCameraKey extracts the camera id from an i/ key.
func cameraFromNodeCameraKey(key []byte) (string, bool) {
	if !bytes.HasPrefix(key, prefixNodeCamera) {
		return "", false
	}
	i := bytes.IndexByte(key[len(prefixNodeCamera):], 0)
	if i < 0 {
		return "", false
	}
	return string(key[len(prefixNodeCamera)+i+1:]), true
}

// prefixUpperBound returns the smallest key greater than every key with the
// given prefix (an exclusive iterator upper bound).
func prefixUpperBound(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // prefix is all 0xff: no upper bound
}

func encodeUint64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func encodeUint32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func decodeUint64(key, b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: value of %q is %d bytes, want 8", ErrSchema, key, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

func decodeUint32(key, b []byte) (uint32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("%w: value of %q is %d bytes, want 4", ErrSchema, key, len(b))
	}
	return binary.BigEndian.Uint32(b), nil
}

// marshalValue encodes a stored value deterministically, so every member
// writes byte-identical state for the same log.
func marshalValue(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// validID checks an identifier that becomes part of a key.
func validID(kind, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%s id is empty", kind)
	case len(id) > maxIDLen:
		return fmt.Errorf("%s id %.32q... is %d bytes, limit %d", kind, id, len(id), maxIDLen)
	case strings.IndexByte(id, 0) >= 0:
		return fmt.Errorf("%s id %q contains a NUL byte", kind, id)
	}
	return nil
}
