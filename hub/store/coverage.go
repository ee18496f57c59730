package store

import (
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// SpanMergeGap is the largest gap between two spans that still counts as
// "touching": segment boundaries on a node leave small holes that are not
// real outages, so spans closer than this are merged into one.
const SpanMergeGap = 3 * time.Second

// MaxCoverageSpans bounds the number of disjoint spans kept per camera and
// day (one every 30 s all day long). When a merge would exceed it, the
// oldest spans of that day are dropped (deterministically, on every member
// alike).
const MaxCoverageSpans = 2880

// interval is a half-open time range [start,end) in Unix nanoseconds.
type interval struct{ start, end int64 }

// mergeInterval inserts iv into spans, which must be sorted by start and
// pairwise separated by more than gap, and returns the result with the same
// invariant. Intervals that overlap iv or are within gap of it are merged.
// An empty or inverted iv leaves spans unchanged. The input slice may be reused.
func mergeInterval(spans []interval, iv interval, gap int64) []interval {
	if iv.end <= iv.start {
		return spans
	}
	// First span that reaches iv (ends no more than gap before iv starts).
	i := sort.Search(len(spans), func(k int) bool { return spans[k].end+gap >= iv.start })
	// First span that starts more than gap after iv ends.
	j := sort.Search(len(spans), func(k int) bool { return spans[k].start-gap > iv.end })
	if i < j {
		iv.start = min(iv.start, spans[i].start)
		iv.end = max(iv.end, spans[j-1].end)
	}
	out := make([]interval, 0, len(spans)-(j-i)+1)
	out = append(out, spans[:i]...)
	out = append(out, iv)
	out = append(out, spans[j:]...)
	return out
}

// capIntervals drops the oldest intervals beyond limit.
func capIntervals(spans []interval, limit int) []interval {
	if len(spans) <= limit {
		return spans
	}
	return spans[len(spans)-limit:]
}

func intervalsFromCoverage(c *rondav1.StoredCoverage) []interval {
	out := make([]interval, 0, len(c.GetSpans())+1)
	for _, s := range c.GetSpans() {
		out = append(out, interval{s.GetStartUnixNano(), s.GetEndUnixNano()})
	}
	return out
}

func coverageFromIntervals(spans []interval) *rondav1.StoredCoverage {
	c := &rondav1.StoredCoverage{Spans: make([]*rondav1.Span, len(spans))}
	for i, s := range spans {
		c.Spans[i] = &rondav1.Span{StartUnixNano: s.start, EndUnixNano: s.end}
	}
	return c
}

// readCoverage reads the camera's spans intersecting [from,to) from its day
// buckets and merges spans that touch across midnight (or within
// SpanMergeGap), so a camera that records all week is one span.
func readCoverage(r pebble.Reader, cameraID string, from, to int64) ([]interval, error) {
	if to <= from {
		return nil, nil
	}
	var out []interval
	// Start a day early: a span ending just after midnight may merge with
	// one that ended the day before within SpanMergeGap.
	lo := coverageDayKey(cameraID, max(dayOf(from), 1)-1)
	hi := coverageDayKey(cameraID, dayOf(to-1)+1)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("read coverage of %s: %w", cameraID, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return nil, fmt.Errorf("read coverage of %s: %w", cameraID, err)
		}
		var cov rondav1.StoredCoverage
		if err := proto.Unmarshal(v, &cov); err != nil {
			it.Close()
			return nil, fmt.Errorf("%w: decode coverage of %s: %v", ErrSchema, cameraID, err)
		}
		for _, sp := range cov.GetSpans() {
			iv := interval{sp.GetStartUnixNano(), sp.GetEndUnixNano()}
			if n := len(out); n > 0 && iv.start-out[n-1].end <= int64(SpanMergeGap) {
				out[n-1].end = max(out[n-1].end, iv.end)
				continue
			}
			out = append(out, iv)
		}
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("read coverage of %s: %w", cameraID, err)
	}
	return out, nil
}

// clipIntervals returns the spans (sorted, disjoint) intersecting [from,to),
// clipped to it, labelled with cameraID.
func clipIntervals(cameraID string, spans []interval, from, to int64) []*rondav1.Span {
	if to <= from {
		return nil
	}
	i := sort.Search(len(spans), func(k int) bool { return spans[k].end > from })
	var out []*rondav1.Span
	for _, s := range spans[i:] {
		if s.start >= to {
			break
		}
		out = append(out, &rondav1.Span{CameraId: cameraID, StartUnixNano: max(s.start, from), EndUnixNano: min(s.end, to)})
	}
	return out
}
