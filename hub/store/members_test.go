package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/hub/store"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

func suffrageOf(t *testing.T, st *store.Store, id string) string {
	t.Helper()
	for _, m := range st.Cluster().Members {
		if m.ID == id {
			return m.Suffrage
		}
	}
	return ""
}

func memberIDs(st *store.Store) []string {
	var out []string
	for _, m := range st.Cluster().Members {
		out = append(out, m.ID+":"+m.Suffrage)
	}
	return out
}

// An operator grows, reshapes and shrinks the cluster while it takes
// writes: a new member joins through a follower as a non-voter and is
// promoted once caught up; leadership is handed to it; an old member is
// removed; a member that stays dead is cleaned up by autopilot — but never
// below the minimum quorum of 3 voters.
func TestClusterMembership(t *testing.T) {
	tune := func(cfg *store.Config) {
		// Long enough that a loaded machine still sees the new member as a
		// non-voter right after Join returns (1 s was not, on CI).
		cfg.StabilizationTime = 4 * time.Second
		cfg.DeadMemberAfter = 2 * time.Second
	}
	c := newCluster(t, 3, nil, tune)
	lead := c.leader(converge)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	seq := uint64(0)
	write := func(via *member) {
		t.Helper()
		seq++
		rec := spanAt(seq, int(seq))
		if seq == 1 {
			rec = registration(1)
		}
		if _, err := via.st.ApplyNodeRecords(ctx, node, []*rondav1.Record{rec}); err != nil {
			t.Fatalf("write %d via %s: %v", seq, via.id, err)
		}
	}
	for range 30 {
		write(lead)
	}

	// Join h4 through a follower.
	h4 := c.addMember("hub-4")
	c.start(h4, nil)
	f := c.followers(lead)
	if err := f[0].st.Join(ctx, store.MemberInfo{ID: h4.id, RaftAddr: h4.raftAddr, GRPCAddr: h4.grpcAddr}, "admin"); err != nil {
		t.Fatalf("join %s via %s: %v", h4.id, f[0].id, err)
	}
	if got := suffrageOf(t, f[0].st, h4.id); got != "nonvoter" {
		t.Fatalf("%s right after joining is %q, want a non-voter until it has caught up (members %v)", h4.id, got, memberIDs(f[0].st))
	}
	eventually(t, 20*time.Second, h4.id+" promoted to voter", func() error {
		for _, m := range c.running() {
			if got := suffrageOf(t, m.st, h4.id); got != "voter" {
				return fmt.Errorf("%s sees %s as %q", m.id, h4.id, got)
			}
		}
		return nil
	})
	write(f[1])
	c.converged(converge, wantAcked(seq, int(seq)-1))
	if rec, ok := lead.st.HubMember(h4.id); !ok || rec.GetChangedBy() != "admin" || rec.GetGrpcAddr() != h4.grpcAddr {
		t.Fatalf("member record of %s: %v %v", h4.id, ok, rec)
	}
	ms, err := h4.st.Members(ctx)
	if err != nil || len(ms) != 4 {
		t.Fatalf("members seen from %s: %+v %v", h4.id, ms, err)
	}
	for _, m := range ms {
		if !m.Reachable || m.Suffrage != "voter" || m.Applied == 0 {
			t.Fatalf("member %+v, want every member reachable, a voter, with an applied index", m)
		}
	}

	// Clear refusals.
	if err := f[0].st.Join(ctx, store.MemberInfo{ID: h4.id, RaftAddr: "127.0.0.1:1", GRPCAddr: h4.grpcAddr}, "admin"); !errors.Is(err, store.ErrMembership) {
		t.Fatalf("joining an existing member at another address: %v", err)
	}
	if err := f[0].st.Join(ctx, store.MemberInfo{ID: "hub-9", RaftAddr: h4.raftAddr, GRPCAddr: "127.0.0.1:1"}, "admin"); !errors.Is(err, store.ErrMembership) {
		t.Fatalf("joining with another member's raft address: %v", err)
	}
	if err := f[0].st.Remove(ctx, "hub-9", "admin"); !errors.Is(err, store.ErrMembership) {
		t.Fatalf("removing a stranger: %v", err)
	}
	if _, err := f[0].st.TransferLeadership(ctx, "hub-9"); !errors.Is(err, store.ErrMembership) {
		t.Fatalf("leadership to a stranger: %v", err)
	}

	// Hand leadership to h4 from a follower.
	to, err := f[1].st.TransferLeadership(ctx, h4.id)
	if err != nil || to != h4.id {
		t.Fatalf("transfer leadership to %s via %s: %q %v", h4.id, f[1].id, to, err)
	}
	if got := c.leader(converge); got != h4 {
		t.Fatalf("leader after the transfer: %s", got.id)
	}
	write(f[0])

	// Remove the first leader (through another member), then stop it.
	if err := f[1].st.Remove(ctx, lead.id, "admin"); err != nil {
		t.Fatalf("remove %s: %v", lead.id, err)
	}
	c.stop(lead)
	if ids := memberIDs(h4.st); len(ids) != 3 {
		t.Fatalf("members after removing %s: %v", lead.id, ids)
	}
	write(f[1])
	c.converged(converge, wantAcked(seq, int(seq)-1))

	// A fourth voter again, which then dies: autopilot removes it after
	// DeadMemberAfter, leaving 3 voters.
	h5 := c.addMember("hub-5")
	c.start(h5, nil)
	if err := h4.st.Join(ctx, store.MemberInfo{ID: h5.id, RaftAddr: h5.raftAddr, GRPCAddr: h5.grpcAddr}, "admin"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, h5.id+" promoted", func() error {
		if got := suffrageOf(t, h4.st, h5.id); got != "voter" {
			return fmt.Errorf("%s is %q", h5.id, got)
		}
		return nil
	})
	c.stop(h5)
	died := time.Now()
	eventually(t, 20*time.Second, "dead "+h5.id+" cleaned up", func() error {
		if got := suffrageOf(t, h4.st, h5.id); got != "" {
			return fmt.Errorf("%s still a %s", h5.id, got)
		}
		return nil
	})
	if took := time.Since(died); took < 2*time.Second {
		t.Fatalf("%s removed %v after it died, before DeadMemberAfter", h5.id, took)
	}
	if rec, _ := h4.st.HubMember(h5.id); !rec.GetRemoved() || rec.GetChangedBy() != "autopilot" {
		t.Fatalf("record of the cleaned-up member: %v", rec)
	}

	// Now 3 voters: one more dead member is kept (MinQuorum 3) and rejoins
	// when it comes back.
	victim := f[0]
	c.stop(victim)
	time.Sleep(4 * time.Second)
	if got := suffrageOf(t, h4.st, victim.id); got != "voter" {
		t.Fatalf("with 3 voters a dead member must stay (min quorum 3); %s is %q, members %v", victim.id, got, memberIDs(h4.st))
	}
	write(f[1])
	c.start(victim, nil)
	c.converged(converge, wantAcked(seq, int(seq)-1))
}
