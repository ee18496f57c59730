package record

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"github.com/ronda-jakarta/ronda/node/media"
)

// A segment file written in pieces of every size holds exactly those bytes,
// before close (up to its logical size, zeros after) and after.
func TestSegFileAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.mp4")
	f, err := createSegFile(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("O_DIRECT: %v", f.direct)
	rng := rand.New(rand.NewPCG(1, 2))
	var want []byte
	for i, n := range []int{0, 1, 4095, 1, 4096, 8191, 5, 300 << 10, 700 << 10, 3, 4093} {
		chunk := make([]byte, n)
		for j := range chunk {
			chunk[j] = byte(rng.IntN(255) + 1) // never zero: padding must not show up as data
		}
		got, err := f.commit(append(f.begin(), chunk...))
		if err != nil || got != n {
			t.Fatalf("commit %d (%d bytes): %d, %v", i, n, got, err)
		}
		want = append(want, chunk...)
		disk, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(disk) < len(want) || !bytes.Equal(disk[:len(want)], want) {
			t.Fatalf("after commit %d the file's first %d bytes differ from what was written", i, len(want))
		}
		if bytes.ContainsFunc(disk[len(want):], func(r rune) bool { return r != 0 }) {
			t.Fatalf("after commit %d: non-zero bytes past the logical end", i)
		}
	}
	if err := f.close(); err != nil {
		t.Fatal(err)
	}
	disk, _ := os.ReadFile(path)
	if !bytes.Equal(disk, want) {
		t.Fatalf("closed file: %d bytes, want exactly the %d written", len(disk), len(want))
	}
}

// appendFragment writes what mediacommon's reader (and so any ISO BMFF
// reader) parses back into the same samples.
func TestAppendFragmentParses(t *testing.T) {
	aus := []*media.AccessUnit{
		{Key: true, NALUs: [][]byte{{0x65, 1, 2, 3}, {0x65, 4}}},
		{NALUs: [][]byte{{0x41, 9, 9}}},
		{NALUs: [][]byte{{0x41, 7}}},
	}
	durs := []uint32{6000, 6000, 3003}
	entries := []sampleEntry{{dur: durs[0]}, {dur: durs[1]}, {dur: durs[2]}}
	b, err := appendFragment([]byte("prefix"), 7, 123456789012, aus, entries)
	if err != nil {
		t.Fatal(err)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b[len("prefix"):]); err != nil {
		t.Fatal(err)
	}
	if len(parts) != 1 || parts[0].SequenceNumber != 7 || len(parts[0].Tracks) != 1 {
		t.Fatalf("parts %+v", parts)
	}
	tr := parts[0].Tracks[0]
	if tr.ID != 1 || tr.BaseTime != 123456789012 || len(tr.Samples) != 3 {
		t.Fatalf("track %+v", tr)
	}
	for i, s := range tr.Samples {
		want, _ := fmp4.NewSampleH264(0, aus[i].NALUs)
		if s.Duration != durs[i] || s.IsNonSyncSample == aus[i].Key || !bytes.Equal(s.Payload, want.Payload) {
			t.Fatalf("sample %d: %+v", i, s)
		}
	}
	// And it is what mediacommon itself would have written, box for box,
	// apart from sample flags that we always send.
	var ref seekablebuffer.Buffer
	p := fmp4.Part{SequenceNumber: 7, Tracks: []*fmp4.PartTrack{{ID: 1, BaseTime: 123456789012}}}
	for i, au := range aus {
		s, _ := fmp4.NewSampleH264(0, au.NALUs)
		s.Duration, s.IsNonSyncSample = durs[i], !au.Key
		p.Tracks[0].Samples = append(p.Tracks[0].Samples, s)
	}
	if err := p.Marshal(&ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Bytes()) != len(b)-len("prefix") {
		t.Fatalf("fragment is %d bytes, mediacommon writes %d", len(b)-len("prefix"), len(ref.Bytes()))
	}
}
