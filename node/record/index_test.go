package record

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

func TestGOPTableRoundTrip(t *testing.T) {
	start := int64(1_795_000_000_000_000_000)
	frags := []fragment{
		{StartNs: start, Segment: 42, Offset: 900, Length: 500_000, DurNs: 1e9, Key: true},
		{StartNs: start + 1e9, Segment: 42, Offset: 500_900, Length: 20_000, DurNs: 999_999_999},
		{StartNs: start + 2e9 + 5e8, Segment: 42, Offset: 520_900, Length: 7, DurNs: 66_666_667, Key: true}, // a jump in time
	}
	v := encodeTable(start, 900, frags)
	got, err := decodeTable(nil, tableKey("c", start), v, 900)
	if err != nil || len(got) != len(frags) {
		t.Fatalf("%d fragments, %v", len(got), err)
	}
	for i := range frags {
		if got[i] != frags[i] {
			t.Fatalf("fragment %d: %+v, want %+v", i, got[i], frags[i])
		}
	}
	if per := float64(len(v)) / float64(len(frags)); per > 12 {
		t.Fatalf("%.1f bytes per GOP, want a compact table", per)
	}
	for cut := 0; cut < len(v); cut++ {
		if _, err := decodeTable(nil, tableKey("c", start), v[:cut], 900); err == nil {
			t.Fatalf("a table cut to %d of %d bytes decodes", cut, len(v))
		}
	}
}

// Closed segments are folded into GOP tables, the open one keeps its keys,
// and reading merges both into one gap-free, time-ordered sequence.
func TestIndexFoldsClosedSegments(t *testing.T) {
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	st, err := Open(t.TempDir(), Options{Logger: quiet(), SyncInterval: time.Hour, SegmentDuration: 5 * time.Second, Now: func() time.Time { return base.Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFeeder(t, st, "c1", base)
	for range 4 {
		f.feed(5 * time.Second)
		st.syncOnce()
	}
	count := func(prefix byte) int {
		lo, hi := camBounds(prefix, "c1")
		it, _ := st.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		defer it.Close()
		n := 0
		for ok := it.First(); ok; ok = it.Next() {
			n++
		}
		return n
	}
	tables, keys := count(prefixTable), count(prefixFragment)
	if tables < 2 || keys == 0 || keys > 6 {
		t.Fatalf("%d tables and %d fragment keys: want closed segments folded and only the open one's keys left", tables, keys)
	}
	var got []fragment
	if err := st.fragments("c1", base.Add(-time.Minute), base.Add(time.Minute), func(fr fragment) bool { got = append(got, fr); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) < 18 {
		t.Fatalf("%d fragments, want ~19 one-second GOPs", len(got))
	}
	for i := 1; i < len(got); i++ {
		if d := got[i].StartNs - got[i-1].StartNs - got[i-1].DurNs; d < -1000 || d > 1000 {
			t.Fatalf("fragment %d starts %d ns away from where %d ended", i, d, i-1)
		}
	}
	// A range in the middle, and seeks, find the same fragments.
	mid := time.Unix(0, got[9].StartNs+1)
	var part []fragment
	_ = st.fragments("c1", mid, mid.Add(3*time.Second), func(fr fragment) bool { part = append(part, fr); return true })
	if len(part) != 4 || part[0] != got[9] {
		t.Fatalf("range from fragment 9: %d fragments starting %+v", len(part), part)
	}
	if k := st.keyframeAtOrBefore("c1", mid.Add(500*time.Millisecond)); !k.Equal(got[9].start()) {
		t.Fatalf("keyframe at or before %s: %s, want %s", mid, k, got[9].start())
	}
	if until, _ := st.RecordedUntil("c1"); !until.Equal(got[len(got)-1].end()) {
		t.Fatalf("recorded until %s, want %s", until, got[len(got)-1].end())
	}
}
