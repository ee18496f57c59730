package store_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/hashicorp/raft"

	"github.com/ronda-jakarta/ronda/hub/store"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// netFaults partitions in-process members: raft dials across a cut fail,
// and every connection open when a partition starts is closed (so none
// survives it), and the test cluster's gRPC forwarding is cut the same way.
type netFaults struct {
	mu     sync.Mutex
	cut    map[[2]string]bool
	conns  []net.Conn
	idOf   func(addr string) string
	events int
}

func (nf *netFaults) isCut(a, b string) bool {
	nf.mu.Lock()
	defer nf.mu.Unlock()
	return nf.cut[[2]string{a, b}]
}

// isolate cuts the members in group off from everyone else.
func (nf *netFaults) isolate(group []string, all []string) {
	nf.mu.Lock()
	in := map[string]bool{}
	for _, id := range group {
		in[id] = true
	}
	nf.cut = map[[2]string]bool{}
	for _, a := range all {
		for _, b := range all {
			if in[a] != in[b] {
				nf.cut[[2]string{a, b}] = true
			}
		}
	}
	conns := nf.conns
	nf.conns = nil
	nf.events++
	nf.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (nf *netFaults) heal() {
	nf.mu.Lock()
	nf.cut = nil
	nf.mu.Unlock()
}

func (nf *netFaults) wrap(self string) func(raft.StreamLayer) raft.StreamLayer {
	return func(inner raft.StreamLayer) raft.StreamLayer {
		return &faultStream{StreamLayer: inner, self: self, nf: nf}
	}
}

type faultStream struct {
	raft.StreamLayer
	self string
	nf   *netFaults
}

func (f *faultStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if f.nf.isCut(f.self, f.nf.idOf(string(addr))) {
		return nil, fmt.Errorf("dial %s: partitioned", addr)
	}
	conn, err := f.StreamLayer.Dial(addr, timeout)
	if err == nil {
		f.nf.track(conn)
	}
	return conn, err
}

func (f *faultStream) Accept() (net.Conn, error) {
	conn, err := f.StreamLayer.Accept()
	if err == nil {
		f.nf.track(conn)
	}
	return conn, err
}

func (nf *netFaults) track(c net.Conn) {
	nf.mu.Lock()
	nf.conns = append(nf.conns, c)
	nf.mu.Unlock()
}

// The register model: a node's acknowledged outbox sequence. A write of seq
// s makes it max(state, s) and answers the new value; a linearizable read
// answers it.
type linInput struct {
	key   int
	write bool
	seq   uint64
}

type linOutput struct {
	value   uint64
	unknown bool // the write failed or timed out: it may or may not have happened
}

var ackedSeqModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[int][]porcupine.Operation{}
		for _, op := range h {
			k := op.Input.(linInput).key
			by[k] = append(by[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range by {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return uint64(0) },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(uint64), input.(linInput), output.(linOutput)
		if in.write {
			next := max(st, in.seq)
			return out.unknown || out.value == next, next
		}
		return out.value == st, st
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		if in.write {
			return fmt.Sprintf("write(n%d, %d) -> %d unknown=%v", in.key, in.seq, out.value, out.unknown)
		}
		return fmt.Sprintf("read(n%d) -> %d", in.key, out.value)
	},
}

type linOp struct {
	porcupine.Operation
	member string
	ok     bool
}

// Concurrent writes and linearizable reads through every member while the
// leader is cut off (minority partition), the next leader crashes and
// restarts, and a follower is cut off. The history must be linearizable
// (porcupine): no acknowledged write lost, no linearizable read stale. No
// member acknowledges anything while it is cut off from the majority, and
// the majority side keeps acknowledging.
func TestClusterLinearizableUnderPartitionsAndCrashes(t *testing.T) {
	nf := &netFaults{}
	var c *cluster
	tune := func(cfg *store.Config) { cfg.WrapStream = nf.wrap(cfg.ID) }
	c = newCluster(t, 3, nil, tune)
	var ids []string
	byAddr := map[string]string{}
	for _, m := range c.members {
		ids = append(ids, m.id)
		byAddr[m.raftAddr] = m.id
	}
	nf.idOf = func(addr string) string { return byAddr[addr] }
	c.blocked = nf.isCut
	c.leader(converge)

	var memMu sync.RWMutex // guards members' st against the nemesis
	pick := func() (*store.Store, string) {
		memMu.RLock()
		defer memMu.RUnlock()
		run := c.running()
		m := run[rand.IntN(len(run))]
		return m.st, m.id
	}

	const keys = 2
	nodeID := func(k int) string { return fmt.Sprintf("lin-%d", k) }
	var seqs [keys]atomic.Uint64
	start := time.Now()
	now := func() int64 { return time.Since(start).Nanoseconds() }
	var (
		histMu sync.Mutex
		hist   []linOp
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for client := range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				st, mid := pick()
				k := rand.IntN(keys)
				in := linInput{key: k, write: rand.IntN(3) != 0}
				op := linOp{member: mid}
				op.ClientId = client
				ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
				op.Call = now()
				if in.write {
					in.seq = seqs[k].Add(1)
					acked, err := st.ApplyNodeRecords(ctx, nodeID(k), []*rondav1.Record{{Seq: in.seq, Body: &rondav1.Record_Registration{
						Registration: &rondav1.NodeInfo{NodeId: nodeID(k), KelurahanCode: "31.71.01.1001"}}}})
					op.Return = now()
					if err != nil {
						op.Output, op.Return = linOutput{unknown: true}, math.MaxInt64
					} else {
						op.Output, op.ok = linOutput{value: acked}, true
					}
				} else {
					_, err := st.ReadBarrier(ctx, store.Linearizable)
					var v uint64
					if err == nil {
						v = st.AckedSeq(nodeID(k))
					}
					op.Return = now()
					if err != nil {
						cancel()
						continue // a failed read observed nothing
					}
					op.Output, op.ok = linOutput{value: v}, true
				}
				cancel()
				op.Input = in
				histMu.Lock()
				hist = append(hist, op)
				histMu.Unlock()
			}
		})
	}

	type window struct {
		member   string
		from, to int64
	}
	var cutOff []window
	sleep := func(d time.Duration) { time.Sleep(d) }
	sleep(2 * time.Second)

	// 1. The leader is cut off from the other two.
	lead := c.leader(converge)
	nf.isolate([]string{lead.id}, ids)
	w1 := window{member: lead.id, from: now()}
	t.Logf("isolated leader %s", lead.id)
	sleep(4 * time.Second)
	w1.to = now()
	nf.heal()
	cutOff = append(cutOff, w1)
	c.leader(converge)
	sleep(2 * time.Second)

	// 2. The leader crashes and comes back 3 s later.
	victim := c.leader(converge)
	memMu.Lock()
	c.stop(victim)
	memMu.Unlock()
	t.Logf("stopped leader %s", victim.id)
	sleep(3 * time.Second)
	memMu.Lock()
	c.start(victim, c.peers)
	memMu.Unlock()
	sleep(2 * time.Second)

	// 3. A follower is cut off.
	l := c.leader(converge)
	f := c.followers(l)[0]
	nf.isolate([]string{f.id}, ids)
	w3 := window{member: f.id, from: now()}
	t.Logf("isolated follower %s", f.id)
	sleep(3 * time.Second)
	w3.to = now()
	nf.heal()
	cutOff = append(cutOff, w3)
	sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	histMu.Lock()
	defer histMu.Unlock()
	var ops []porcupine.Operation
	var writes, reads, failed, majorityAcks int
	for _, op := range hist {
		ops = append(ops, op.Operation)
		in := op.Input.(linInput)
		switch {
		case !op.ok:
			failed++
		case in.write:
			writes++
		default:
			reads++
		}
		for _, w := range cutOff {
			inside := op.Call >= w.from && op.Return <= w.to
			if inside && op.ok && op.member == w.member {
				t.Errorf("%s answered %+v -> %+v while cut off from the majority", op.member, in, op.Output)
			}
			if inside && op.ok && in.write && op.member != w.member {
				majorityAcks++
			}
		}
	}
	t.Logf("history: %d acknowledged writes, %d linearizable reads, %d writes with unknown outcome; %d writes acknowledged by the majority side during partitions",
		writes, reads, failed, majorityAcks)
	if writes < 50 || reads < 20 {
		t.Fatalf("too few operations to mean anything: %d writes, %d reads", writes, reads)
	}
	if majorityAcks == 0 {
		t.Fatal("the majority side acknowledged no write while a member was cut off")
	}
	if path := os.Getenv("RONDA_LIN_DUMP"); path != "" {
		f, _ := os.Create(path)
		for _, op := range hist {
			in, out := op.Input.(linInput), op.Output.(linOutput)
			fmt.Fprintf(f, "%d %d %v %d %d %v %d %s %v\n", op.ClientId, in.key, in.write, in.seq, op.Call, out.unknown, out.value, op.member, op.Return)
		}
		f.Close()
	}
	res, info := porcupine.CheckOperationsVerbose(ackedSeqModel, ops, time.Minute)
	if res != porcupine.Ok {
		path := t.TempDir() + "/linearizability.html"
		if err := porcupine.VisualizePath(ackedSeqModel, info, path); err == nil {
			t.Logf("visualization: %s", path)
		}
		t.Fatalf("history of %d operations is %s", len(ops), res)
	}

	// Every acknowledged write is in every member's final state.
	c.converged(converge, func(st *store.Store) error {
		for k := range keys {
			var top uint64
			for _, op := range hist {
				if in := op.Input.(linInput); in.key == k && in.write && op.ok {
					top = max(top, in.seq)
				}
			}
			if got := st.AckedSeq(nodeID(k)); got < top {
				return fmt.Errorf("%s: acked %d, but write %d was acknowledged", nodeID(k), got, top)
			}
		}
		return nil
	})
}
