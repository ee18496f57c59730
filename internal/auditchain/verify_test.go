package auditchain

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// reader serves events as an audit log does: up to n with seq > after.
func reader(evs []*rondav1.AuditEvent) func(after uint64, n int) ([]*rondav1.AuditEvent, error) {
	return func(after uint64, n int) ([]*rondav1.AuditEvent, error) {
		var out []*rondav1.AuditEvent
		for _, e := range evs {
			if e.GetAuditSeq() > after && len(out) < n {
				out = append(out, e)
			}
		}
		return out, nil
	}
}

func TestVerifyChainNamesChangedAndRemovedEvents(t *testing.T) {
	evs := chain(ChainPage + 20) // more than a page
	rep, err := VerifyChain(context.Background(), reader(evs))
	if err != nil || len(rep.Problems) != 0 || rep.Events != uint64(len(evs)) || rep.HeadSeq != uint64(len(evs)) || string(rep.HeadHash) != string(Hash(evs[len(evs)-1])) {
		t.Fatalf("an intact chain: %+v %v", rep.Problems, err)
	}

	tampered := append([]*rondav1.AuditEvent{}, evs[:ChainPage+20]...)
	changed := proto.CloneOf(tampered[6]) // #7
	changed.User = "someone-else"
	tampered[6] = changed
	// #100..#102 removed, and #ChainPage+1 (the first of the second page).
	tampered = append(append(tampered[:99:99], tampered[102:ChainPage]...), tampered[ChainPage+1:]...)
	rep, _ = VerifyChain(context.Background(), reader(tampered))
	want := []struct {
		seq  uint64
		says string
	}{
		{7, "its successor #8 names a predecessor hashing to"},
		{103, "events #100..#102 before it are not in the log (removed)"},
		{ChainPage + 2, "event #5001 before it is not in the log (removed)"},
	}
	if len(rep.Problems) != len(want) {
		t.Fatalf("problems %+v", rep.Problems)
	}
	for i, w := range want {
		if p := rep.Problems[i]; p.Seq != w.seq || !strings.HasPrefix(p.Problem, w.says) {
			t.Errorf("problem %d: %+v, want #%d %q", i, p, w.seq, w.says)
		}
	}

	// A log whose first events were removed.
	rep, _ = VerifyChain(context.Background(), reader(evs[3:10]))
	if len(rep.Problems) != 1 || rep.Problems[0].Seq != 4 || !strings.Contains(rep.Problems[0].Problem, "events #1..#3 before it") {
		t.Fatalf("the first three removed: %+v", rep.Problems)
	}
	// An empty log is an intact one.
	if rep, err := VerifyChain(context.Background(), reader(nil)); err != nil || len(rep.Problems) != 0 || rep.HeadSeq != 0 || rep.HeadHash != nil {
		t.Fatalf("an empty log: %+v %v", rep, err)
	}
}
