package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/hub/store"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// Many writers at once, through the leader and through followers: each
// write is acknowledged with its own result, every record applies exactly
// once, the members converge, and the leader packs the writes into far
// fewer raft entries than there were writes.
func TestConcurrentWritesAreBatchedAndEachAnswered(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	lead := c.leader(converge)
	members := c.running()
	ctx, cancel := context.WithTimeout(t.Context(), 2*converge)
	defer cancel()

	const nodes, pushes = 40, 5
	before := lead.st.Cluster().CommitIndex
	var wg sync.WaitGroup
	errs := make(chan error, nodes*pushes)
	for n := range nodes {
		wg.Go(func() {
			id := fmt.Sprintf("node-%02d", n)
			cam := fmt.Sprintf("cam-%02d", n)
			for p := range pushes {
				seq := uint64(p + 1)
				start := epoch.Add(time.Duration(p) * 10 * time.Second)
				rec := &rondav1.Record{Seq: seq, Body: &rondav1.Record_Span{Span: &rondav1.Span{
					CameraId: cam, StartUnixNano: start.UnixNano(), EndUnixNano: start.Add(time.Second).UnixNano()}}}
				m := members[(n+p)%len(members)]
				acked, err := m.st.ApplyNodeRecords(ctx, id, []*rondav1.Record{rec})
				if err != nil {
					errs <- fmt.Errorf("%s push %d via %s: %w", id, p, m.id, err)
					return
				}
				if acked != seq {
					errs <- fmt.Errorf("%s push %d via %s: acked %d, want %d (another writer's result?)", id, p, m.id, acked, seq)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.converged(converge, func(st *store.Store) error {
		for n := range nodes {
			id, cam := fmt.Sprintf("node-%02d", n), fmt.Sprintf("cam-%02d", n)
			if got := st.AckedSeq(id); got != pushes {
				return fmt.Errorf("%s acked %d, want %d", id, got, pushes)
			}
			if got := len(st.Coverage(cam, epoch.Add(-time.Hour), epoch.Add(time.Hour))); got != pushes {
				return fmt.Errorf("%s has %d spans, want %d", cam, got, pushes)
			}
		}
		return nil
	})
	entries := lead.st.Cluster().CommitIndex - before
	t.Logf("%d writes in %d raft entries", nodes*pushes, entries)
	if entries*3 > nodes*pushes {
		t.Fatalf("%d writes took %d raft entries: the leader did not batch them", nodes*pushes, entries)
	}
}
