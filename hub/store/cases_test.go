package store

import (
	"errors"
	"path/filepath"
	"testing"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

func caseCmd(t *testing.T, m *rondav1.CaseCommand) []byte {
	t.Helper()
	m.ProposedUnixNano = 7
	cmd, err := EncodeCommand(CommandCase, m)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func storedCase(t *testing.T, f *fsm, id string) *rondav1.StoredCase {
	t.Helper()
	var c rondav1.StoredCase
	if found, err := f.getProto(caseKey(id), &c); err != nil || !found {
		t.Fatalf("case %s: found %v, %v", id, found, err)
	}
	return &c
}

// A case places a hold per item in the same command (pending until the
// node applies it, as any hub hold); a report makes one case however often
// it is posted; pull progress, closing and the release of the holds after
// the grace period are recorded; a finished pull is not undone by a late
// update.
func TestCasesPlaceHoldsAndReleaseThemWhenClosed(t *testing.T) {
	f := newTestFSM(t, filepath.Join(t.TempDir(), "fsm"))
	applyAt(t, f, 1, nodeCmd(t, "n1", 1, regRec(1, "n1", "31.71.01.1001"), camsRec(2, "3171011001-a", "3171011001-b")))
	items := func() []*rondav1.StoredCaseItem {
		return []*rondav1.StoredCaseItem{
			{Id: "i1", CameraId: "3171011001-a", NodeId: "n1", FromUnixNano: 100 * sec, ToUnixNano: 200 * sec, Pull: &rondav1.PullStatus{State: "not_requested"}},
			{Id: "i2", CameraId: "3171011001-b", NodeId: "n1", FromUnixNano: 100 * sec, ToUnixNano: 200 * sec, Pull: &rondav1.PullStatus{State: "not_requested"}},
		}
	}
	create := &rondav1.CaseCommand{Op: &rondav1.CaseCommand_Create{Create: &rondav1.StoredCase{Id: "C-1", Reason: "report JAKI-9 (theft)", Owner: "report-client:jaki",
		DeadlineUnixNano: 1000 * sec, Items: items(), Report: &rondav1.StoredReport{Id: "JAKI-9", Category: "theft"}}}}
	if r := applyAt(t, f, 2, caseCmd(t, create)); r.err != nil {
		t.Fatalf("create: %+v", r)
	}
	c := storedCase(t, f, "C-1")
	if c.Status != CaseOpen || c.CreatedUnixNano != 7 || c.Items[0].HoldId != "case-C-1-i1" || c.Items[1].HoldId != "case-C-1-i2" {
		t.Fatalf("stored case: %v", c)
	}
	for _, it := range c.Items {
		if sh := storedHold(t, f, it.CameraId, it.HoldId); sh.State != HoldPending || sh.NodeId != "n1" || sh.Hold.GetReason() != "case C-1: report JAKI-9 (theft)" {
			t.Fatalf("hold of %s: %v", it.Id, sh)
		}
	}
	if d := directives(t, f, "n1"); len(d) != 2 {
		t.Fatalf("directives for n1: %v, want one per item", d)
	}
	// The same report again, under another case id: nothing new.
	again := &rondav1.CaseCommand{Op: &rondav1.CaseCommand_Create{Create: &rondav1.StoredCase{Id: "C-2", Reason: "report JAKI-9 (theft)", Owner: "report-client:jaki",
		Items: items(), Report: &rondav1.StoredReport{Id: "JAKI-9"}}}}
	if r := applyAt(t, f, 3, caseCmd(t, again)); r.err != nil {
		t.Fatalf("the same report again: %+v", r)
	}
	if found, _ := f.getProto(caseKey("C-2"), &rondav1.StoredCase{}); found {
		t.Fatal("a report posted twice made two cases")
	}
	if d := directives(t, f, "n1"); len(d) != 2 {
		t.Fatalf("the report posted twice placed more holds: %v", d)
	}
	// A case on an unknown camera is refused whole.
	bad := &rondav1.CaseCommand{Op: &rondav1.CaseCommand_Create{Create: &rondav1.StoredCase{Id: "C-3", Reason: "x", Owner: "auditor",
		Items: []*rondav1.StoredCaseItem{{Id: "i1", CameraId: "3171011001-zz", FromUnixNano: 1, ToUnixNano: 2}}}}}
	if r := applyAt(t, f, 4, caseCmd(t, bad)); !errors.Is(r.err, ErrBadCommand) {
		t.Fatalf("a case on an unknown camera: %+v", r)
	}
	// Pull: requested, stored; a late update does not undo it.
	applyAt(t, f, 5, caseCmd(t, &rondav1.CaseCommand{Op: &rondav1.CaseCommand_PullRequest{PullRequest: &rondav1.CasePullRequest{CaseId: "C-1", User: "auditor"}}}))
	if c := storedCase(t, f, "C-1"); !c.Pull || c.Items[0].Pull.State != "waiting" {
		t.Fatalf("after the pull request: %v", c)
	}
	applyAt(t, f, 6, caseCmd(t, &rondav1.CaseCommand{Op: &rondav1.CaseCommand_PullUpdate{PullUpdate: &rondav1.CasePullUpdate{CaseId: "C-1", ItemId: "i1",
		Pull: &rondav1.PullStatus{State: "stored", Sha256: "ab", Bytes: 10, Total: 10}}}}))
	applyAt(t, f, 7, caseCmd(t, &rondav1.CaseCommand{Op: &rondav1.CaseCommand_PullUpdate{PullUpdate: &rondav1.CasePullUpdate{CaseId: "C-1", ItemId: "i1",
		Pull: &rondav1.PullStatus{State: "pulling", Bytes: 5, Total: 10}}}}))
	if c := storedCase(t, f, "C-1"); c.Items[0].Pull.State != "stored" || c.Items[0].Pull.Sha256 != "ab" {
		t.Fatalf("a late progress update undid a finished pull: %v", c.Items[0].Pull)
	}
	// Closed; the holds go only with the release command (after the grace).
	applyAt(t, f, 8, caseCmd(t, &rondav1.CaseCommand{Op: &rondav1.CaseCommand_Close{Close: &rondav1.CaseClose{CaseId: "C-1", User: "auditor", ReleaseAfterUnixNano: 99}}}))
	if c := storedCase(t, f, "C-1"); c.Status != CaseClosed || c.ClosedBy != "auditor" || c.ReleaseAfterUnixNano != 99 {
		t.Fatalf("closed: %v", c)
	}
	if sh := storedHold(t, f, "3171011001-a", "case-C-1-i1"); sh.State != HoldPending {
		t.Fatalf("closing released the hold at once: %v", sh)
	}
	applyAt(t, f, 9, caseCmd(t, &rondav1.CaseCommand{Op: &rondav1.CaseCommand_HoldsReleased{HoldsReleased: &rondav1.CaseHoldsReleased{CaseId: "C-1"}}}))
	for _, it := range storedCase(t, f, "C-1").Items {
		if sh := storedHold(t, f, it.CameraId, it.HoldId); sh.State != HoldReleasePending {
			t.Fatalf("after the release: hold of %s is %s", it.Id, sh.State)
		}
	}
	if !storedCase(t, f, "C-1").HoldsReleased {
		t.Fatal("the case does not record that its holds were released")
	}
}
