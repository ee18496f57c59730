package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/hub/store"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// A write acknowledged by the leader is seen by a default or linearizable
// read on any follower right after it (the follower waits for the index the
// leader names); a leader cut off from the majority refuses linearizable
// reads instead of answering from state that may be old, while stale reads
// keep answering.
func TestReadConsistencyLevels(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	lead := c.leader(converge)
	f := c.followers(lead)
	ctx, cancel := context.WithTimeout(t.Context(), converge)
	defer cancel()
	if _, err := lead.st.ApplyNodeRecords(ctx, node, []*rondav1.Record{registration(1)}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		seq := uint64(i + 2)
		if _, err := lead.st.ApplyNodeRecords(ctx, node, []*rondav1.Record{spanAt(seq, i)}); err != nil {
			t.Fatal(err)
		}
		level := []store.Consistency{store.Default, store.Linearizable}[i%2]
		follower := f[i%len(f)]
		info, err := follower.st.ReadBarrier(ctx, level)
		if err != nil {
			t.Fatalf("%s read on %s: %v", level, follower.id, err)
		}
		if got := follower.st.AckedSeq(node); got != seq || info.Consistency != level {
			t.Fatalf("%s read on %s right after the leader acknowledged seq %d sees %d (info %+v)", level, follower.id, seq, got, info)
		}
	}
	if _, err := store.ParseConsistency("eventual"); !errors.Is(err, store.ErrBadQuery) {
		t.Fatalf("bad level: %v", err)
	}

	// Cut the leader off: both followers stop.
	for _, m := range f {
		c.stop(m)
	}
	rctx, rcancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer rcancel()
	if info, err := lead.st.ReadBarrier(rctx, store.Linearizable); err == nil {
		t.Fatalf("a leader without a majority served a linearizable read (%+v)", info)
	} else if !errors.Is(err, store.ErrNoLeader) {
		t.Fatalf("linearizable read without a majority: %v, want ErrNoLeader", err)
	}
	if info, err := lead.st.ReadBarrier(t.Context(), store.Stale); err != nil || info.Consistency != store.Stale || lead.st.AckedSeq(node) != 21 {
		t.Fatalf("stale read without a majority: %+v %v (acked %d)", info, err, lead.st.AckedSeq(node))
	}
}
