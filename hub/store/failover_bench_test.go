package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/hub/store"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// BenchmarkLeaderFailover measures, with hashicorp/raft's default timeouts
// (heartbeat 1 s, election 1 s, lease 500 ms), the time from the leader's
// process going away (raft shut down with no leadership hand-over, as in a
// crash) to the next write committed through a surviving member, and to a
// new leader being named there. A writer keeps pushing through the survivor
// the whole time (500 ms per attempt, retried at once). The killed member
// restarts and catches up before the next round. RONDA_FAILOVERS rounds
// (default 10); run with -benchtime 1x.
func BenchmarkLeaderFailover(b *testing.B) {
	defaults := func(cfg *store.Config) {
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 0, 0, 0
	}
	c := newCluster(b, 3, nil, defaults)
	c.leader(30 * time.Second)
	rounds := envSeconds("RONDA_FAILOVERS", 10)
	seq := uint64(1)
	ctx := context.Background()
	write := func(m *member, timeout time.Duration) error {
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		rec := spanAt(seq+1, int(seq))
		if seq == 1 {
			rec = registration(2)
		}
		_, err := m.st.ApplyNodeRecords(wctx, node, []*rondav1.Record{registration(1), rec})
		if err == nil {
			seq++
		}
		return err
	}
	var commit, elect []time.Duration
	for b.Loop() {
		for range rounds {
			lead := c.leader(30 * time.Second)
			survivor := c.followers(lead)[0]
			if err := write(survivor, 5*time.Second); err != nil {
				b.Fatal(err)
			}
			killed := time.Now()
			c.stop(lead)
			var named time.Duration
			done := make(chan struct{})
			go func() {
				defer close(done)
				for time.Since(killed) < 30*time.Second {
					if l := survivor.st.Cluster().Leader; l != "" && l != lead.id {
						named = time.Since(killed)
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
			for {
				if err := write(survivor, 500*time.Millisecond); err == nil {
					break
				}
				if time.Since(killed) > 30*time.Second {
					b.Fatal("no write committed within 30 s of the leader's death")
				}
			}
			commit = append(commit, time.Since(killed))
			<-done
			elect = append(elect, named)
			c.start(lead, c.peers)
			c.converged(30*time.Second, wantAcked(seq, int(seq)-2))
		}
	}
	slices.Sort(commit)
	slices.Sort(elect)
	p := func(d []time.Duration, q int) float64 { return d[(len(d)-1)*q/100].Seconds() }
	b.ReportMetric(p(commit, 50), "commit-p50-s")
	b.ReportMetric(p(commit, 100), "commit-max-s")
	b.ReportMetric(p(elect, 50), "leader-p50-s")
	b.ReportMetric(p(elect, 100), "leader-max-s")
	b.Logf("%d leader kills: next committed write after p50 %.2f s, max %.2f s (goal < 3 s); new leader named after p50 %.2f s, max %.2f s",
		len(commit), p(commit, 50), p(commit, 100), p(elect, 50), p(elect, 100))
}
