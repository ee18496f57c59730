package hub

// Evidence cases and citizen reports at the hub (api.CaseAdmin,
// api.ReportStore), and the leader's case loop: releasing a closed case's
// holds after the grace period, alerting when a report's deadline nears
// and nobody has looked, telling the complaint system's callback URL what
// changed, and handing items to the puller.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/hub/store"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// CasesConfig tunes evidence cases (hub.yaml cases:).
type CasesConfig struct {
	// ReleaseGrace: a closed case's holds are released this long after it
	// was closed (default 72h), so a mistaken close can be undone.
	ReleaseGrace time.Duration `yaml:"release_grace"`
	// PullRatePerNode caps pulling footage from one node, in bytes per
	// second (default 500000, 4 Mbit/s), so a kelurahan's link is never
	// saturated; negative: no cap.
	PullRatePerNode float64 `yaml:"pull_rate_per_node"`
}

// ReportsConfig is the complaint system's link (hub.yaml reports:).
type ReportsConfig struct {
	// Clients may post reports, each with its own bearer token, of which
	// hub.yaml keeps only the SHA-256 (hex).
	Clients []struct {
		Name        string `yaml:"name"`
		TokenSHA256 string `yaml:"token_sha256"`
	} `yaml:"clients"`
	// RadiusM: metres around a reported spot searched for cameras, by
	// category ("default" for the rest; default 150).
	RadiusM map[string]float64 `yaml:"radius_m"`
	// AlertBefore: alert when a report's deadline is this close and nobody
	// has looked at its footage (default 24h).
	AlertBefore time.Duration `yaml:"alert_before"`
}

// ReportDeadline: a citizen report must be answered within 6 days.
const ReportDeadline = 6 * 24 * time.Hour

// caseState is a member's memory of cases beyond Raft: live pull progress
// and what it has already told Raft or the callback URLs.
type caseState struct {
	mu        sync.Mutex
	progress  map[string]api.PullProgress // "case/item" -> newest progress here
	viewed    map[string]bool             // cases whose viewing is committed
	callbacks map[string]time.Time        // report -> next callback attempt
}

func newCaseState() *caseState {
	return &caseState{progress: map[string]api.PullProgress{}, viewed: map[string]bool{}, callbacks: map[string]time.Time{}}
}

func (h *Hub) caseRuntime() *caseState {
	h.casesOnce.Do(func() { h.cases = newCaseState() })
	return h.cases
}

func newCaseID(now time.Time) string {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return "C-" + now.UTC().Format("20060102") + "-" + strings.ToUpper(hex.EncodeToString(rnd[:]))
}

// caseCandidates finds the cameras of a query: those the catalog says have
// footage in the window, and those of nodes the hub has not heard from
// since the window began (their footage may be there: holding too much is
// safer than losing evidence).
func (b *backend) caseCandidates(q api.CaseQuery) ([]*rondav1.StoredCaseItem, error) {
	sq := store.Query{Lat: q.Lat, Lon: q.Lon, RadiusM: q.RadiusM, Limit: api.MaxCaseItems}
	if q.RadiusM == 0 {
		switch strings.Count(q.Area, ".") {
		case 1:
			sq.Kota = q.Area
		case 2:
			sq.Kecamatan = q.Area
		case 3:
			sq.Kelurahan = q.Area
		default:
			return nil, fmt.Errorf("%w: area %q is not a kota (31.71), kecamatan (31.71.01) or kelurahan (31.71.01.1001) code", api.ErrBadRequest, q.Area)
		}
	}
	place, err := b.h.store.Query(sq) // every camera of the place, whatever its footage
	if errors.Is(err, store.ErrBadQuery) {
		return nil, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	if err != nil {
		return nil, err
	}
	sq.From, sq.To = q.From, q.To
	covered, err := b.h.store.Query(sq)
	if err != nil {
		return nil, err
	}
	has := map[string]bool{}
	for _, c := range covered.Cameras {
		has[c.ID] = true
	}
	var out []*rondav1.StoredCaseItem
	for _, c := range place.Cameras {
		if !has[c.ID] {
			n, ok := b.h.store.Node(c.NodeID)
			lastSeen := time.Unix(0, n.GetUpdatedUnixNano())
			if !ok || b.h.repl.Link(c.NodeID).Connected && lastSeen.After(q.To) {
				continue // the hub knows this camera recorded nothing then
			}
		}
		out = append(out, &rondav1.StoredCaseItem{CameraId: c.ID, NodeId: c.NodeID, KelurahanCode: c.Kelurahan,
			FromUnixNano: q.From.UnixNano(), ToUnixNano: q.To.UnixNano(), DistanceM: c.DistanceM})
	}
	return out, nil
}

// CreateCase opens a case and places its holds (api.CaseStore).
func (b *backend) CreateCase(ctx context.Context, req api.CaseRequest, owner string) (api.Case, bool, error) {
	now := time.Now()
	sc := &rondav1.StoredCase{Id: newCaseID(now), Reason: strings.TrimSpace(req.Reason), Owner: owner, Pull: req.Pull != nil && *req.Pull}
	sc.DeadlineUnixNano = now.Add(api.DefaultCaseDeadline).UnixNano()
	if !req.Deadline.IsZero() {
		sc.DeadlineUnixNano = req.Deadline.UnixNano()
	}
	for _, it := range req.Items {
		c, err := b.camera(it.Camera)
		if err != nil {
			return api.Case{}, false, err
		}
		sc.Items = append(sc.Items, &rondav1.StoredCaseItem{CameraId: c.GetCamera().GetId(), NodeId: c.GetNodeId(),
			KelurahanCode: c.GetKelurahanCode(), FromUnixNano: it.From.UnixNano(), ToUnixNano: it.To.UnixNano()})
	}
	if q := req.Query; q != nil {
		sc.Query = &rondav1.CaseQuery{Lat: q.Lat, Lon: q.Lon, RadiusM: q.RadiusM, Area: q.Area, FromUnixNano: q.From.UnixNano(), ToUnixNano: q.To.UnixNano()}
		found, err := b.caseCandidates(*q)
		if err != nil {
			return api.Case{}, false, err
		}
		for _, f := range found {
			if !slices.ContainsFunc(sc.Items, func(x *rondav1.StoredCaseItem) bool {
				return x.GetCameraId() == f.GetCameraId() && x.GetFromUnixNano() == f.GetFromUnixNano() && x.GetToUnixNano() == f.GetToUnixNano()
			}) {
				sc.Items = append(sc.Items, f)
			}
		}
	}
	if len(sc.Items) == 0 {
		return api.Case{}, false, fmt.Errorf("%w: no camera recorded there and then (by the hub's catalog); widen the place or the time", api.ErrBadRequest)
	}
	if len(sc.Items) > api.MaxCaseItems {
		return api.Case{}, false, fmt.Errorf("%w: the case would hold %d cameras, more than %d; narrow the place or the time", api.ErrBadRequest, len(sc.Items), api.MaxCaseItems)
	}
	for i, it := range sc.Items {
		it.Id = fmt.Sprintf("i%d", i+1)
		it.Pull = &rondav1.PullStatus{State: api.PullNone}
		if sc.Pull {
			it.Pull.State = api.PullWaiting
		}
	}
	got, created, err := b.h.store.CreateCase(ctx, sc)
	if err != nil {
		return api.Case{}, false, caseErr(err)
	}
	return b.caseOut(got), created, nil
}

func caseErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	case errors.Is(err, store.ErrBadCommand):
		return fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	return err
}

// caseOut is a stored case as the API shows it: with each item's hold as
// the hub knows it now and its pull as this member last saw it.
func (b *backend) caseOut(sc *rondav1.StoredCase) api.Case {
	t := func(ns int64) time.Time { return time.Unix(0, ns).UTC() }
	c := api.Case{ID: sc.GetId(), Reason: sc.GetReason(), Owner: sc.GetOwner(), Created: t(sc.GetCreatedUnixNano()),
		Deadline: t(sc.GetDeadlineUnixNano()), Status: sc.GetStatus(), Items: []api.CaseItem{}}
	if sc.GetClosedUnixNano() != 0 {
		cl, ra := t(sc.GetClosedUnixNano()), t(sc.GetReleaseAfterUnixNano())
		c.Closed, c.ReleaseAfter = &cl, &ra
	}
	if r := sc.GetReport(); r != nil {
		c.Report = r.GetId()
	}
	if q := sc.GetQuery(); q != nil {
		c.Query = &api.CaseQuery{Lat: q.GetLat(), Lon: q.GetLon(), RadiusM: q.GetRadiusM(), Area: q.GetArea(), From: t(q.GetFromUnixNano()), To: t(q.GetToUnixNano())}
	}
	rt := b.h.caseRuntime()
	for _, it := range sc.GetItems() {
		ci := api.CaseItem{ID: it.GetId(), Camera: it.GetCameraId(), NodeID: it.GetNodeId(), Kelurahan: it.GetKelurahanCode(),
			From: t(it.GetFromUnixNano()), To: t(it.GetToUnixNano()), DistanceM: math.Round(it.GetDistanceM()), HoldID: it.GetHoldId()}
		if sh, err := b.h.store.Hold(it.GetCameraId(), it.GetHoldId()); err == nil {
			ci.HoldState, ci.HoldError = sh.GetState(), sh.GetError()
		}
		p := it.GetPull()
		ci.Pull = api.PullProgress{State: p.GetState(), ExportID: p.GetExportId(), Bytes: p.GetBytes(), Total: p.GetTotal(), SHA256: p.GetSha256(),
			Error: p.GetError(), Attempts: int(p.GetAttempts()), Member: p.GetMember()}
		if p.GetUpdatedUnixNano() != 0 {
			ci.Pull.Updated = t(p.GetUpdatedUnixNano())
		}
		rt.mu.Lock()
		if live, ok := rt.progress[sc.GetId()+"/"+it.GetId()]; ok && ci.Pull.State != api.PullStored && live.Updated.After(ci.Pull.Updated) {
			ci.Pull = live
		}
		rt.mu.Unlock()
		if ci.Pull.SHA256 != "" {
			ci.Pull.Holders = b.h.evidenceHolders(ci.Pull.SHA256)
		}
		if ci.HoldState == store.HoldPending {
			c.HoldsPending++
		}
		if ci.Pull.State == api.PullStored {
			c.ItemsStored++
		}
		c.Items = append(c.Items, ci)
	}
	return c
}

// Cases lists every case, newest first (api.CaseStore).
func (b *backend) Cases(ctx context.Context) ([]api.Case, error) {
	var out []api.Case
	for _, sc := range b.h.store.Cases() {
		out = append(out, b.caseOut(sc))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Case returns one case (api.CaseStore).
func (b *backend) Case(ctx context.Context, id string) (api.Case, error) {
	sc, err := b.h.store.Case(id)
	if err != nil {
		return api.Case{}, caseErr(err)
	}
	return b.caseOut(sc), nil
}

// CloseCase closes a case; its holds go after the grace period (api.CaseStore).
func (b *backend) CloseCase(ctx context.Context, id, user string) (api.Case, error) {
	grace := b.h.cfg.Cases.ReleaseGrace
	if grace <= 0 {
		grace = 72 * time.Hour
	}
	if err := b.h.store.CloseCase(ctx, id, user, time.Now().Add(grace).UnixNano()); err != nil {
		return api.Case{}, caseErr(err)
	}
	return b.Case(ctx, id)
}

// RequestPull asks for a case's footage at the hub (api.CaseAdmin).
func (b *backend) RequestPull(ctx context.Context, id, user string) (api.Case, error) {
	if err := b.h.store.RequestPull(ctx, id, user); err != nil {
		return api.Case{}, caseErr(err)
	}
	b.h.pokeCases()
	return b.Case(ctx, id)
}

// CaseViewed notes that a person looked at a case (api.CaseAdmin): a
// citizen report then counts as looked at.
func (b *backend) CaseViewed(ctx context.Context, id, user string) {
	rt := b.h.caseRuntime()
	rt.mu.Lock()
	done := rt.viewed[id]
	rt.mu.Unlock()
	if done {
		return
	}
	sc, err := b.h.store.Case(id)
	if err != nil || sc.GetReport() == nil || sc.GetReport().GetViewedUnixNano() != 0 {
		return
	}
	if err := b.h.store.UpdateReport(ctx, &rondav1.CaseReportUpdate{CaseId: id, ViewedUnixNano: time.Now().UnixNano(), ViewedBy: user}); err != nil {
		b.h.log.Warn("could not record that a report was looked at", "case", id, "err", err)
		return
	}
	rt.mu.Lock()
	rt.viewed[id] = true
	rt.mu.Unlock()
	b.h.pokeCases()
}

// SubmitReport opens a case for a citizen report (api.ReportStore):
// the cameras within the category's radius of the spot with footage in
// the incident window, held until the 6-day deadline.
func (b *backend) SubmitReport(ctx context.Context, req api.ReportRequest, client string) (api.ReportStatus, bool, error) {
	if sc, err := b.h.store.CaseOfReport(req.ID); err == nil {
		return b.reportStatus(sc), false, nil
	}
	radius := b.h.reportRadius(req.Category)
	q := api.CaseQuery{Lat: req.Location.Lat, Lon: req.Location.Lon, RadiusM: radius, From: req.IncidentFrom, To: req.IncidentTo}
	items, err := b.caseCandidates(q)
	if err != nil {
		return api.ReportStatus{}, false, err
	}
	now := time.Now()
	sc := &rondav1.StoredCase{Id: newCaseID(now), Reason: "report " + req.ID + " (" + req.Category + ")", Owner: "report-client:" + client,
		DeadlineUnixNano: req.ReportedAt.Add(ReportDeadline).UnixNano(),
		Query:            &rondav1.CaseQuery{Lat: q.Lat, Lon: q.Lon, RadiusM: radius, FromUnixNano: q.From.UnixNano(), ToUnixNano: q.To.UnixNano()},
		Report: &rondav1.StoredReport{Id: req.ID, Category: req.Category, Text: req.Text, Lat: req.Location.Lat, Lon: req.Location.Lon,
			ReportedUnixNano: req.ReportedAt.UnixNano(), IncidentFromUnixNano: req.IncidentFrom.UnixNano(), IncidentToUnixNano: req.IncidentTo.UnixNano(),
			CallbackUrl: req.CallbackURL, SubmittedBy: client, RadiusM: radius},
		Items: items}
	for i, it := range sc.Items {
		it.Id = fmt.Sprintf("i%d", i+1)
		it.Pull = &rondav1.PullStatus{State: api.PullNone}
	}
	got, created, err := b.h.store.CreateCase(ctx, sc)
	if err != nil {
		return api.ReportStatus{}, false, caseErr(err)
	}
	b.h.pokeCases()
	return b.reportStatus(got), created, nil
}

// Report answers GET /api/v1/reports/{id} (api.ReportStore).
func (b *backend) Report(ctx context.Context, id string) (api.ReportStatus, error) {
	sc, err := b.h.store.CaseOfReport(id)
	if err != nil {
		return api.ReportStatus{}, fmt.Errorf("%w: no report %q has been received; POST it to /api/v1/reports", api.ErrNotFound, id)
	}
	return b.reportStatus(sc), nil
}

func (b *backend) reportStatus(sc *rondav1.StoredCase) api.ReportStatus {
	r := sc.GetReport()
	t := func(ns int64) *time.Time {
		if ns == 0 {
			return nil
		}
		v := time.Unix(0, ns).UTC()
		return &v
	}
	st := api.ReportStatus{ID: r.GetId(), CaseID: sc.GetId(), Category: r.GetCategory(), Received: time.Unix(0, sc.GetCreatedUnixNano()).UTC(),
		Deadline: time.Unix(0, sc.GetDeadlineUnixNano()).UTC(), RadiusM: r.GetRadiusM(), Cameras: []api.ReportCamera{},
		Viewed: t(r.GetViewedUnixNano()), ViewedBy: r.GetViewedBy(), Alerted: t(r.GetAlertedUnixNano())}
	pending := 0
	for _, it := range sc.GetItems() {
		rc := api.ReportCamera{Camera: it.GetCameraId(), NodeID: it.GetNodeId(), DistanceM: math.Round(it.GetDistanceM())}
		if sh, err := b.h.store.Hold(it.GetCameraId(), it.GetHoldId()); err == nil {
			rc.HoldState = sh.GetState()
		}
		if rc.HoldState == store.HoldPending {
			pending++
		}
		st.Cameras = append(st.Cameras, rc)
	}
	switch {
	case sc.GetStatus() == store.CaseClosed:
		st.Status = api.ReportClosed
	case r.GetViewedUnixNano() != 0:
		st.Status = api.ReportViewed
	case len(st.Cameras) == 0:
		st.Status = api.ReportNoCameras
	case pending > 0:
		st.Status = api.ReportHoldsPending
	default:
		st.Status = api.ReportHolding
	}
	return st
}

func (h *Hub) reportRadius(category string) float64 {
	if r, ok := h.cfg.Reports.RadiusM[strings.ToLower(category)]; ok && r > 0 {
		return r
	}
	if r, ok := h.cfg.Reports.RadiusM["default"]; ok && r > 0 {
		return r
	}
	return 150
}

// pokeCases wakes the case loop.
func (h *Hub) pokeCases() {
	select {
	case h.casePoke <- struct{}{}:
	default:
	}
}

// runCases is the leader's case loop (every member runs it; only the
// leader acts).
func (h *Hub) runCases(ctx context.Context) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-h.casePoke:
		}
		if !h.store.IsLeader() {
			h.pullStepDown()
			continue
		}
		h.caseTick(ctx)
	}
}

func (h *Hub) caseTick(ctx context.Context) {
	now := time.Now()
	alertBefore := h.cfg.Reports.AlertBefore
	if alertBefore <= 0 {
		alertBefore = 24 * time.Hour
	}
	b := &backend{h: h}
	for _, sc := range h.store.Cases() {
		id := sc.GetId()
		if sc.GetStatus() == store.CaseClosed && !sc.GetHoldsReleased() && now.UnixNano() >= sc.GetReleaseAfterUnixNano() {
			if err := h.store.ReleaseCaseHolds(ctx, id); err != nil {
				h.log.Warn("releasing a closed case's holds", "case", id, "err", err)
			} else {
				h.audit.add(api.AuditEvent{Time: now, User: "hub", Action: "case-release " + id, Reason: sc.GetReason(), Outcome: "ok"})
			}
		}
		r := sc.GetReport()
		if r == nil {
			continue
		}
		deadline := time.Unix(0, sc.GetDeadlineUnixNano())
		if sc.GetStatus() == store.CaseOpen && r.GetViewedUnixNano() == 0 && r.GetAlertedUnixNano() == 0 && deadline.Sub(now) < alertBefore {
			h.log.Warn("a citizen report's deadline nears and nobody has looked at its footage", "report", r.GetId(), "case", id, "deadline", deadline.UTC())
			h.audit.add(api.AuditEvent{Time: now, User: "hub", Action: "report-alert " + r.GetId(), Reason: id,
				Outcome: fmt.Sprintf("ok: deadline %s, nobody has looked at the footage", deadline.UTC().Format(time.RFC3339))})
			if err := h.store.UpdateReport(ctx, &rondav1.CaseReportUpdate{CaseId: id, AlertedUnixNano: now.UnixNano()}); err != nil {
				h.log.Warn("recording a report alert", "case", id, "err", err)
			}
		}
		if r.GetCallbackUrl() != "" {
			st := b.reportStatus(sc)
			key := st.Status + "@" + fmt.Sprint(st.Alerted != nil)
			if key != r.GetCallbackAcked() {
				h.callback(ctx, sc, st, key)
			}
		}
	}
	h.pullTick(ctx, now)
}

// callback tells the complaint system what changed, with backoff.
func (h *Hub) callback(ctx context.Context, sc *rondav1.StoredCase, st api.ReportStatus, key string) {
	rt := h.caseRuntime()
	rid := sc.GetReport().GetId()
	rt.mu.Lock()
	next := rt.callbacks[rid+"@"+key]
	rt.mu.Unlock()
	if time.Now().Before(next) {
		return
	}
	body, _ := json.Marshal(st)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, sc.GetReport().GetCallbackUrl(), bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		var resp *http.Response
		if resp, err = http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				err = fmt.Errorf("the callback answered %s", resp.Status)
			}
		}
	}
	if err != nil {
		rt.mu.Lock()
		wait := 10 * time.Second
		if prev, ok := rt.callbacks[rid+"@"+key]; ok && !prev.IsZero() {
			wait = min(10*time.Minute, 2*time.Until(prev)+10*time.Second)
		}
		rt.callbacks[rid+"@"+key] = time.Now().Add(wait)
		rt.mu.Unlock()
		h.log.Warn("report callback failed; will retry", "report", rid, "url", sc.GetReport().GetCallbackUrl(), "err", err)
		return
	}
	if err := h.store.UpdateReport(ctx, &rondav1.CaseReportUpdate{CaseId: sc.GetId(), CallbackAcked: key}); err != nil {
		h.log.Warn("recording a report callback", "report", rid, "err", err)
	}
}

// reportClients reads reports.clients.
func (c *Config) reportClients() ([]api.ReportClient, error) {
	var out []api.ReportClient
	for i, rc := range c.Reports.Clients {
		raw, err := hex.DecodeString(rc.TokenSHA256)
		if err != nil || len(raw) != 32 || rc.Name == "" {
			return nil, fmt.Errorf("hub.yaml reports.clients[%d]: give a 'name' and the 'token_sha256' (64 hex digits: sha256sum of the client's token)", i)
		}
		out = append(out, api.ReportClient{Name: rc.Name, TokenSHA256: [32]byte(raw)})
	}
	return out, nil
}
