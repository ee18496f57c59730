package record

// This file owns the layout of the recording index (a Pebble database). Every
// key and value encoding lives here; nothing else builds keys.
//
//	"v"                                     -> schema version (1 byte)
//	"n"                                     -> next segment id (8 bytes BE)
//	"s" cam 0x00 segid(8 BE)                -> segment (JSON: few, rarely written)
//	"f" cam 0x00 wallStartNs(8 BE)          -> fragment of an open segment (fixed 29 bytes, one per GOP)
//	"g" cam 0x00 segStartNs(8 BE)           -> GOP table of a closed segment (compact, ~9 bytes per GOP)
//	"p" hash(8)                             -> parameter sets (codec, VPS, SPS, PPS), stored once
//	"e" cam 0x00 wallNs(8 BE)               -> event: why footage stops ("code: detail", UTF-8)
//	"o" segid(8 BE)                         -> camera id: all segments, oldest first (retention)
//	"h" cam 0x00 holdID(8 BE)               -> hold (JSON)
//	"r" cam                                 -> retention watermark: footage before this wall time (8 BE ns) was deleted
//
// While a segment is open each fragment (GOP) has its own "f" key, written
// by the sync loop as it goes. When the segment closes its fragments are
// folded into one "g" GOP table keyed by the segment's start, and the "f"
// keys are deleted in the same synced batch: 30 days of 110 cameras at a
// 1 s GOP are ~1.3 GB of tables instead of ~14 GB of keys. Both kinds sort
// by wall time per camera, so a seek to any second is one SeekLT in each and
// a range is one merged iteration; files are never scanned to find time.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version 2 added "g" and "p"; a version 1 index is upgraded at open (its
// closed segments' "f" keys are folded into tables).
const schemaVersion byte = 2

var (
	keyVersion = []byte("v")
	keyNextSeg = []byte("n")
)

const (
	prefixSegment  = 's'
	prefixFragment = 'f'
	prefixEvent    = 'e'
	prefixOrder    = 'o'
	prefixHold     = 'h'
	prefixTable    = 'g'
	prefixParams   = 'p'
	prefixDeleted  = 'r'
)

func deletedKey(cam string) []byte { return append([]byte{prefixDeleted}, cam...) }

func tableKey(cam string, segStart int64) []byte { return camKey(prefixTable, cam, uint64(segStart)) }

func paramsKey(hash [8]byte) []byte { return append([]byte{prefixParams}, hash[:]...) }

func orderKey(id uint64) []byte { return binary.BigEndian.AppendUint64([]byte{prefixOrder}, id) }

func holdKey(cam string, id uint64) []byte { return camKey(prefixHold, cam, id) }

// Hold protects a camera's footage in [From, To) from deletion until Expires.
type Hold struct {
	ID      uint64    `json:"id"`
	Camera  string    `json:"camera"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Reason  string    `json:"reason"`
	Expires time.Time `json:"expires"`
	Created time.Time `json:"created"`
	By      string    `json:"by,omitempty"` // who placed it
	// Origin is the hub's id of a hold placed centrally ("hub-..."); empty
	// for a hold placed at this node.
	Origin string `json:"origin,omitempty"`
}

// Segment statuses.
const (
	SegOpen      = "open"
	SegClosed    = "closed"
	SegRecovered = "recovered"
	SegAbandoned = "abandoned"
)

// segment is one fMP4 file of one camera.
type segment struct {
	Camera    string `json:"camera"`
	ID        uint64 `json:"id"`
	File      string `json:"file"` // relative to the segments directory
	StartNs   int64  `json:"start_ns"`
	EndNs     int64  `json:"end_ns"`
	Bytes     int64  `json:"bytes"`
	InitBytes int64  `json:"init_bytes"`
	Status    string `json:"status"`
	Params    string `json:"params,omitempty"` // hash of the parameter sets ("p" key), hex
	// SHA256 of the closed (or recovered) file, hex: what the node reports
	// to the hub in the day's segment manifest.
	SHA256 string `json:"sha256,omitempty"`
}

// fragment is one moof+mdat (one GOP, or part of a long one).
type fragment struct {
	StartNs int64 // wall time of the first sample
	Segment uint64
	Offset  int64
	Length  uint32
	DurNs   int64
	Key     bool
}

func camKey(prefix byte, cam string, n uint64) []byte {
	k := make([]byte, 0, 2+len(cam)+8)
	k = append(k, prefix)
	k = append(k, cam...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, n)
}

// camBounds are the lower and upper bounds of one camera's keys of a kind.
func camBounds(prefix byte, cam string) (lo, hi []byte) {
	lo = append(append([]byte{prefix}, cam...), 0)
	hi = append(append([]byte{prefix}, cam...), 1)
	return lo, hi
}

func segmentKey(cam string, id uint64) []byte { return camKey(prefixSegment, cam, id) }

func fragmentKey(cam string, start time.Time) []byte {
	return camKey(prefixFragment, cam, uint64(start.UnixNano()))
}

func eventKey(cam string, at time.Time) []byte {
	return camKey(prefixEvent, cam, uint64(at.UnixNano()))
}

// keyTime decodes the trailing 8 bytes of a key.
func keyUint(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-8:]) }

func encodeSegment(s *segment) []byte {
	b, _ := json.Marshal(s)
	return b
}

func decodeSegment(b []byte) (*segment, error) {
	var s segment
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("record: corrupt segment entry: %w", err)
	}
	return &s, nil
}

const fragmentSize = 8 + 8 + 4 + 8 + 1

func encodeFragment(f fragment) []byte {
	b := make([]byte, 0, fragmentSize)
	b = binary.BigEndian.AppendUint64(b, f.Segment)
	b = binary.BigEndian.AppendUint64(b, uint64(f.Offset))
	b = binary.BigEndian.AppendUint32(b, f.Length)
	b = binary.BigEndian.AppendUint64(b, uint64(f.DurNs))
	if f.Key {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return b
}

var errCorrupt = errors.New("record: corrupt fragment entry")

func decodeFragment(key, b []byte) (fragment, error) {
	if len(b) != fragmentSize || len(key) < 9 {
		return fragment{}, errCorrupt
	}
	return fragment{
		StartNs: int64(keyUint(key)),
		Segment: binary.BigEndian.Uint64(b[0:]),
		Offset:  int64(binary.BigEndian.Uint64(b[8:])),
		Length:  binary.BigEndian.Uint32(b[16:]),
		DurNs:   int64(binary.BigEndian.Uint64(b[20:])),
		Key:     b[28] == 1,
	}, nil
}

func (f fragment) start() time.Time { return time.Unix(0, f.StartNs) }
func (f fragment) end() time.Time   { return time.Unix(0, f.StartNs+f.DurNs) }

// A GOP table: uvarint version(1), segment id, fragment count, then per
// fragment, relative to where the previous one ended (first: the table's
// key time and the segment's init size): zigzag start delta (ns), zigzag
// offset delta, uvarint duration (ns), uvarint length<<1|key. In a normal
// segment both deltas are 0 and an entry is ~9 bytes.
func encodeTable(segStart, initBytes int64, frags []fragment) []byte {
	b := make([]byte, 0, 16+10*len(frags))
	b = binary.AppendUvarint(b, 1)
	var seg uint64
	if len(frags) > 0 {
		seg = frags[0].Segment
	}
	b = binary.AppendUvarint(b, seg)
	b = binary.AppendUvarint(b, uint64(len(frags)))
	t, off := segStart, initBytes
	for _, f := range frags {
		b = binary.AppendVarint(b, f.StartNs-t)
		b = binary.AppendVarint(b, f.Offset-off)
		b = binary.AppendUvarint(b, uint64(f.DurNs))
		k := uint64(0)
		if f.Key {
			k = 1
		}
		b = binary.AppendUvarint(b, uint64(f.Length)<<1|k)
		t, off = f.StartNs+f.DurNs, f.Offset+int64(f.Length)
	}
	return b
}

var errCorruptTable = errors.New("record: corrupt GOP table")

// decodeTable appends a table's fragments to dst.
func decodeTable(dst []fragment, key, v []byte, initBytes int64) ([]fragment, error) {
	if len(key) < 9 {
		return dst, errCorruptTable
	}
	rd := func() uint64 {
		x, n := binary.Uvarint(v)
		if n <= 0 {
			v = nil
			return 0
		}
		v = v[n:]
		return x
	}
	rdz := func() int64 {
		x, n := binary.Varint(v)
		if n <= 0 {
			v = nil
			return 0
		}
		v = v[n:]
		return x
	}
	if rd() != 1 {
		return dst, errCorruptTable
	}
	seg, count := rd(), rd()
	if v == nil || count > uint64(len(v)) {
		return dst, errCorruptTable
	}
	t, off := int64(keyUint(key)), initBytes
	for i := uint64(0); i < count; i++ {
		start := t + rdz()
		o := off + rdz()
		dur := int64(rd())
		lk := rd()
		if v == nil {
			return dst, errCorruptTable
		}
		f := fragment{StartNs: start, Segment: seg, Offset: o, Length: uint32(lk >> 1), DurNs: dur, Key: lk&1 == 1}
		dst = append(dst, f)
		t, off = start+dur, o+int64(f.Length)
	}
	return dst, nil
}

// Params are a track's parameter sets, stored once under their hash.
type Params struct {
	Codec string `json:"codec"`
	VPS   []byte `json:"vps,omitempty"`
	SPS   []byte `json:"sps"`
	PPS   []byte `json:"pps"`
}

func uvarint(b []byte) (uint64, int) { return binary.Uvarint(b) }
