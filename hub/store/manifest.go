package store

// Segment manifests and gap reasons in the coverage index. The hub does not
// keep every segment (30,000 cameras x 288 segments a day x 90 days would
// be billions of rows); per camera and UTC day it keeps the merged spans,
// a hash chain over the segments the node reported closing that day, and
// the events that explain the day's gaps.

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"log/slog"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/ronda-jakarta/ronda/internal/manifest"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// MaxCoverageEvents bounds the gap events kept per camera and day (a camera
// flapping every few minutes); the oldest go first.
const MaxCoverageEvents = 288

// ChainSegment folds one reported segment into a day's manifest hash.
func ChainSegment(prev []byte, m *rondav1.SegmentManifest) []byte {
	return manifest.Chain(prev, m.GetSegmentId(), m.GetStartUnixNano(), m.GetEndUnixNano(), m.GetBytes(), m.GetSha256())
}

func addSegment(b *pebble.Batch, nodeID string, m *rondav1.SegmentManifest, seq uint64, log *slog.Logger) error {
	camID := m.GetCameraId()
	switch {
	case validID("camera", camID) != nil:
		log.Warn("skipping segment manifest with a bad camera id", "node", nodeID, "seq", seq)
		return nil
	case len(m.GetSha256()) != sha256.Size || m.GetEndUnixNano() < m.GetStartUnixNano():
		log.Warn("skipping malformed segment manifest", "node", nodeID, "seq", seq, "camera", camID, "segment", m.GetSegmentId())
		return nil
	}
	if owned, err := ownedBy(b, camID, nodeID, seq, "segment manifest", log); err != nil || !owned {
		return err
	}
	key := coverageDayKey(camID, dayOf(m.GetStartUnixNano()))
	var cov rondav1.StoredCoverage
	if _, err := getProto(b, key, &cov); err != nil {
		return err
	}
	if m.GetSegmentId() <= cov.GetLastSegmentId() {
		// Already folded (a node re-sending its history): once only.
		return nil
	}
	cov.ManifestSha256 = ChainSegment(cov.GetManifestSha256(), m)
	cov.Segments++
	cov.LastSegmentId = m.GetSegmentId()
	return putProto(b, key, &cov)
}

// addSegmentDay adopts a node's re-sent day manifest when the hub holds
// fewer of the day's segments (records lost with a restore from an older
// backup, or folded out of order while the node re-sent them). A summary
// with no more segments than the hub holds never replaces it: a node cannot
// shrink or rewrite a day after the fact.
func addSegmentDay(b *pebble.Batch, nodeID string, m *rondav1.SegmentDay, seq uint64, log *slog.Logger) error {
	camID := m.GetCameraId()
	if validID("camera", camID) != nil || len(m.GetManifestSha256()) != sha256.Size || m.GetSegments() == 0 {
		log.Warn("skipping malformed day manifest", "node", nodeID, "seq", seq)
		return nil
	}
	if owned, err := ownedBy(b, camID, nodeID, seq, "day manifest", log); err != nil || !owned {
		return err
	}
	key := coverageDayKey(camID, dayOf(m.GetDayUnixNano()))
	var cov rondav1.StoredCoverage
	if _, err := getProto(b, key, &cov); err != nil {
		return err
	}
	switch {
	case m.GetSegments() > cov.GetSegments():
		log.Info("day manifest taken from the node's history", "node", nodeID, "camera", camID, "segments_before", cov.GetSegments(), "segments", m.GetSegments())
		cov.ManifestSha256, cov.Segments = m.GetManifestSha256(), m.GetSegments()
		cov.LastSegmentId = max(cov.GetLastSegmentId(), m.GetLastSegmentId())
		return putProto(b, key, &cov)
	case m.GetSegments() < cov.GetSegments() || !bytes.Equal(m.GetManifestSha256(), cov.GetManifestSha256()):
		log.Warn("a node's day manifest differs from the hub's record; the hub's is kept", "node", nodeID, "camera", camID,
			"hub_segments", cov.GetSegments(), "node_segments", m.GetSegments())
	}
	return nil
}

func addGapEvent(b *pebble.Batch, nodeID string, e *rondav1.GapEvent, seq uint64, log *slog.Logger) error {
	camID := e.GetCameraId()
	if validID("camera", camID) != nil || e.GetReason() == "" {
		log.Warn("skipping malformed gap event", "node", nodeID, "seq", seq)
		return nil
	}
	if owned, err := ownedBy(b, camID, nodeID, seq, "gap event", log); err != nil || !owned {
		return err
	}
	key := coverageDayKey(camID, dayOf(e.GetAtUnixNano()))
	var cov rondav1.StoredCoverage
	if _, err := getProto(b, key, &cov); err != nil {
		return err
	}
	ev := &rondav1.GapEvent{AtUnixNano: e.GetAtUnixNano(), Reason: e.GetReason(), Detail: truncate(e.GetDetail(), 512)}
	if slices.ContainsFunc(cov.Events, func(x *rondav1.GapEvent) bool {
		return x.GetAtUnixNano() == ev.GetAtUnixNano() && x.GetReason() == ev.GetReason()
	}) {
		return nil // reported again: once only
	}
	i, _ := slices.BinarySearchFunc(cov.Events, ev.GetAtUnixNano(), func(x *rondav1.GapEvent, at int64) int {
		return cmp.Compare(x.GetAtUnixNano(), at)
	})
	cov.Events = slices.Insert(cov.Events, i, ev)
	if len(cov.Events) > MaxCoverageEvents {
		cov.Events = cov.Events[len(cov.Events)-MaxCoverageEvents:]
	}
	return putProto(b, key, &cov)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// DayManifest is one camera-day's segment manifest hash at the hub.
type DayManifest struct {
	Day      time.Time // UTC midnight
	Segments uint32
	SHA256   []byte
}

// CoverageDetail returns the camera's day manifests and gap events of the
// UTC days overlapping [from,to) (events only within it).
func (s *Store) CoverageDetail(cameraID string, from, to time.Time) ([]DayManifest, []*rondav1.GapEvent) {
	var days []DayManifest
	var events []*rondav1.GapEvent
	lo, hi := from.UnixNano(), to.UnixNano()
	_, err := s.fsm.read(func(r pebble.Reader) error {
		return scanPrefix(r, coveragePrefix(cameraID), func(k, v []byte) error {
			_, day, ok := parseCoverageDayKey(k)
			if !ok || int64(day+1)*nsPerDay <= lo || int64(day)*nsPerDay >= hi {
				return nil
			}
			var cov rondav1.StoredCoverage
			if err := proto.Unmarshal(v, &cov); err != nil {
				return err
			}
			if cov.GetSegments() > 0 {
				days = append(days, DayManifest{Day: time.Unix(0, int64(day)*nsPerDay).UTC(), Segments: cov.GetSegments(), SHA256: cov.GetManifestSha256()})
			}
			for _, e := range cov.GetEvents() {
				if e.GetAtUnixNano() >= lo && e.GetAtUnixNano() < hi {
					events = append(events, e)
				}
			}
			return nil
		})
	})
	if err != nil {
		s.log.Error("read coverage detail", "camera", cameraID, "error", err)
	}
	return days, events
}
