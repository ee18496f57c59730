package store

// FSM snapshot stream format (version 1):
//
//	header   8 bytes magic "RONDAFSM"
//	         uint32 format version (1)
//	         uint32 schema version (SchemaVersion)
//	         uint64 applied raft index of the state
//	entries  repeated: uvarint len(key) (> 0), key, uvarint len(value), value
//	end      uvarint 0
//	trailer  uint64 number of entries
//	         uint32 CRC-32C (Castagnoli) of every byte above
//
// All integers are big-endian. Keys are written in Pebble order.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

const (
	snapshotMagic         = "RONDAFSM"
	snapshotFormatVersion = 1
	snapshotHeaderLen     = 8 + 4 + 4 + 8
	maxSnapshotKeyLen     = 1 << 12
	maxSnapshotValueLen   = 1 << 26
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type snapshotHeader struct {
	format  uint32
	schema  uint32
	applied uint64
}

// snapshotWriter frames entries and keeps the running checksum.
type snapshotWriter struct {
	w     *bufio.Writer
	crc   hash.Hash32
	count uint64
	buf   [binary.MaxVarintLen64]byte
}

func newSnapshotWriter(w io.Writer, applied uint64) (*snapshotWriter, error) {
	sw := &snapshotWriter{crc: crc32.New(castagnoli)}
	sw.w = bufio.NewWriterSize(io.MultiWriter(w, sw.crc), 1<<16)
	var h [snapshotHeaderLen]byte
	copy(h[:8], snapshotMagic)
	binary.BigEndian.PutUint32(h[8:], snapshotFormatVersion)
	binary.BigEndian.PutUint32(h[12:], SchemaVersion)
	binary.BigEndian.PutUint64(h[16:], applied)
	_, err := sw.w.Write(h[:])
	return sw, err
}

func (sw *snapshotWriter) uvarint(v uint64) error {
	n := binary.PutUvarint(sw.buf[:], v)
	_, err := sw.w.Write(sw.buf[:n])
	return err
}

func (sw *snapshotWriter) entry(k, v []byte) error {
	if len(k) == 0 || len(k) > maxSnapshotKeyLen || len(v) > maxSnapshotValueLen {
		return fmt.Errorf("snapshot entry %q: key %d bytes, value %d bytes out of range", k, len(k), len(v))
	}
	if err := sw.uvarint(uint64(len(k))); err != nil {
		return err
	}
	if _, err := sw.w.Write(k); err != nil {
		return err
	}
	if err := sw.uvarint(uint64(len(v))); err != nil {
		return err
	}
	_, err := sw.w.Write(v)
	sw.count++
	return err
}

// finish writes the end marker and trailer and flushes.
func (sw *snapshotWriter) finish() error {
	if err := sw.uvarint(0); err != nil {
		return err
	}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], sw.count)
	if _, err := sw.w.Write(n[:]); err != nil {
		return err
	}
	if err := sw.w.Flush(); err != nil {
		return err
	}
	// The checksum itself is not part of the checksum: write it past the MultiWriter.
	sum := binary.BigEndian.AppendUint32(nil, sw.crc.Sum32())
	_, err := sw.w.Write(sum)
	if err == nil {
		err = sw.w.Flush()
	}
	return err
}

// snapshotReader parses a stream written by snapshotWriter, checksumming
// everything it consumes.
type snapshotReader struct {
	r     *bufio.Reader
	crc   hash.Hash32
	count uint64
	done  bool
}

func newSnapshotReader(r io.Reader) (*snapshotReader, snapshotHeader, error) {
	sr := &snapshotReader{r: bufio.NewReaderSize(r, 1<<16), crc: crc32.New(castagnoli)}
	var h [snapshotHeaderLen]byte
	if err := sr.full(h[:]); err != nil {
		return nil, snapshotHeader{}, fmt.Errorf("%w: reading header: %v", ErrBadSnapshot, err)
	}
	if string(h[:8]) != snapshotMagic {
		return nil, snapshotHeader{}, fmt.Errorf("%w: bad magic %q, not a hub FSM snapshot", ErrBadSnapshot, h[:8])
	}
	hdr := snapshotHeader{
		format:  binary.BigEndian.Uint32(h[8:]),
		schema:  binary.BigEndian.Uint32(h[12:]),
		applied: binary.BigEndian.Uint64(h[16:]),
	}
	if hdr.format != snapshotFormatVersion {
		return nil, hdr, fmt.Errorf("%w: format version %d, this binary reads %d", ErrBadSnapshot, hdr.format, snapshotFormatVersion)
	}
	if hdr.schema != SchemaVersion && !upgradableFrom[hdr.schema] {
		return nil, hdr, fmt.Errorf("%w: snapshot has schema version %d, this binary uses %d", ErrSchema, hdr.schema, SchemaVersion)
	}
	return sr, hdr, nil
}

func (sr *snapshotReader) full(p []byte) error {
	if _, err := io.ReadFull(sr.r, p); err != nil {
		return err
	}
	sr.crc.Write(p)
	return nil
}

func (sr *snapshotReader) ReadByte() (byte, error) {
	c, err := sr.r.ReadByte()
	if err == nil {
		sr.crc.Write([]byte{c})
	}
	return c, err
}

// next returns the next entry; ok is false after the end marker, when the
// trailer has been verified. The returned slices are freshly allocated.
func (sr *snapshotReader) next() (k, v []byte, ok bool, err error) {
	if sr.done {
		return nil, nil, false, nil
	}
	kl, err := binary.ReadUvarint(sr)
	if err != nil {
		return nil, nil, false, fmt.Errorf("%w: entry %d: key length: %v", ErrBadSnapshot, sr.count, eofIsUnexpected(err))
	}
	if kl == 0 {
		sr.done = true
		return nil, nil, false, sr.verifyTrailer()
	}
	if kl > maxSnapshotKeyLen {
		return nil, nil, false, fmt.Errorf("%w: entry %d: key length %d exceeds %d", ErrBadSnapshot, sr.count, kl, maxSnapshotKeyLen)
	}
	k = make([]byte, kl)
	if err := sr.full(k); err != nil {
		return nil, nil, false, fmt.Errorf("%w: entry %d: key: %v", ErrBadSnapshot, sr.count, eofIsUnexpected(err))
	}
	vl, err := binary.ReadUvarint(sr)
	if err != nil {
		return nil, nil, false, fmt.Errorf("%w: entry %d: value length: %v", ErrBadSnapshot, sr.count, eofIsUnexpected(err))
	}
	if vl > maxSnapshotValueLen {
		return nil, nil, false, fmt.Errorf("%w: entry %d: value length %d exceeds %d", ErrBadSnapshot, sr.count, vl, maxSnapshotValueLen)
	}
	v = make([]byte, vl)
	if err := sr.full(v); err != nil {
		return nil, nil, false, fmt.Errorf("%w: entry %d: value: %v", ErrBadSnapshot, sr.count, eofIsUnexpected(err))
	}
	sr.count++
	return k, v, true, nil
}

func (sr *snapshotReader) verifyTrailer() error {
	var n [8]byte
	if err := sr.full(n[:]); err != nil {
		return fmt.Errorf("%w: trailer: %v", ErrBadSnapshot, eofIsUnexpected(err))
	}
	if got := binary.BigEndian.Uint64(n[:]); got != sr.count {
		return fmt.Errorf("%w: trailer says %d entries, stream had %d", ErrBadSnapshot, got, sr.count)
	}
	want := sr.crc.Sum32()
	var c [4]byte
	if _, err := io.ReadFull(sr.r, c[:]); err != nil {
		return fmt.Errorf("%w: checksum: %v", ErrBadSnapshot, eofIsUnexpected(err))
	}
	if got := binary.BigEndian.Uint32(c[:]); got != want {
		return fmt.Errorf("%w: checksum mismatch (stored %08x, computed %08x): the snapshot is corrupt or truncated",
			ErrBadSnapshot, got, want)
	}
	if _, err := sr.r.ReadByte(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: unexpected data after the checksum", ErrBadSnapshot)
	}
	return nil
}

func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
