package auditchain

import (
	"bytes"
	"context"
	"fmt"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// ChainProblem is an event of an audit chain that is not as the chain says
// it should be (Seq: the event at fault, as far as the chain can tell).
type ChainProblem struct {
	Seq     uint64
	Problem string
}

// ChainReport is the outcome of VerifyChain.
type ChainReport struct {
	Events   uint64 // events read
	HeadSeq  uint64 // the newest event's audit seq
	HeadHash []byte // and its chain hash
	Problems []ChainProblem
}

// ChainPage is how many events VerifyChain reads at a time.
const ChainPage = 5000

// VerifyChain walks an audit log oldest first (read returns up to n events
// with audit_seq > after, in order) and checks that it is one chain: events
// numbered 1, 2, 3, ... without gaps, each naming the hash of the one
// before it. An event whose successor names another hash was changed after
// it was logged; missing numbers were removed. (The chain cannot show a
// change to the newest event or the removal of the newest events: compare
// HeadSeq and HeadHash with a copy kept elsewhere, such as the hub's.)
func VerifyChain(ctx context.Context, read func(after uint64, n int) ([]*rondav1.AuditEvent, error)) (ChainReport, error) {
	var rep ChainReport
	add := func(seq uint64, format string, args ...any) {
		rep.Problems = append(rep.Problems, ChainProblem{Seq: seq, Problem: fmt.Sprintf(format, args...)})
	}
	var prevSeq uint64
	prevHash := Genesis
	for after := uint64(0); ; {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		page, err := read(after, ChainPage)
		if err != nil {
			return rep, err
		}
		start := after
		for _, e := range page {
			seq := e.GetAuditSeq()
			rep.Events++
			switch {
			case seq <= prevSeq:
				add(seq, "stored after event #%d but numbered #%d: its number was changed", prevSeq, seq)
			case seq > prevSeq+1:
				if seq-1 == prevSeq+1 {
					add(seq, "event #%d before it is not in the log (removed)", prevSeq+1)
				} else {
					add(seq, "events #%d..#%d before it are not in the log (removed)", prevSeq+1, seq-1)
				}
			case !bytes.Equal(e.GetPrevSha256(), prevHash):
				if prevSeq == 0 {
					add(seq, "the first event names a predecessor (hash %x), but the chain starts with none: events before it were removed, or it was changed", short(e.GetPrevSha256()))
				} else {
					add(prevSeq, "its successor #%d names a predecessor hashing to %x, but this event hashes to %x: it was changed after it was logged", seq, short(e.GetPrevSha256()), short(prevHash))
				}
			}
			if seq > prevSeq {
				prevSeq = seq
			}
			prevHash = Hash(e)
			after = max(after, seq)
		}
		if len(page) < ChainPage {
			break
		}
		if after == start { // a full page of numbers that do not advance: stop rather than read it again
			add(after, "%d events after #%d are numbered #%d or lower: the log's numbers were changed; the rest was not read", len(page), after, after)
			break
		}
	}
	rep.HeadSeq = prevSeq
	if rep.Events > 0 {
		rep.HeadHash = prevHash
	}
	return rep, nil
}
