package store

import (
	"bytes"
	"crypto/sha256"
	"testing"
	"time"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

func segRec(seq uint64, cam string, id uint64, startSec, endSec int64, content string) *rondav1.Record {
	sum := sha256.Sum256([]byte(content))
	return &rondav1.Record{Seq: seq, Body: &rondav1.Record_Segment{Segment: &rondav1.SegmentManifest{CameraId: cam, SegmentId: id,
		StartUnixNano: startSec * sec, EndUnixNano: endSec * sec, Bytes: int64(len(content)), Sha256: sum[:]}}}
}

func gapRec(seq uint64, cam string, atSec int64, reason string) *rondav1.Record {
	return &rondav1.Record{Seq: seq, Body: &rondav1.Record_Gap{Gap: &rondav1.GapEvent{CameraId: cam, AtUnixNano: atSec * sec, Reason: reason, Detail: reason + " detail"}}}
}

// Segment manifests fold into the camera-day's hash chain once each (by
// seq), in the order reported; gap events are kept in time order; records
// about another node's camera or malformed ones are skipped; spans merged
// later keep both.
func TestCoverageKeepsManifestChainAndGapEvents(t *testing.T) {
	f := newTestFSM(t, t.TempDir())
	s := &Store{fsm: f, log: testLogger()}
	const day = 20000 * 86400 // a UTC midnight, in seconds
	applyAt(t, f, 1, nodeCmd(t, "n2", 1, regRec(1, "n2", "31.71.01.1002"), camsRec(2, "c2")))
	cmd := nodeCmd(t, "n1", 2,
		regRec(1, "n1", "31.71.01.1001"), camsRec(2, "c1"),
		spanRec(3, "c1", day+100, day+200),
		segRec(4, "c1", 7, day+100, day+160, "segment seven"),
		gapRec(5, "c1", day+200, "camera_offline"),
		segRec(6, "c1", 8, day+160, day+200, "segment eight"),
		gapRec(7, "c1", day+150, "clock_step"),
		segRec(8, "c2", 9, day+100, day+160, "not n1's camera"),
		&rondav1.Record{Seq: 9, Body: &rondav1.Record_Segment{Segment: &rondav1.SegmentManifest{CameraId: "c1", SegmentId: 10, Sha256: []byte("short")}}},
	)
	if r := applyAt(t, f, 2, cmd); r.err != nil || r.result != 9 {
		t.Fatalf("apply: %+v", r)
	}
	applyAt(t, f, 3, cmd) // the same push again: nothing is folded twice
	applyAt(t, f, 4, nodeCmd(t, "n1", 3, spanRec(10, "c1", day+300, day+400)))
	// The node re-sends its history under new sequence numbers (the hub was
	// restored from an older backup): segments and events already folded are
	// not folded again.
	applyAt(t, f, 5, nodeCmd(t, "n1", 4,
		spanRec(11, "c1", day+100, day+200),
		segRec(12, "c1", 7, day+100, day+160, "segment seven"),
		segRec(13, "c1", 8, day+160, day+200, "segment eight"),
		gapRec(14, "c1", day+150, "clock_step"),
		gapRec(15, "c1", day+200, "camera_offline")))

	from, to := timeAt(day), timeAt(day+86400)
	days, events := s.CoverageDetail("c1", from, to)
	m7 := segRec(0, "c1", 7, day+100, day+160, "segment seven").GetSegment()
	m8 := segRec(0, "c1", 8, day+160, day+200, "segment eight").GetSegment()
	want := ChainSegment(ChainSegment(nil, m7), m8)
	if len(days) != 1 || days[0].Segments != 2 || !bytes.Equal(days[0].SHA256, want) || !days[0].Day.Equal(from) {
		t.Fatalf("day manifests %+v, want one day with 2 segments and %x", days, want)
	}
	if len(events) != 2 || events[0].GetReason() != "clock_step" || events[1].GetReason() != "camera_offline" || events[1].GetDetail() == "" {
		t.Fatalf("events %v, want clock_step then camera_offline", events)
	}
	if spans := s.Coverage("c1", from, to); len(spans) != 2 {
		t.Fatalf("spans %v", spans)
	}
	if days, _ := s.CoverageDetail("c2", from, to); len(days) != 0 {
		t.Fatalf("n1 folded a segment into n2's camera: %+v", days)
	}
	// Another order gives another hash: the chain is what was reported.
	if bytes.Equal(want, ChainSegment(ChainSegment(nil, m8), m7)) {
		t.Fatal("the chain ignores order")
	}
}

func timeAt(s int64) time.Time { return time.Unix(s, 0).UTC() }

// A node re-sending its history sends each day's manifest whole: the hub
// adopts it when it holds fewer of the day's segments (here it got segment
// 8 before 7), and never lets a node shrink or rewrite a day it holds.
func TestDayManifestFromANodesHistory(t *testing.T) {
	f := newTestFSM(t, t.TempDir())
	s := &Store{fsm: f, log: testLogger()}
	const day = 20000 * 86400
	applyAt(t, f, 1, nodeCmd(t, "n1", 1, regRec(1, "n1", "31.71.01.1001"), camsRec(2, "c1"),
		segRec(3, "c1", 8, day+160, day+200, "segment eight"))) // 7 was lost with the old cluster
	m7 := segRec(0, "c1", 7, day+100, day+160, "segment seven").GetSegment()
	m8 := segRec(0, "c1", 8, day+160, day+200, "segment eight").GetSegment()
	full := ChainSegment(ChainSegment(nil, m7), m8)
	dayRec := func(seq uint64, n uint32, sum []byte) *rondav1.Record {
		return &rondav1.Record{Seq: seq, Body: &rondav1.Record_SegmentDay{SegmentDay: &rondav1.SegmentDay{CameraId: "c1",
			DayUnixNano: day * sec, Segments: n, ManifestSha256: sum, LastSegmentId: 8}}}
	}
	applyAt(t, f, 2, nodeCmd(t, "n1", 2, dayRec(4, 2, full)))
	from, to := timeAt(day), timeAt(day+86400)
	if days, _ := s.CoverageDetail("c1", from, to); len(days) != 1 || days[0].Segments != 2 || !bytes.Equal(days[0].SHA256, full) {
		t.Fatalf("after the node's day manifest: %+v, want 2 segments and %x", days, full)
	}
	// Segment 8 reported again afterwards is not folded twice.
	applyAt(t, f, 3, nodeCmd(t, "n1", 3, segRec(5, "c1", 8, day+160, day+200, "segment eight")))
	// A smaller or different day (a node rewriting history) is refused.
	applyAt(t, f, 4, nodeCmd(t, "n1", 4, dayRec(6, 1, ChainSegment(nil, m8)), dayRec(7, 2, ChainSegment(ChainSegment(nil, m8), m7))))
	if days, _ := s.CoverageDetail("c1", from, to); len(days) != 1 || days[0].Segments != 2 || !bytes.Equal(days[0].SHA256, full) {
		t.Fatalf("after a shrinking and a rewritten day: %+v, want it unchanged", days)
	}
}
