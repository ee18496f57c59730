package store

import (
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

const sec = int64(time.Second)

func ivs(pairs ...int64) []interval {
	out := make([]interval, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, interval{pairs[i] * sec, pairs[i+1] * sec})
	}
	return out
}

func TestMergeInterval(t *testing.T) {
	gap := int64(SpanMergeGap)
	tests := []struct {
		name string
		have []interval
		add  interval
		want []interval
	}{
		{"into empty", nil, ivs(10, 20)[0], ivs(10, 20)},
		{"overlap right", ivs(10, 20), ivs(15, 30)[0], ivs(10, 30)},
		{"overlap left", ivs(10, 20), ivs(5, 12)[0], ivs(5, 20)},
		{"contained", ivs(10, 20), ivs(12, 18)[0], ivs(10, 20)},
		{"containing", ivs(10, 20), ivs(0, 40)[0], ivs(0, 40)},
		{"touching exactly", ivs(10, 20), ivs(20, 30)[0], ivs(10, 30)},
		{"gap of 3s merges", ivs(10, 20), ivs(23, 30)[0], ivs(10, 30)},
		{"gap of 3s before merges", ivs(10, 20), ivs(0, 7)[0], ivs(0, 20)},
		{"gap just over 3s stays apart", ivs(10, 20), interval{20*sec + gap + 1, 30 * sec}, []interval{{10 * sec, 20 * sec}, {20*sec + gap + 1, 30 * sec}}},
		{"disjoint after", ivs(10, 20), ivs(40, 50)[0], ivs(10, 20, 40, 50)},
		{"disjoint before", ivs(40, 50), ivs(10, 20)[0], ivs(10, 20, 40, 50)},
		{"disjoint between", ivs(0, 5, 40, 50), ivs(20, 30)[0], ivs(0, 5, 20, 30, 40, 50)},
		{"bridges two", ivs(0, 10, 20, 30, 60, 70), ivs(12, 18)[0], ivs(0, 30, 60, 70)},
		{"bridges many", ivs(0, 10, 20, 30, 40, 50, 90, 100), ivs(5, 45)[0], ivs(0, 50, 90, 100)},
		{"empty ignored", ivs(10, 20), ivs(30, 30)[0], ivs(10, 20)},
		{"inverted ignored", ivs(10, 20), ivs(30, 25)[0], ivs(10, 20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mergeInterval(slices.Clone(tt.have), tt.add, gap)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("merge %v into %v = %v, want %v", tt.add, tt.have, got, tt.want)
			}
		})
	}
}

func TestMergeIntervalOutOfOrder(t *testing.T) {
	// One-minute segments with 1 s holes, arriving shuffled, plus one real
	// outage of 10 s: the result must be two spans whatever the order.
	var segs []interval
	start := int64(1_700_000_000) * sec
	for i := range int64(30) {
		s := start + i*61*sec
		if i >= 15 {
			s += 10 * sec
		}
		segs = append(segs, interval{s, s + 60*sec})
	}
	orders := [][]int{}
	fwd := make([]int, len(segs))
	for i := range fwd {
		fwd[i] = i
	}
	rev := slices.Clone(fwd)
	slices.Reverse(rev)
	interleaved := []int{}
	for i := 0; i < len(segs); i += 2 {
		interleaved = append(interleaved, i)
	}
	for i := len(segs) - 1; i >= 1; i -= 2 {
		interleaved = append(interleaved, i)
	}
	orders = append(orders, fwd, rev, interleaved)
	want := []interval{
		{start, start + 14*61*sec + 60*sec},
		{start + 15*61*sec + 10*sec, start + 29*61*sec + 10*sec + 60*sec},
	}
	for _, order := range orders {
		var got []interval
		for _, i := range order {
			got = mergeInterval(got, segs[i], int64(SpanMergeGap))
			if !sorted(got) {
				t.Fatalf("order %v: invariant broken: %v", order, got)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("order %v: got %v, want %v", order, got, want)
		}
	}
}

func sorted(s []interval) bool {
	for i := range s {
		if s[i].end <= s[i].start {
			return false
		}
		if i > 0 && s[i].start-s[i-1].end <= int64(SpanMergeGap) {
			return false
		}
	}
	return true
}

func TestCapIntervals(t *testing.T) {
	got := capIntervals(ivs(0, 1, 10, 11, 20, 21), 2)
	if want := ivs(10, 11, 20, 21); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestClipCoverage(t *testing.T) {
	cov := ivs(0, 10, 20, 30, 40, 50)
	got := clipIntervals("cam", cov, 5*sec, 45*sec)
	want := []*rondav1.Span{
		{CameraId: "cam", StartUnixNano: 5 * sec, EndUnixNano: 10 * sec},
		{CameraId: "cam", StartUnixNano: 20 * sec, EndUnixNano: 30 * sec},
		{CameraId: "cam", StartUnixNano: 40 * sec, EndUnixNano: 45 * sec},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i].String() {
			t.Fatalf("span %d: got %v, want %v", i, got[i], want[i])
		}
	}
	if got := clipIntervals("cam", cov, 10*sec, 20*sec); len(got) != 0 {
		t.Fatalf("[10s,20s) is a hole, got %v", got)
	}
	if got := clipIntervals("cam", cov, 30*sec, 10*sec); got != nil {
		t.Fatalf("inverted range: got %v", got)
	}
}

// Coverage is kept per UTC day: a span over midnight is stored in both
// days, clipped, and read back as one span; a later span that touches it
// merges; a query of one day reads only what it needs.
func TestCoverageDayBuckets(t *testing.T) {
	f := newTestFSM(t, t.TempDir())
	day := int64(20_000) * nsPerDay // some midnight
	cmd := nodeCmd(t, "n1", 1, regRec(1, "n1", "31.71.01.1001"), camsRec(2, "c1"),
		&rondav1.Record{Seq: 3, Body: &rondav1.Record_Span{Span: &rondav1.Span{CameraId: "c1", StartUnixNano: day - 3600*sec, EndUnixNano: day + 1800*sec}}},
		&rondav1.Record{Seq: 4, Body: &rondav1.Record_Span{Span: &rondav1.Span{CameraId: "c1", StartUnixNano: day + 1801*sec, EndUnixNano: day + 3600*sec}}})
	if r := applyAt(t, f, 1, cmd); r.err != nil {
		t.Fatal(r.err)
	}
	var keys int
	f.read(func(r pebble.Reader) error {
		return scanPrefix(r, coveragePrefix("c1"), func(k, _ []byte) error { keys++; return nil })
	})
	if keys != 2 {
		t.Fatalf("%d day buckets, want 2 (the span crosses midnight)", keys)
	}
	if got, want := getCoverage(t, f, "c1"), ivs((day-3600*sec)/sec, (day+3600*sec)/sec); !slices.Equal(got, want) {
		t.Fatalf("coverage %v, want one span %v (merged across midnight and within %v)", got, want, SpanMergeGap)
	}
	var got []interval
	f.read(func(r pebble.Reader) error {
		var err error
		got, err = readCoverage(r, "c1", day+600*sec, day+700*sec)
		return err
	})
	if len(got) != 1 || got[0].start != day-3600*sec || got[0].end != day+3600*sec {
		t.Fatalf("query inside the second day read %v, want the whole span that crosses midnight", got)
	}
}
