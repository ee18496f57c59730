package store_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// BenchmarkSpanIngest measures sustained coverage-span ingest into a real
// 3-member cluster on this machine (in one process, loopback Raft): 267
// simulated nodes, each pushing its 110 cameras' spans (one per camera, as
// a node does every 2 s) as fast as the hub acknowledges, spread over the
// three members (followers forward to the leader). Every acknowledged span
// is committed on a majority and applied. Reported: spans/s and pushes/s
// over RONDA_INGEST_SECONDS (default 20); run it with -benchtime 1x.
func BenchmarkSpanIngest(b *testing.B) {
	c := newCluster(b, 3, nil, nil)
	c.leader(converge)
	members := c.running()
	const nodes, cams = 267, 110
	var spans, pushes atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	epoch := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	b.ResetTimer()
	start := time.Now()
	for n := range nodes {
		wg.Go(func() {
			id := fmt.Sprintf("node-%03d", n)
			m := members[n%len(members)]
			seq := uint64(0)
			for round := 0; ctx.Err() == nil; round++ {
				recs := make([]*rondav1.Record, 0, cams)
				from := epoch.Add(time.Duration(round) * 2 * time.Second)
				for c := range cams {
					seq++
					recs = append(recs, &rondav1.Record{Seq: seq, Body: &rondav1.Record_Span{Span: &rondav1.Span{
						CameraId: fmt.Sprintf("%s-cam%03d", id, c), StartUnixNano: from.UnixNano(), EndUnixNano: from.Add(2 * time.Second).UnixNano()}}})
				}
				pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
				acked, err := m.st.ApplyNodeRecords(pctx, id, recs)
				pcancel()
				if ctx.Err() != nil {
					return
				}
				if err != nil || acked != seq {
					firstErr.CompareAndSwap(nil, fmt.Errorf("%s: acked %d of %d: %v", id, acked, seq, err))
					return
				}
				spans.Add(cams)
				pushes.Add(1)
			}
		})
	}
	time.Sleep(time.Duration(envSeconds("RONDA_INGEST_SECONDS", 20)) * time.Second)
	cancel()
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(spans.Load())/el.Seconds(), "spans/s")
	b.ReportMetric(float64(pushes.Load())/el.Seconds(), "pushes/s")
	b.ReportMetric(0, "ns/op")
	for _, m := range members {
		ci := m.st.Cluster()
		b.Logf("%s: %s, commit index %d, applied %d", m.id, ci.State, ci.CommitIndex, ci.AppliedIndex)
	}
	b.Logf("%d spans in %d pushes from %d nodes over %s", spans.Load(), pushes.Load(), nodes, el.Round(time.Millisecond))
}

func envSeconds(name string, def int) int {
	var v int
	if _, err := fmt.Sscan(os.Getenv(name), &v); err == nil && v > 0 {
		return v
	}
	return def
}
