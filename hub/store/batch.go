package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// DefaultBatchWindow is how long the leader gathers writes into one raft
// entry. Every entry costs a log append and an FSM sync on each member; a
// node push, a hold or an audit record each alone would pay it. 20 ms is
// short next to a node's push interval and long enough that hundreds of
// nodes pushing together share entries.
const DefaultBatchWindow = 20 * time.Millisecond

// proposeQueue bounds the writes waiting for the batcher on the leader; a
// writer blocks (bounded by its context) when it is full.
const proposeQueue = 4096

type proposal struct {
	cmd  []byte
	done chan proposalResult // buffered: the batcher never blocks on it
}

type proposalResult struct {
	index, result uint64
	err           error
}

// batchOverhead is the framing a command adds inside a batch (field tag and
// length varint, generously).
const batchOverhead = 16

// runBatcher gathers proposals into raft entries: the first proposal opens a
// window of cfg.BatchWindow; the entry is proposed when the window ends or
// when the next proposal would push it past MaxCommandBytes.
func (s *Store) runBatcher() {
	var carry *proposal
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case <-s.stop:
				s.failQueued(nil)
				return
			case first = <-s.proposeCh:
			}
		}
		batch := []*proposal{first}
		size := len(first.cmd) + batchOverhead
		timer := time.NewTimer(s.cfg.BatchWindow)
	gather:
		for {
			select {
			case <-s.stop:
				timer.Stop()
				s.failQueued(batch)
				return
			case p := <-s.proposeCh:
				if size+len(p.cmd)+batchOverhead > MaxCommandBytes {
					carry = p
					break gather
				}
				batch = append(batch, p)
				size += len(p.cmd) + batchOverhead
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		s.proposeBatch(batch)
	}
}

// failQueued answers every waiting proposal with ErrClosed.
func (s *Store) failQueued(batch []*proposal) {
	for _, p := range batch {
		p.done <- proposalResult{err: ErrClosed}
	}
	for {
		select {
		case p := <-s.proposeCh:
			p.done <- proposalResult{err: ErrClosed}
		default:
			return
		}
	}
}

// proposeBatch submits one raft entry for the proposals and, when it is
// applied, gives each proposal its own result.
func (s *Store) proposeBatch(batch []*proposal) {
	fail := func(err error) {
		for _, p := range batch {
			p.done <- proposalResult{err: err}
		}
	}
	cmd := batch[0].cmd
	if len(batch) > 1 {
		cmds := make([][]byte, len(batch))
		for i, p := range batch {
			cmds[i] = p.cmd
		}
		var err error
		if cmd, err = EncodeBatch(cmds); err != nil {
			fail(err)
			return
		}
	}
	if s.raft.State() != raft.Leader {
		fail(s.notLeaderError())
		return
	}
	fut := s.raft.Apply(cmd, 10*time.Second)
	if !s.goTracked(func() {
		if err := s.applyError(s.waitFuture(fut)); err != nil {
			fail(err)
			return
		}
		resps, _ := fut.Response().([]applyResponse)
		for i, p := range batch {
			if i >= len(resps) {
				p.done <- proposalResult{err: fmt.Errorf("raft entry %d answered %d results for %d commands", fut.Index(), len(resps), len(batch))}
				continue
			}
			p.done <- proposalResult{index: fut.Index(), result: resps[i].result, err: resps[i].err}
		}
	}) {
		fail(ErrClosed)
	}
}

// waitFuture waits for a raft future, but not forever past Close: with
// BatchApplyCh raft's apply channel is buffered, and a future still queued
// in it when raft shuts down is never resolved (seen as Close hanging in
// BenchmarkSpanIngest). Futures raft has taken resolve during its shutdown,
// so after Close began they get a second to do so.
func (s *Store) waitFuture(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }() // not tracked: a stranded future never returns
	select {
	case err := <-done:
		return err
	case <-s.stop:
	}
	select {
	case err := <-done:
		return err
	case <-time.After(time.Second):
		return raft.ErrRaftShutdown
	}
}

// applyError turns a raft apply error into the store's errors.
func (s *Store) applyError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w (raft: %v); the command may or may not have been applied", s.notLeaderError(), err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("raft apply queue full: %w", context.DeadlineExceeded)
	default:
		return fmt.Errorf("raft apply: %w", err)
	}
}

// applyLocal commits a command on this member, which must be the leader,
// through the batcher.
func (s *Store) applyLocal(ctx context.Context, command []byte) (uint64, uint64, error) {
	if s.raft.State() != raft.Leader {
		return 0, 0, s.notLeaderError()
	}
	p := &proposal{cmd: command, done: make(chan proposalResult, 1)}
	select {
	case s.proposeCh <- p:
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("waiting to propose (write queue full): %w", ctx.Err())
	case <-s.stop:
		return 0, 0, ErrClosed
	}
	select {
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("waiting for commit (the command may still be applied): %w", ctx.Err())
	case r := <-p.done:
		if r.err != nil {
			return r.index, 0, r.err
		}
		return r.index, r.result, nil
	}
}
