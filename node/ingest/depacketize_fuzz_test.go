package ingest

import (
	"encoding/binary"
	"os"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"

	"github.com/ronda-jakarta/ronda/camsim"
	"github.com/ronda-jakarta/ronda/node/media"
)

// packets splits fuzz input into RTP packets: each is a 2-byte length, a
// 1-byte flags field (bit 0: marker, bits 1-7: timestamp step in frames,
// where 0x7f means a jump) and the payload.
func packets(data []byte) []*rtp.Packet {
	var out []*rtp.Packet
	ts := uint32(1<<32 - 3000) // wrap around early
	seq := uint16(65530)
	for len(data) >= 3 {
		n := int(binary.BigEndian.Uint16(data))
		flags := data[2]
		data = data[3:]
		n = min(n, len(data))
		step := uint32(flags >> 1)
		if step == 0x7f {
			ts += 90000 * 3600 // a camera clock step
		} else {
			ts += step * 6000
		}
		out = append(out, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, Marker: flags&1 == 1},
			Payload: append([]byte(nil), data[:n]...)})
		seq++
		data = data[n:]
	}
	return out
}

// seed packetizes a few frames of the test clip in the fuzz input format.
func seed(f *testing.F, quirks camsim.Quirks) {
	raw, err := os.ReadFile("../../testdata/clip.h264")
	if err != nil {
		f.Fatal(err)
	}
	clip, err := camsim.ParseClip(raw)
	if err != nil {
		f.Fatal(err)
	}
	enc := &rtph264.Encoder{PayloadType: 96, PacketizationMode: 1, PayloadMaxSize: 1200}
	if err := enc.Init(); err != nil {
		f.Fatal(err)
	}
	var in []byte
	for i := 0; i < 4; i++ {
		au := clip.AUs[i]
		if quirks.AUDFirst {
			au = append([][]byte{{0x09, 0xf0}}, au...)
		}
		pkts, err := enc.Encode(au)
		if err != nil {
			f.Fatal(err)
		}
		for j, p := range pkts {
			flags := byte(0)
			if j == 0 && i > 0 {
				flags |= 1 << 1
			}
			if p.Marker {
				flags |= 1
			}
			in = binary.BigEndian.AppendUint16(in, uint16(len(p.Payload)))
			in = append(in, flags)
			in = append(in, p.Payload...)
		}
	}
	f.Add(in)
}

// FuzzDepacketize feeds arbitrary RTP packets through the same path a camera
// stream takes (gortsplib's H.264 decoder, then the depacketizer) and checks
// what reaches the recorder and live view is always sane.
func FuzzDepacketize(f *testing.F) {
	seed(f, camsim.Quirks{})
	seed(f, camsim.Quirks{AUDFirst: true})
	f.Add([]byte{0, 3, 1, 0x09, 0xf0, 0x00})
	// A whole stream, then a frame that is only an AUD (found by fuzzing).
	raw, _ := os.ReadFile("../../testdata/clip.h264")
	if clip, err := camsim.ParseClip(raw); err == nil {
		enc := &rtph264.Encoder{PayloadType: 96, PacketizationMode: 1, PayloadMaxSize: 1200}
		_ = enc.Init()
		var in []byte
		for i, au := range append(clip.AUs[:2:2], [][]byte{{0x09, 0xf0}}) {
			pkts, _ := enc.Encode(au)
			for j, p := range pkts {
				flags := byte(0)
				if j == 0 && i > 0 {
					flags |= 1 << 1
				}
				if p.Marker {
					flags |= 1
				}
				in = binary.BigEndian.AppendUint16(in, uint16(len(p.Payload)))
				in = append(append(in, flags), p.Payload...)
			}
		}
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out := &sink{}
		now := time.Unix(1_800_000_000, 0)
		cam := New(Config{CameraID: "fuzz", URL: "rtsp://127.0.0.1/x", Logger: quiet(), Now: func() time.Time { return now }}, out)
		forma := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
		dec, err := forma.CreateDecoder()
		if err != nil {
			t.Fatal(err)
		}
		d := &depacketizer{c: cam}
		for _, p := range packets(data) {
			now = now.Add(10 * time.Millisecond)
			au, err := dec.Decode(p)
			if err != nil {
				continue
			}
			d.accessUnit(au, d.unwrap(p.Timestamp))
		}
		for _, tr := range out.tracks {
			if len(tr.SPS) == 0 || len(tr.PPS) == 0 {
				t.Fatal("track announced without parameter sets")
			}
		}
		if len(out.aus) > 0 && !out.aus[0].Key {
			t.Fatal("first access unit handed on is not a keyframe")
		}
		if out.badPTS != 0 {
			t.Fatalf("%d access units with non-increasing PTS", out.badPTS)
		}
		for _, au := range out.aus {
			if len(au.NALUs) == 0 {
				t.Fatal("empty access unit handed on")
			}
			for _, n := range au.NALUs {
				if len(n) == 0 || h264.NALUType(n[0]&0x1f) == h264.NALUTypeAccessUnitDelimiter {
					t.Fatal("empty NAL unit or AUD handed on")
				}
			}
		}
	})
}

// FuzzDepacketizeH265 is FuzzDepacketize for H.265 cameras: gortsplib's
// H.265 decoder, our Annex-B splitting and the depacketizer.
func FuzzDepacketizeH265(f *testing.F) {
	raw, err := os.ReadFile(clip265)
	if err != nil {
		f.Fatal(err)
	}
	clip, err := camsim.ParseClip(raw)
	if err != nil {
		f.Fatal(err)
	}
	for _, annexB := range []bool{false, true} {
		enc := &rtph265.Encoder{PayloadType: 96, PayloadMaxSize: 1200}
		if err := enc.Init(); err != nil {
			f.Fatal(err)
		}
		var in []byte
		for i := 0; i < 4; i++ {
			au := clip.AUs[i]
			if annexB {
				var joined []byte
				for _, n := range au {
					joined = append(append(joined, 0, 0, 0, 1), n...)
				}
				au = [][]byte{joined}
			}
			pkts, err := enc.Encode(au)
			if err != nil {
				f.Fatal(err)
			}
			for j, p := range pkts {
				flags := byte(0)
				if j == 0 && i > 0 {
					flags |= 1 << 1
				}
				if p.Marker {
					flags |= 1
				}
				in = binary.BigEndian.AppendUint16(in, uint16(len(p.Payload)))
				in = append(append(in, flags), p.Payload...)
			}
		}
		f.Add(in)
	}
	f.Add([]byte{0, 4, 1, 0x46, 0x01, 0x50, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		out := &sink{}
		now := time.Unix(1_800_000_000, 0)
		cam := New(Config{CameraID: "fuzz", URL: "rtsp://127.0.0.1/x", Logger: quiet(), Now: func() time.Time { return now }}, out)
		dec, err := (&format.H265{PayloadTyp: 96}).CreateDecoder()
		if err != nil {
			t.Fatal(err)
		}
		d := &depacketizer{c: cam, h265: true}
		for _, p := range packets(data) {
			now = now.Add(10 * time.Millisecond)
			au, err := dec.Decode(p)
			if err != nil {
				continue
			}
			d.accessUnit(au, d.unwrap(p.Timestamp))
		}
		for _, tr := range out.tracks {
			if tr.Codec != media.CodecH265 || len(tr.VPS) == 0 || len(tr.SPS) == 0 || len(tr.PPS) == 0 {
				t.Fatalf("track announced without its parameter sets: %+v", tr)
			}
		}
		if len(out.aus) > 0 && !out.aus[0].Key {
			t.Fatal("first access unit handed on is not a keyframe")
		}
		if out.badPTS != 0 {
			t.Fatalf("%d access units with non-increasing PTS", out.badPTS)
		}
		for _, au := range out.aus {
			if len(au.NALUs) == 0 {
				t.Fatal("empty access unit handed on")
			}
			if au.Key != h265.IsRandomAccess(au.NALUs) {
				t.Fatal("key flag disagrees with the NAL units")
			}
			for _, n := range au.NALUs {
				if len(n) < 2 || isAUD(media.CodecH265, n) || (len(n) >= 3 && n[0] == 0 && n[1] == 0 && n[2] <= 1) {
					t.Fatalf("empty, truncated, AUD or Annex-B-framed NAL unit handed on: % x", n[:min(len(n), 8)])
				}
			}
		}
	})
}
