package record

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	amp4 "github.com/abema/go-mp4"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// ExportResult describes an exported file and what it was made from.
type ExportResult struct {
	Camera   string          `json:"camera"`
	From     time.Time       `json:"from"` // wall time of the first frame (the keyframe at or before the request)
	To       time.Time       `json:"to"`   // wall time after the last frame
	Frames   int             `json:"frames"`
	Bytes    int64           `json:"bytes"`
	SHA256   string          `json:"sha256"`
	Segments []SegmentDigest `json:"segments"`
}

// SegmentDigest is the SHA-256 of a source segment's bytes up to the end of
// the last fragment the export used.
type SegmentDigest struct {
	File   string `json:"file"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

type exportSample struct {
	size     uint32
	duration uint32
	sync     bool
	offset   uint64
}

// Export writes [from,to) of a camera to path as a progressive MP4 (ftyp,
// mdat, moov) that any player opens: one sample per chunk addressed with
// co64 and a 64-bit mdat size, so exports over 4 GiB work. The footage
// starts at the keyframe at or before from; payloads are copied untouched.
func (s *Store) Export(ctx context.Context, path, cameraID string, from, to time.Time) (ExportResult, error) {
	res := ExportResult{Camera: cameraID}
	var frags []fragment
	err := s.fragments(cameraID, s.keyframeAtOrBefore(cameraID, from), to, func(f fragment) bool {
		frags = append(frags, f)
		return true
	})
	if err != nil {
		return res, err
	}
	start := -1
	for i, f := range frags {
		if f.Key && !f.start().After(from) {
			start = i
		}
	}
	if start < 0 {
		for i, f := range frags { // footage begins after from: its first keyframe
			if f.Key {
				start = i
				break
			}
		}
	}
	if start < 0 {
		return res, ErrNoRecordings
	}
	frags = frags[start:]

	out, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o640)
	if err != nil {
		return res, err
	}
	fail := func(err error) (ExportResult, error) {
		out.Close()
		os.Remove(path)
		return res, err
	}
	files := map[uint64]*os.File{}
	segs := map[uint64]*segment{}
	used := map[uint64]int64{} // segment -> end of the last fragment used
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	open := func(id uint64) (*os.File, *segment, error) {
		if f := files[id]; f != nil {
			return f, segs[id], nil
		}
		v, ok, err := s.get(segmentKey(cameraID, id))
		if err != nil || !ok {
			return nil, nil, fmt.Errorf("record: segment %d of %s is missing from the index: %v", id, cameraID, err)
		}
		seg, err := decodeSegment(v)
		if err != nil {
			return nil, nil, err
		}
		f, err := os.Open(filepath.Join(s.segDir, seg.File))
		if err != nil {
			return nil, nil, err
		}
		files[id], segs[id] = f, seg
		return f, seg, nil
	}

	// ftyp, then an mdat with a 64-bit size filled in at the end.
	ftyp := []byte{0, 0, 0, 24, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm', 0, 0, 2, 0, 'i', 's', 'o', 'm', 'a', 'v', 'c', '1'}
	mdatHdr := []byte{0, 0, 0, 1, 'm', 'd', 'a', 't', 0, 0, 0, 0, 0, 0, 0, 0}
	if _, err := out.Write(append(ftyp, mdatHdr...)); err != nil {
		return fail(err)
	}
	offset := uint64(len(ftyp) + len(mdatHdr))
	var samples []exportSample
	var stsd []byte
	var width, height int
	wall := frags[0].start()
	res.From = wall
	for _, fr := range frags {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		f, seg, err := open(fr.Segment)
		if err != nil {
			return fail(err)
		}
		if stsd == nil {
			if stsd, width, height, err = readStsd(f, seg.InitBytes); err != nil {
				return fail(fmt.Errorf("record: init of %s: %w", seg.File, err))
			}
		}
		raw := make([]byte, fr.Length)
		if _, err := f.ReadAt(raw, fr.Offset); err != nil {
			return fail(err)
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(raw); err != nil || len(parts) != 1 || len(parts[0].Tracks) != 1 {
			return fail(fmt.Errorf("record: fragment of %s at %d does not parse: %v", seg.File, fr.Offset, err))
		}
		wall = fr.start()
		for _, smp := range parts[0].Tracks[0].Samples {
			if !wall.Before(to) {
				break
			}
			if _, err := out.Write(smp.Payload); err != nil {
				return fail(err)
			}
			samples = append(samples, exportSample{size: uint32(len(smp.Payload)), duration: smp.Duration, sync: !smp.IsNonSyncSample, offset: offset})
			offset += uint64(len(smp.Payload))
			wall = wall.Add(time.Duration(smp.Duration) * time.Second / timescale)
		}
		if end := fr.Offset + int64(fr.Length); end > used[fr.Segment] {
			used[fr.Segment] = end
		}
	}
	res.To, res.Frames = wall, len(samples)
	mdatSize := offset - uint64(len(ftyp))
	binary.BigEndian.PutUint64(mdatHdr[8:], mdatSize)
	if _, err := out.WriteAt(mdatHdr, int64(len(ftyp))); err != nil {
		return fail(err)
	}
	if _, err := out.Seek(int64(offset), io.SeekStart); err != nil {
		return fail(err)
	}
	if err := writeMoov(out, stsd, samples, width, height); err != nil {
		return fail(err)
	}
	if err := out.Sync(); err != nil {
		return fail(err)
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, out)
	if err != nil {
		return fail(err)
	}
	if err := out.Close(); err != nil {
		return res, err
	}
	res.Bytes, res.SHA256 = n, hex.EncodeToString(h.Sum(nil))

	ids := make([]uint64, 0, len(used))
	for id := range used {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		d, err := digest(files[id], used[id])
		if err != nil {
			return res, err
		}
		res.Segments = append(res.Segments, SegmentDigest{File: segs[id].File, Bytes: used[id], SHA256: d})
	}
	return res, nil
}

func digest(f *os.File, n int64) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, n)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readStsd returns the raw stsd box (avc1 + avcC) of a segment's init and
// the picture size from its SPS.
func readStsd(f *os.File, initLen int64) ([]byte, int, int, error) {
	init := make([]byte, initLen)
	if _, err := f.ReadAt(init, 0); err != nil {
		return nil, 0, 0, err
	}
	r := bytes.NewReader(init)
	boxes, err := amp4.ExtractBox(r, nil, amp4.BoxPath{amp4.BoxTypeMoov(), amp4.BoxTypeTrak(), amp4.BoxTypeMdia(),
		amp4.BoxTypeMinf(), amp4.BoxTypeStbl(), amp4.BoxTypeStsd()})
	if err != nil || len(boxes) != 1 {
		return nil, 0, 0, fmt.Errorf("no stsd box: %v", err)
	}
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(init)); err != nil {
		return nil, 0, 0, err
	}
	c, ok := in.Tracks[0].Codec.(*fmp4.CodecH264)
	if !ok {
		return nil, 0, 0, fmt.Errorf("export supports H.264 (got %T)", in.Tracks[0].Codec)
	}
	var sps h264.SPS
	if err := sps.Unmarshal(c.SPS); err != nil {
		return nil, 0, 0, err
	}
	b := boxes[0]
	return init[b.Offset : b.Offset+b.Size], sps.Width(), sps.Height(), nil
}

func writeMoov(w io.WriteSeeker, stsd []byte, samples []exportSample, width, height int) error {
	mw := amp4.NewWriter(w)
	var total uint64
	for _, s := range samples {
		total += uint64(s.duration)
	}
	v := uint8(0)
	if total > 1<<32-1 {
		v = 1
	}
	matrix := [9]int32{0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000}
	var err error
	start := func(t amp4.BoxType) {
		if err == nil {
			_, err = mw.StartBox(&amp4.BoxInfo{Type: t})
		}
	}
	end := func() {
		if err == nil {
			_, err = mw.EndBox()
		}
	}
	box := func(b amp4.IImmutableBox) {
		start(b.GetType())
		if err == nil {
			_, err = amp4.Marshal(mw, b, amp4.Context{})
		}
		end()
	}
	movieDur := total * 1000 / timescale
	start(amp4.BoxTypeMoov())
	mvhd := &amp4.Mvhd{FullBox: amp4.FullBox{Version: v}, Timescale: 1000, Rate: 0x00010000, Volume: 0x0100, Matrix: matrix, NextTrackID: 2}
	mvhd.DurationV0, mvhd.DurationV1 = uint32(movieDur), movieDur
	box(mvhd)
	start(amp4.BoxTypeTrak())
	tkhd := &amp4.Tkhd{FullBox: amp4.FullBox{Version: v, Flags: [3]byte{0, 0, 3}}, TrackID: 1, Matrix: matrix,
		Width: uint32(width) << 16, Height: uint32(height) << 16}
	tkhd.DurationV0, tkhd.DurationV1 = uint32(movieDur), movieDur
	box(tkhd)
	start(amp4.BoxTypeMdia())
	mdhd := &amp4.Mdhd{FullBox: amp4.FullBox{Version: v}, Timescale: timescale, Language: [3]byte{'u' - 0x60, 'n' - 0x60, 'd' - 0x60}}
	mdhd.DurationV0, mdhd.DurationV1 = uint32(total), total
	box(mdhd)
	box(&amp4.Hdlr{HandlerType: [4]byte{'v', 'i', 'd', 'e'}, Name: "Ronda export"})
	start(amp4.BoxTypeMinf())
	box(&amp4.Vmhd{FullBox: amp4.FullBox{Flags: [3]byte{0, 0, 1}}})
	start(amp4.BoxTypeDinf())
	start(amp4.BoxTypeDref())
	if err == nil {
		_, err = amp4.Marshal(mw, &amp4.Dref{EntryCount: 1}, amp4.Context{})
	}
	box(&amp4.Url{FullBox: amp4.FullBox{Flags: [3]byte{0, 0, amp4.UrlSelfContained}}})
	end()
	end()
	start(amp4.BoxTypeStbl())
	if err == nil {
		_, err = mw.Write(stsd)
	}
	stts := &amp4.Stts{}
	stss := &amp4.Stss{}
	stsz := &amp4.Stsz{SampleCount: uint32(len(samples))}
	co64 := &amp4.Co64{EntryCount: uint32(len(samples))}
	for i, s := range samples {
		if n := len(stts.Entries); n > 0 && stts.Entries[n-1].SampleDelta == s.duration {
			stts.Entries[n-1].SampleCount++
		} else {
			stts.Entries = append(stts.Entries, amp4.SttsEntry{SampleCount: 1, SampleDelta: s.duration})
		}
		if s.sync {
			stss.SampleNumber = append(stss.SampleNumber, uint32(i+1))
		}
		stsz.EntrySize = append(stsz.EntrySize, s.size)
		co64.ChunkOffset = append(co64.ChunkOffset, s.offset)
	}
	stts.EntryCount = uint32(len(stts.Entries))
	stss.EntryCount = uint32(len(stss.SampleNumber))
	box(stts)
	box(stss)
	box(&amp4.Stsc{EntryCount: 1, Entries: []amp4.StscEntry{{FirstChunk: 1, SamplesPerChunk: 1, SampleDescriptionIndex: 1}}})
	box(stsz)
	box(co64)
	end() // stbl
	end() // minf
	end() // mdia
	end() // trak
	end() // moov
	return err
}
