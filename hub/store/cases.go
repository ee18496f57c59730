package store

// Evidence cases (CommandCase).
//
// A case is created in one command with the holds of all its items: each
// item's hold becomes a directive for its camera's node at once, and stays
// pending while the node is offline (the same path as a hold placed at the
// hub). Pull progress, closing, the release of the holds after the grace
// period and a citizen report's bookkeeping are further CaseCommands.
// A citizen report is kept inside its case and indexed by its id, so a
// report posted twice finds the case it made the first time.

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// CommandCase carries a rondav1.CaseCommand.
const CommandCase CommandType = 12

func init() {
	commands[CommandCase] = commandSpec{
		name:   "Case",
		decode: func(p []byte) (proto.Message, error) { return decodeCase(p) },
		apply:  applyCase,
	}
}

// Case states.
const (
	CaseOpen   = "open"
	CaseClosed = "closed"
)

var (
	prefixCase   = []byte("q/")
	prefixReport = []byte("y/")
)

func caseKey(id string) []byte         { return joinKey(prefixCase, id) }
func reportKey(id string) []byte       { return joinKey(prefixReport, id) }
func caseHoldID(c, item string) string { return "case-" + c + "-" + item }

// CaseHoldID is the id of the hold a case places for one of its items.
func CaseHoldID(caseID, itemID string) string { return caseHoldID(caseID, itemID) }

func decodeCase(payload []byte) (*rondav1.CaseCommand, error) {
	m := new(rondav1.CaseCommand)
	if err := proto.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("%w: Case: %v", ErrBadCommand, err)
	}
	if c := m.GetCreate(); c != nil {
		switch {
		case validID("case", c.GetId()) != nil:
			return nil, fmt.Errorf("%w: Case: %v", ErrBadCommand, validID("case", c.GetId()))
		case c.GetReason() == "" || c.GetOwner() == "":
			return nil, fmt.Errorf("%w: Case: a case needs a reason and an owner", ErrBadCommand)
		case len(c.GetItems()) == 0 && c.GetReport() == nil:
			return nil, fmt.Errorf("%w: Case: a case needs at least one camera", ErrBadCommand)
		}
		for _, it := range c.GetItems() {
			if validID("camera", it.GetCameraId()) != nil || it.GetId() == "" || it.GetToUnixNano() <= it.GetFromUnixNano() {
				return nil, fmt.Errorf("%w: Case: item %q of camera %q needs an id and a range with to after from", ErrBadCommand, it.GetId(), it.GetCameraId())
			}
		}
		if r := c.GetReport(); r != nil && validID("report", r.GetId()) != nil {
			return nil, fmt.Errorf("%w: Case: %v", ErrBadCommand, validID("report", r.GetId()))
		}
	}
	return m, nil
}

// applyCase applies a CaseCommand.
func applyCase(b *pebble.Batch, payload []byte, _ *slog.Logger) (uint64, error) {
	m, err := decodeCase(payload)
	if err != nil {
		return 0, err
	}
	at := m.GetProposedUnixNano()
	if c := m.GetCreate(); c != nil {
		var old rondav1.StoredCase
		if found, err := getProto(b, caseKey(c.GetId()), &old); err != nil || found {
			return 0, err // the same command again
		}
		if r := c.GetReport(); r != nil {
			if _, closer, err := b.Get(reportKey(r.GetId())); err == nil {
				closer.Close()
				return 0, nil // the report made its case already
			}
		}
		for _, it := range c.GetItems() {
			info := &rondav1.HoldInfo{HoldId: caseHoldID(c.GetId(), it.GetId()), CameraId: it.GetCameraId(), FromUnixNano: it.GetFromUnixNano(),
				ToUnixNano: it.GetToUnixNano(), Reason: "case " + c.GetId() + ": " + c.GetReason(), CreatedBy: c.GetOwner()}
			if _, err := writeHold(b, &rondav1.HoldCommand{Hold: info, ProposedUnixNano: at}); err != nil {
				return 0, err
			}
			it.HoldId = info.HoldId
		}
		c.Status, c.CreatedUnixNano = CaseOpen, at
		if r := c.GetReport(); r != nil {
			if err := b.Set(reportKey(r.GetId()), []byte(c.GetId()), nil); err != nil {
				return 0, err
			}
		}
		return 0, putProto(b, caseKey(c.GetId()), c)
	}
	id := ""
	switch {
	case m.GetClose() != nil:
		id = m.GetClose().GetCaseId()
	case m.GetPullUpdate() != nil:
		id = m.GetPullUpdate().GetCaseId()
	case m.GetHoldsReleased() != nil:
		id = m.GetHoldsReleased().GetCaseId()
	case m.GetReportUpdate() != nil:
		id = m.GetReportUpdate().GetCaseId()
	case m.GetPullRequest() != nil:
		id = m.GetPullRequest().GetCaseId()
	default:
		return 0, fmt.Errorf("%w: Case: no operation", ErrBadCommand)
	}
	var c rondav1.StoredCase
	found, err := getProto(b, caseKey(id), &c)
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("%w: no case %q", ErrBadCommand, id)
	}
	switch {
	case m.GetClose() != nil:
		if c.GetStatus() == CaseClosed {
			return 0, nil
		}
		cl := m.GetClose()
		c.Status, c.ClosedUnixNano, c.ClosedBy, c.ReleaseAfterUnixNano = CaseClosed, at, cl.GetUser(), cl.GetReleaseAfterUnixNano()
	case m.GetPullUpdate() != nil:
		u := m.GetPullUpdate()
		for _, it := range c.GetItems() {
			if it.GetId() == u.GetItemId() {
				if it.GetPull().GetState() == "stored" && u.GetPull().GetState() != "stored" {
					return 0, nil // a late update of a finished pull
				}
				it.Pull = u.GetPull()
			}
		}
	case m.GetPullRequest() != nil:
		c.Pull = true
		for _, it := range c.GetItems() {
			if it.GetPull() == nil || it.GetPull().GetState() == "" || it.GetPull().GetState() == "not_requested" {
				it.Pull = &rondav1.PullStatus{State: "waiting", UpdatedUnixNano: at}
			}
		}
	case m.GetHoldsReleased() != nil:
		if c.GetHoldsReleased() {
			return 0, nil
		}
		for _, it := range c.GetItems() {
			var sh rondav1.StoredHold
			if ok, err := getProto(b, holdKey(it.GetCameraId(), it.GetHoldId()), &sh); err != nil {
				return 0, err
			} else if !ok || sh.GetState() == HoldReleasePending || sh.GetState() == HoldReleased {
				continue
			}
			info := &rondav1.HoldInfo{CameraId: it.GetCameraId(), HoldId: it.GetHoldId()}
			if _, err := writeHold(b, &rondav1.HoldCommand{Hold: info, Release: true, ReleasedBy: "case " + c.GetId() + " closed", ProposedUnixNano: at}); err != nil {
				return 0, err
			}
		}
		c.HoldsReleased = true
	case m.GetReportUpdate() != nil:
		u := m.GetReportUpdate()
		r := c.GetReport()
		if r == nil {
			return 0, fmt.Errorf("%w: case %s answers no report", ErrBadCommand, id)
		}
		if u.GetViewedUnixNano() != 0 && r.GetViewedUnixNano() == 0 {
			r.ViewedUnixNano, r.ViewedBy = u.GetViewedUnixNano(), u.GetViewedBy()
		}
		if u.GetAlertedUnixNano() != 0 && r.GetAlertedUnixNano() == 0 {
			r.AlertedUnixNano = u.GetAlertedUnixNano()
		}
		if u.GetCallbackAcked() != "" {
			r.CallbackAcked = u.GetCallbackAcked()
		}
	}
	return 0, putProto(b, caseKey(id), &c)
}

func (s *Store) applyCaseCommand(ctx context.Context, m *rondav1.CaseCommand) error {
	m.ProposedUnixNano = s.cfg.Now().UnixNano()
	cmd, err := EncodeCommand(CommandCase, m)
	if err != nil {
		return err
	}
	_, _, err = s.Apply(ctx, cmd)
	return err
}

// CreateCase stores a new case and places its holds. For a report already
// seen it returns the case that report made (created false).
func (s *Store) CreateCase(ctx context.Context, c *rondav1.StoredCase) (*rondav1.StoredCase, bool, error) {
	if r := c.GetReport(); r != nil {
		if existing, err := s.CaseOfReport(r.GetId()); err == nil {
			return existing, false, nil
		}
	}
	if err := s.applyCaseCommand(ctx, &rondav1.CaseCommand{Op: &rondav1.CaseCommand_Create{Create: c}}); err != nil {
		return nil, false, err
	}
	if r := c.GetReport(); r != nil {
		got, err := s.CaseOfReport(r.GetId())
		return got, err == nil && got.GetId() == c.GetId(), err
	}
	got, err := s.Case(c.GetId())
	return got, true, err
}

// Case returns one case.
func (s *Store) Case(id string) (*rondav1.StoredCase, error) {
	var c rondav1.StoredCase
	found, err := s.fsm.getProto(caseKey(id), &c)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: no case %q", ErrNotFound, id)
	}
	return &c, nil
}

// CaseOfReport returns the case a citizen report made.
func (s *Store) CaseOfReport(reportID string) (*rondav1.StoredCase, error) {
	var id string
	_, err := s.fsm.read(func(r pebble.Reader) error {
		v, closer, err := r.Get(reportKey(reportID))
		if err != nil {
			return err
		}
		defer closer.Close()
		id = string(v)
		return nil
	})
	if err != nil || id == "" {
		return nil, fmt.Errorf("%w: no report %q", ErrNotFound, reportID)
	}
	return s.Case(id)
}

// Cases lists every case (in id order).
func (s *Store) Cases() []*rondav1.StoredCase {
	return scanAll(s, prefixCase, func() *rondav1.StoredCase { return new(rondav1.StoredCase) })
}

// CloseCase closes a case; its holds are released after releaseAfter.
func (s *Store) CloseCase(ctx context.Context, id, user string, releaseAfterUnixNano int64) error {
	return s.applyCaseCommand(ctx, &rondav1.CaseCommand{Op: &rondav1.CaseCommand_Close{Close: &rondav1.CaseClose{CaseId: id, User: user, ReleaseAfterUnixNano: releaseAfterUnixNano}}})
}

// UpdatePull records an item's pull progress.
func (s *Store) UpdatePull(ctx context.Context, caseID, itemID string, p *rondav1.PullStatus) error {
	return s.applyCaseCommand(ctx, &rondav1.CaseCommand{Op: &rondav1.CaseCommand_PullUpdate{PullUpdate: &rondav1.CasePullUpdate{CaseId: caseID, ItemId: itemID, Pull: p}}})
}

// RequestPull asks for a case's footage to be pulled to the hub.
func (s *Store) RequestPull(ctx context.Context, caseID, user string) error {
	return s.applyCaseCommand(ctx, &rondav1.CaseCommand{Op: &rondav1.CaseCommand_PullRequest{PullRequest: &rondav1.CasePullRequest{CaseId: caseID, User: user}}})
}

// ReleaseCaseHolds releases the holds of a closed case.
func (s *Store) ReleaseCaseHolds(ctx context.Context, caseID string) error {
	return s.applyCaseCommand(ctx, &rondav1.CaseCommand{Op: &rondav1.CaseCommand_HoldsReleased{HoldsReleased: &rondav1.CaseHoldsReleased{CaseId: caseID}}})
}

// UpdateReport records a report's viewing, alert or callback.
func (s *Store) UpdateReport(ctx context.Context, u *rondav1.CaseReportUpdate) error {
	return s.applyCaseCommand(ctx, &rondav1.CaseCommand{Op: &rondav1.CaseCommand_ReportUpdate{ReportUpdate: u}})
}
