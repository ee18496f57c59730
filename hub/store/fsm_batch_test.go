package store

import (
	"errors"
	"maps"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// Entries raft hands over together apply in order with one sync; a batch
// command answers each of its commands separately, and a bad command inside
// it is rejected alone while its neighbours apply. Replaying the same
// entries after a restart changes nothing.
func TestFSMApplyBatchAndBatchCommand(t *testing.T) {
	dir := t.TempDir()
	f := newTestFSM(t, dir)
	good1 := nodeCmd(t, "n1", 10, regRec(1, "n1", "31.71.01.1001"), spanRec(2, "c1", 0, 10))
	good2 := nodeCmd(t, "n2", 11, regRec(1, "n2", "31.71.01.1002"), spanRec(2, "c2", 0, 10), spanRec(3, "c2", 20, 30))
	bad := append([]byte{byte(CommandNodeRecords)}, 0xff, 0xff) // undecodable payload
	batch, err := EncodeBatch([][]byte{good1, bad, good2})
	if err != nil {
		t.Fatal(err)
	}
	lone := nodeCmd(t, "n1", 12, spanRec(3, "c1", 20, 30))
	logs := []*raft.Log{
		{Index: 5, Term: 1, Type: raft.LogCommand, Data: batch},
		{Index: 6, Term: 1, Type: raft.LogNoop},
		{Index: 7, Term: 1, Type: raft.LogCommand, Data: lone},
	}
	out := f.ApplyBatch(logs)
	if len(out) != 3 {
		t.Fatalf("%d responses for 3 entries", len(out))
	}
	b, ok := out[0].([]applyResponse)
	if !ok || len(b) != 3 {
		t.Fatalf("batch entry answered %#v, want 3 results", out[0])
	}
	if b[0].err != nil || b[0].result != 2 {
		t.Fatalf("first command of the batch: %+v, want applied seq 2", b[0])
	}
	if !errors.Is(b[1].err, ErrBadCommand) {
		t.Fatalf("undecodable command in a batch: %+v, want ErrBadCommand", b[1])
	}
	if b[2].err != nil || b[2].result != 3 {
		t.Fatalf("third command of the batch: %+v, want applied seq 3", b[2])
	}
	if out[1] != nil {
		t.Fatalf("a no-op entry answered %#v", out[1])
	}
	if l, ok := out[2].([]applyResponse); !ok || len(l) != 1 || l[0].result != 3 {
		t.Fatalf("lone command answered %#v", out[2])
	}
	if f.appliedIndex() != 7 {
		t.Fatalf("applied index %d, want 7", f.appliedIndex())
	}
	if n := getNode(t, f, "n2"); n.GetAppliedSeq() != 3 {
		t.Fatalf("n2 applied seq %d", n.GetAppliedSeq())
	}

	// A batch inside a batch is refused before it is ever proposed.
	if _, err := EncodeBatch([][]byte{batch}); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("nested batch: %v", err)
	}
	nested, _ := proto.Marshal(&rondav1.CommandBatch{Commands: [][]byte{batch}})
	if err := ValidateCommand(append([]byte{byte(CommandBatch)}, nested...)); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("nested batch validated: %v", err)
	}

	// Restart: raft replays the entries; nothing changes.
	before := dump(t, f)
	f.close()
	f = newTestFSM(t, dir)
	if out := f.ApplyBatch(logs); out[0] != nil || out[2] != nil {
		t.Fatalf("replayed entries were applied again: %#v", out)
	}
	if after := dump(t, f); !maps.Equal(after, before) {
		t.Fatal("replaying applied entries changed the state")
	}
}
