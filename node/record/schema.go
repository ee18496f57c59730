package record

// This file owns the layout of the recording index (a Pebble database). Every
// key and value encoding lives here; nothing else builds keys.
//
//	"v"                                     -> schema version (1 byte)
//	"n"                                     -> next segment id (8 bytes BE)
//	"s" cam 0x00 segid(8 BE)                -> segment (JSON: few, rarely written)
//	"f" cam 0x00 wallStartNs(8 BE)          -> fragment (fixed 34 bytes, one per GOP)
//	"e" cam 0x00 wallNs(8 BE)               -> stream-stop event: the reason (UTF-8)
//	"o" segid(8 BE)                         -> camera id: all segments, oldest first (retention)
//	"h" cam 0x00 holdID(8 BE)               -> hold (JSON)
//
// Fragment keys sort by wall time per camera, so a seek to any second is one
// SeekLT and a range is one iterator; files are never scanned to find time.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

const schemaVersion byte = 1

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
)

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
