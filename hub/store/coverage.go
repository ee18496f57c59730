package store

import (
	"sort"
	"time"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// SpanMergeGap is the largest gap between two spans that still counts as
// "touching": segment boundaries on a node leave small holes that are not
// real outages, so spans closer than this are merged into one.
const SpanMergeGap = 3 * time.Second

// MaxCoverageSpans bounds the number of disjoint spans kept per camera. When a
// merge would exceed it, the oldest spans are dropped (deterministically, on
// every member alike). Retention proper is not implemented yet.
const MaxCoverageSpans = 4096

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

// clipCoverage returns the spans of c intersecting [from,to), clipped to it,
// labelled with cameraID.
func clipCoverage(cameraID string, c *rondav1.StoredCoverage, from, to int64) []*rondav1.Span {
	if to <= from {
		return nil
	}
	spans := c.GetSpans()
	// Spans are sorted and disjoint, so ends are sorted too.
	i := sort.Search(len(spans), func(k int) bool { return spans[k].GetEndUnixNano() > from })
	var out []*rondav1.Span
	for _, s := range spans[i:] {
		if s.GetStartUnixNano() >= to {
			break
		}
		out = append(out, &rondav1.Span{
			CameraId:      cameraID,
			StartUnixNano: max(s.GetStartUnixNano(), from),
			EndUnixNano:   min(s.GetEndUnixNano(), to),
		})
	}
	return out
}
