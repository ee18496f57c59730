package record

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/ronda-jakarta/ronda/node/media"
)

// appendFragment appends one fragment (moof+mdat) of the given frames to
// b, the samples in AVCC/HVCC form (4-byte lengths) straight from the
// frames' NAL units: no intermediate sample objects, no second copy.
// entries carries each frame's duration in; sizes and flags are filled in
// (it is scratch space the caller reuses).
func appendFragment(b []byte, seq uint32, baseTime uint64, aus []*media.AccessUnit, entries []sampleEntry) ([]byte, error) {
	mdatLen := 8
	for i, au := range aus {
		size := 0
		for _, n := range au.NALUs {
			size += 4 + len(n)
		}
		mdatLen += size
		entries[i].size = uint32(size)
		entries[i].flags = 0
		if !au.Key {
			entries[i].flags = 1 << 16 // sample_is_non_sync_sample
		}
	}
	if mdatLen > math.MaxUint32 {
		return b, fmt.Errorf("fragment of %d bytes is too large", mdatLen)
	}
	b = appendMoof(b, seq, baseTime, entries[:len(aus)])
	b = box(b, mdatLen, "mdat")
	for _, au := range aus {
		for _, n := range au.NALUs {
			b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
			b = append(b, n...)
		}
	}
	return b, nil
}

// appendMoof appends a moof for one track whose samples follow in the next
// box (an mdat with an 8-byte header). The layout is what ISO/IEC 14496-12
// readers expect and what mediacommon's fmp4 writes: mfhd; traf with tfhd
// (default-base-is-moof), tfdt (v1) and trun (v1: data offset, duration,
// size and flags per sample).
func appendMoof(b []byte, seq uint32, baseTime uint64, samples []sampleEntry) []byte {
	trunLen := 8 + 4 + 4 + 4 + 12*len(samples)
	trafLen := 8 + 16 + 20 + trunLen
	moofLen := 8 + 16 + trafLen

	b = box(b, moofLen, "moof")
	b = box(b, 16, "mfhd")
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, seq)
	b = box(b, trafLen, "traf")
	b = box(b, 16, "tfhd")
	b = binary.BigEndian.AppendUint32(b, 0x020000) // default-base-is-moof
	b = binary.BigEndian.AppendUint32(b, 1)        // track id
	b = box(b, 20, "tfdt")
	b = binary.BigEndian.AppendUint32(b, 1<<24) // version 1
	b = binary.BigEndian.AppendUint64(b, baseTime)
	b = box(b, trunLen, "trun")
	b = binary.BigEndian.AppendUint32(b, 1<<24|0x000701) // v1; data offset, duration, size, flags
	b = binary.BigEndian.AppendUint32(b, uint32(len(samples)))
	b = binary.BigEndian.AppendUint32(b, uint32(moofLen+8))
	for _, e := range samples {
		b = binary.BigEndian.AppendUint32(b, e.dur)
		b = binary.BigEndian.AppendUint32(b, e.size)
		b = binary.BigEndian.AppendUint32(b, e.flags)
	}
	return b
}

func box(b []byte, size int, typ string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	return append(b, typ...)
}
