package store

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

func holdCmd(t *testing.T, cam, id string, release bool) []byte {
	t.Helper()
	cmd, err := EncodeCommand(CommandHold, &rondav1.HoldCommand{Hold: &rondav1.HoldInfo{HoldId: id, CameraId: cam, FromUnixNano: 100 * sec,
		ToUnixNano: 200 * sec, Reason: "JAKI-1", CreatedBy: "auditor"}, Release: release, ReleasedBy: "auditor", ProposedUnixNano: 5})
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func storedHold(t *testing.T, f *fsm, cam, id string) *rondav1.StoredHold {
	t.Helper()
	var sh rondav1.StoredHold
	if found, err := f.getProto(holdKey(cam, id), &sh); err != nil || !found {
		t.Fatalf("hold %s/%s: found %v, %v", cam, id, found, err)
	}
	return &sh
}

func directives(t *testing.T, f *fsm, node string) []uint64 {
	t.Helper()
	var out []uint64
	if _, err := f.read(func(r pebble.Reader) error {
		return scanPrefix(r, directivePrefix(node), func(k, v []byte) error { out = append(out, keyUintTail(k)); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func keyUintTail(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-8:]) }

// A hold placed at the hub waits as a directive for the camera's node
// (pending) until the node reports it applied; its release likewise; the
// same command twice changes nothing; holds the node's staff place are
// recorded as they come.
func TestHubHoldsBecomeDirectivesUntilTheNodeAppliesThem(t *testing.T) {
	f := newTestFSM(t, filepath.Join(t.TempDir(), "fsm"))
	applyAt(t, f, 1, nodeCmd(t, "n1", 1, regRec(1, "n1", "31.71.01.1001"), camsRec(2, "3171011001-a")))
	if r := applyAt(t, f, 2, holdCmd(t, "3171011001-a", "hub-1", false)); r.err != nil || r.result != 1 {
		t.Fatalf("place: %+v", r)
	}
	if r := applyAt(t, f, 3, holdCmd(t, "3171011001-a", "hub-1", false)); r.err != nil || r.result != 1 {
		t.Fatalf("the same placement again: %+v", r)
	}
	if sh := storedHold(t, f, "3171011001-a", "hub-1"); sh.State != HoldPending || sh.NodeId != "n1" || sh.DirectiveSeq != 1 {
		t.Fatalf("placed hold: %v", sh)
	}
	if d := directives(t, f, "n1"); len(d) != 1 || d[0] != 1 {
		t.Fatalf("directives waiting for n1: %v, want [1]", d)
	}
	if r := applyAt(t, f, 4, holdCmd(t, "3171011001-zz", "hub-2", false)); !errors.Is(r.err, ErrBadCommand) {
		t.Fatalf("a hold on an unknown camera: %+v", r)
	}
	// The node applied directive 1.
	applyAt(t, f, 5, nodeCmd(t, "n1", 2, &rondav1.Record{Seq: 3, Body: &rondav1.Record_DirectiveResult{DirectiveResult: &rondav1.DirectiveResult{Seq: 1}}}))
	if sh := storedHold(t, f, "3171011001-a", "hub-1"); sh.State != HoldApplied {
		t.Fatalf("after the node applied it: %v", sh)
	}
	if d := directives(t, f, "n1"); len(d) != 0 {
		t.Fatalf("an applied directive is kept: %v", d)
	}
	// Released at the hub: directive 2, then applied.
	if r := applyAt(t, f, 6, holdCmd(t, "3171011001-a", "hub-1", true)); r.err != nil || r.result != 2 {
		t.Fatalf("release: %+v", r)
	}
	if sh := storedHold(t, f, "3171011001-a", "hub-1"); sh.State != HoldReleasePending || sh.ReleasedBy != "auditor" {
		t.Fatalf("releasing: %v", sh)
	}
	applyAt(t, f, 7, nodeCmd(t, "n1", 3, &rondav1.Record{Seq: 4, Body: &rondav1.Record_DirectiveResult{DirectiveResult: &rondav1.DirectiveResult{Seq: 2}}}))
	if sh := storedHold(t, f, "3171011001-a", "hub-1"); sh.State != HoldReleased {
		t.Fatalf("after the node released it: %v", sh)
	}
	if n := getNode(t, f, "n1"); n.DirectiveSeq != 2 || n.DirectiveApplied != 2 {
		t.Fatalf("node directive seqs: %v", n)
	}
	// A hold the node's own staff placed (offline perhaps), then released.
	local := &rondav1.HoldInfo{HoldId: "n1-77", CameraId: "3171011001-a", FromUnixNano: 1, ToUnixNano: 2, Reason: "RT 03 request", CreatedBy: "lurah"}
	applyAt(t, f, 8, nodeCmd(t, "n1", 4, &rondav1.Record{Seq: 5, Body: &rondav1.Record_Hold{Hold: &rondav1.HoldChange{Hold: local}}}))
	if sh := storedHold(t, f, "3171011001-a", "n1-77"); sh.State != HoldApplied || sh.Hold.GetCreatedBy() != "lurah" {
		t.Fatalf("local hold: %v", sh)
	}
	applyAt(t, f, 9, nodeCmd(t, "n1", 5, &rondav1.Record{Seq: 6, Body: &rondav1.Record_Hold{Hold: &rondav1.HoldChange{Hold: local, Released: true}}}))
	if sh := storedHold(t, f, "3171011001-a", "n1-77"); sh.State != HoldReleased {
		t.Fatalf("local hold released: %v", sh)
	}
}
