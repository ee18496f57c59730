package replication

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/internal/auditchain"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

func spanR(cam string, fromS, toS int64) *rondav1.Record {
	return &rondav1.Record{Body: &rondav1.Record_Span{Span: &rondav1.Span{CameraId: cam, StartUnixNano: fromS * int64(time.Second), EndUnixNano: toS * int64(time.Second)}}}
}

func pendingSpans(t *testing.T, o *PebbleOutbox) map[uint64][2]int64 {
	t.Helper()
	recs, err := o.Pending(100)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64][2]int64{}
	for _, r := range recs {
		if sp := r.GetSpan(); sp != nil {
			out[r.Seq] = [2]int64{sp.StartUnixNano / int64(time.Second), sp.EndUnixNano / int64(time.Second)}
		}
	}
	return out
}

// While records wait for the hub, a camera's contiguous spans coalesce into
// its newest unsent span record; a record handed to a push (or left by an
// earlier process, which may have sent it) is never rewritten.
func TestOutboxCoalescesUnsentSpans(t *testing.T) {
	dir := t.TempDir()
	o, err := OpenOutbox(dir, slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(o.AppendCoalescing(spanR("c1", 0, 2), spanR("c2", 0, 2)))
	must(o.AppendCoalescing(spanR("c1", 2, 4), spanR("c2", 3, 4)))
	must(o.Append(&rondav1.Record{Body: &rondav1.Record_Gap{Gap: &rondav1.GapEvent{CameraId: "c1", AtUnixNano: 4e9, Reason: "network"}}}))
	must(o.AppendCoalescing(spanR("c1", 10, 12))) // 6 s later: a new span
	must(o.AppendCoalescing(spanR("c1", 12, 14))) // extends the new one
	if last, _ := o.Stats(); last != 4 {
		t.Fatalf("last seq %d, want 4 records (c1, c2, gap, c1 again)", last)
	}
	got := pendingSpans(t, o)
	if got[1] != [2]int64{0, 4} || got[2] != [2]int64{0, 4} || got[4] != [2]int64{10, 14} {
		t.Fatalf("pending spans %v", got)
	}

	// Handed to a push: no longer rewritten.
	recs, err := o.PendingToSend(100)
	if err != nil || len(recs) != 4 {
		t.Fatalf("to send: %d %v", len(recs), err)
	}
	must(o.AppendCoalescing(spanR("c1", 14, 16)))
	got = pendingSpans(t, o)
	if got[4] != [2]int64{10, 14} || got[5] != [2]int64{14, 16} {
		t.Fatalf("after a push took records 1-4: %v", got)
	}

	// A new process never rewrites what an earlier one may have sent.
	must(o.Close())
	o, err = OpenOutbox(dir, slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	must(o.AppendCoalescing(spanR("c1", 16, 18)))
	got = pendingSpans(t, o)
	if got[5] != [2]int64{14, 16} || got[6] != [2]int64{16, 18} {
		t.Fatalf("after reopening: %v", got)
	}
	must(o.Ack(6))
	if got := pendingSpans(t, o); len(got) != 0 {
		t.Fatalf("after ack: %v", got)
	}
}

// The node's audit log: each event is numbered, chained to the one before,
// queued for the hub in the same write, kept after the hub acknowledges it,
// and the chain continues across a restart.
func TestOutboxAuditLogChainsQueuesAndKeepsEvents(t *testing.T) {
	dir := t.TempDir()
	o, err := OpenOutbox(dir, slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"login", "live", "playback"} {
		if err := o.AppendAudit(&rondav1.AuditEvent{AtUnixNano: time.Now().UnixNano(), User: "siti", Action: a, Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := o.Pending(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[2].GetAudit().GetAction() != "playback" || recs[2].GetAudit().GetAuditSeq() != 3 {
		t.Fatalf("queued for the hub: %v", recs)
	}
	if err := o.Ack(3); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o, err = OpenOutbox(dir, slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := o.AppendAudit(&rondav1.AuditEvent{AtUnixNano: time.Now().UnixNano(), User: "budi", Action: "login", Outcome: "denied: wrong password"}); err != nil {
		t.Fatal(err)
	}
	evs, err := o.AuditEvents(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 4 {
		t.Fatalf("audit log has %d events after the ack and a restart, want 4", len(evs))
	}
	var seq uint64
	var head []byte
	for _, e := range evs {
		if why := auditchain.Check(seq, head, e); why != "" {
			t.Fatalf("the node's own chain is broken: %s", why)
		}
		seq, head = e.AuditSeq, auditchain.Hash(e)
	}
	if later, _ := o.AuditEvents(2, 100); len(later) != 2 || later[0].AuditSeq != 3 {
		t.Fatalf("events after 2: %v", later)
	}
	if recs, _ := o.Pending(10); len(recs) != 1 || recs[0].Seq != 4 || recs[0].GetAudit().GetUser() != "budi" {
		t.Fatalf("pending after restart: %v", recs)
	}
}

// A re-sent history goes in ahead of every record not yet handed to a push;
// those keep their order after it, and coalescing still extends the right
// record.
func TestOutboxInsertsHistoryBeforeUnsentRecords(t *testing.T) {
	o, err := OpenOutbox(t.TempDir(), slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(o.Append(spanR("a", 0, 2), spanR("b", 0, 2)))
	if recs, err := o.PendingToSend(10); err != nil || len(recs) != 2 {
		t.Fatalf("sent %v %v", recs, err) // 1 and 2 may have left the node
	}
	must(o.AppendCoalescing(spanR("a", 10, 12)))                                                                                   // 3
	must(o.Append(&rondav1.Record{Body: &rondav1.Record_Segment{Segment: &rondav1.SegmentManifest{CameraId: "a", SegmentId: 9}}})) // 4
	must(o.InsertBeforeUnsent(
		&rondav1.Record{Body: &rondav1.Record_Segment{Segment: &rondav1.SegmentManifest{CameraId: "a", SegmentId: 7}}},
		&rondav1.Record{Body: &rondav1.Record_Segment{Segment: &rondav1.SegmentManifest{CameraId: "a", SegmentId: 8}}}))
	must(o.AppendCoalescing(spanR("a", 12, 14))) // extends the unsent span, now record 5
	recs, err := o.Pending(10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		switch {
		case r.GetSegment() != nil:
			got = append(got, fmt.Sprintf("%d:seg%d", r.Seq, r.GetSegment().GetSegmentId()))
		case r.GetSpan() != nil:
			sp := r.GetSpan()
			got = append(got, fmt.Sprintf("%d:%s[%d,%d)", r.Seq, sp.CameraId, sp.StartUnixNano/int64(time.Second), sp.EndUnixNano/int64(time.Second)))
		}
	}
	want := []string{"1:a[0,2)", "2:b[0,2)", "3:seg7", "4:seg8", "5:a[10,14)", "6:seg9"}
	if !slices.Equal(got, want) {
		t.Fatalf("outbox %v, want %v", got, want)
	}
	if last, _ := o.Stats(); last != 6 {
		t.Fatalf("last seq %d, want 6", last)
	}
}
