package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Consistency is how fresh a read must be.
type Consistency string

const (
	// Stale reads this member's applied state as it stands: any member,
	// no network round trip; it may trail the leader by the replication
	// delay (more during a partition).
	Stale Consistency = "stale"
	// Default reads at least the leader's committed state as of the
	// request: the leader is asked for its commit index (no quorum check)
	// and this member waits until it has applied that far.
	Default Consistency = "default"
	// Linearizable reads reflect every write acknowledged before the read
	// started (ReadIndex): the leader confirms with a quorum that it still
	// leads, and this member waits until it has applied the leader's commit
	// index. A member cut off from the majority fails rather than answer
	// from old state.
	Linearizable Consistency = "linearizable"
)

// ParseConsistency reads an API parameter; empty means Default.
func ParseConsistency(s string) (Consistency, error) {
	switch Consistency(s) {
	case "":
		return Default, nil
	case Stale, Default, Linearizable:
		return Consistency(s), nil
	}
	return "", fmt.Errorf("%w: consistency %q: use stale, default or linearizable", ErrBadQuery, s)
}

// ReadInfo says what a read barrier guaranteed.
type ReadInfo struct {
	Consistency Consistency
	Index       uint64 // this member had applied at least this far
}

// ReadBarrier blocks until this member may serve a read at level c, then
// returns the index its state is at. On a follower, Default and Linearizable
// ask the leader (through the Forwarder) for the index to wait for.
func (s *Store) ReadBarrier(ctx context.Context, c Consistency) (ReadInfo, error) {
	if c == Stale {
		return ReadInfo{Consistency: Stale, Index: s.fsm.appliedIndex()}, nil
	}
	const maxBackoff = 500 * time.Millisecond
	backoff := 10 * time.Millisecond
	for {
		if s.isClosed() {
			return ReadInfo{}, ErrClosed
		}
		changed := s.changed()
		var index uint64
		var err error
		attempted := true
		if s.raft.State() == raft.Leader {
			index, err = s.ReadIndexLeader(ctx, c == Linearizable)
		} else if addr, id := s.raft.LeaderWithID(); id == "" {
			attempted = false
		} else if rf, ok := s.cfg.Forwarder.(ReadForwarder); !ok {
			return ReadInfo{}, fmt.Errorf("%w: leader is %s (%s) and no Forwarder can ask it for a read index", ErrNotLeader, id, addr)
		} else {
			index, err = rf.ReadIndex(ctx, string(id), string(addr), c == Linearizable)
		}
		if attempted && err == nil {
			if err := s.waitAppliedErr(ctx, index); err != nil {
				return ReadInfo{}, fmt.Errorf("%s read: this member has not applied index %d yet: %w", c, index, err)
			}
			return ReadInfo{Consistency: c, Index: s.fsm.appliedIndex()}, nil
		}
		if attempted && !retryable(err) {
			return ReadInfo{}, err
		}
		if werr := s.wait(ctx, changed, backoff); werr != nil {
			if errors.Is(werr, ErrClosed) {
				return ReadInfo{}, ErrClosed
			}
			if err != nil {
				return ReadInfo{}, fmt.Errorf("%w: %s read not possible before the deadline (%w); last attempt: %w", ErrNoLeader, c, werr, err)
			}
			return ReadInfo{}, fmt.Errorf("%w: %s read needs a leader and none was elected before the deadline (%w); a stale read still answers from this member", ErrNoLeader, c, werr)
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// ReadForwarder is implemented by Forwarders that can ask the leader for a
// read index (hub/peer's does).
type ReadForwarder interface {
	ReadIndex(ctx context.Context, leaderID, leaderRaftAddr string, linearizable bool) (uint64, error)
}

// ReadIndexLeader is the leader's side of a read: the FSM index a member
// must have applied to serve it. It notes raft's commit index C — every entry
// any member may have applied, and so any read any member may have served,
// is at or below it — and answers the index of the last command at or below
// C (raft's no-op, barrier and configuration entries never reach an FSM, so
// C itself may name one). For a linearizable read it first makes sure an
// entry of its own term is applied here (a barrier, once per term: until
// then C may trail what an earlier leader committed), and after noting C it
// confirms with a quorum that it still leads, so no newer leader can have
// committed anything it does not know. A default read skips both checks: it
// is the leader's view as it stands. Not the leader: ErrNotLeader naming
// the one it knows.
//
// (Answering the leader's own FSM applied index instead would be wrong: a
// follower can apply a committed entry before the leader's FSM does, serve
// it, and a later read at the leader would then go back in time.)
func (s *Store) ReadIndexLeader(ctx context.Context, linearizable bool) (uint64, error) {
	if s.raft.State() != raft.Leader {
		return 0, s.notLeaderError()
	}
	if linearizable {
		timeout := 5 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			timeout = min(timeout, time.Until(dl))
		}
		term := s.raft.CurrentTerm()
		if s.barrierTerm.Load() != term {
			if err := s.waitFuture(s.raft.Barrier(timeout)); err != nil {
				return 0, s.applyError(err)
			}
			s.barrierTerm.Store(term)
		}
	}
	index, err := s.lastCommandAtOrBelow(s.raft.CommitIndex())
	if err != nil {
		return 0, err
	}
	if linearizable {
		if err := s.raft.VerifyLeader().Error(); err != nil {
			return 0, s.applyError(err)
		}
	}
	return index, nil
}

// lastCommandAtOrBelow finds the newest command entry at or below commit,
// looking back through the log no further than what the FSM has applied.
func (s *Store) lastCommandAtOrBelow(commit uint64) (uint64, error) {
	applied := s.fsm.appliedIndex()
	for i := commit; i > applied; i-- {
		var l raft.Log
		if err := s.logs.GetLog(i, &l); err != nil {
			return 0, fmt.Errorf("%w: read raft log entry %d: %v", ErrLeaderUnreachable, i, err)
		}
		if l.Type == raft.LogCommand {
			return i, nil
		}
	}
	return min(applied, commit), nil
}

// waitAppliedErr waits until this member's FSM reached index.
func (s *Store) waitAppliedErr(ctx context.Context, index uint64) error {
	for {
		ch := s.fsm.appliedChan()
		if s.fsm.appliedIndex() >= index {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stop:
			return ErrClosed
		case <-ch:
		}
	}
}
