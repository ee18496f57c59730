package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ronda-jakarta/ronda/auth"
)

// MaxCaseItems bounds one case.
const MaxCaseItems = 500

// DefaultCaseDeadline is a case's deadline when none is given: a citizen
// report must be answered within 6 days.
const DefaultCaseDeadline = 6 * 24 * time.Hour

// ReportClient is a system allowed to post citizen reports: its name and
// the SHA-256 of its bearer token.
type ReportClient struct {
	Name        string
	TokenSHA256 [32]byte
}

func (s *Server) caseAdmin() (CaseAdmin, error) {
	ca, ok := s.opts.Backend.(CaseAdmin)
	if !ok {
		by, _ := s.opts.Backend.Identity()
		return nil, fmt.Errorf("%w: evidence cases are kept by the hub, not this %s (POST /api/v1/cases at a hub member)", ErrNotFound, by)
	}
	return ca, nil
}

// seesCase: a city-wide user sees every case; a scoped one the cases with
// at least one camera in scope.
func (s *Server) seesCase(r *http.Request, c Case) bool {
	p := userOf(r.Context())
	if p.CityWide() {
		return true
	}
	for _, it := range c.Items {
		if p.SeesCamera(it.Camera, it.Kelurahan) {
			return true
		}
	}
	return false
}

func (s *Server) createCase(w http.ResponseWriter, r *http.Request) {
	var req CaseRequest
	ca, err := s.caseAdmin()
	if err == nil {
		if derr := json.NewDecoder(io.LimitReader(r.Body, 256<<10)).Decode(&req); derr != nil {
			err = fmt.Errorf("%w: send JSON {\"reason\", \"deadline\"?, \"items\"?: [{\"camera\", \"from\", \"to\"}], \"query\"?: {\"lat\", \"lon\", \"radius_m\" | \"area\", \"from\", \"to\"}, \"pull\"?}: %v", ErrBadRequest, derr)
		}
	}
	if err == nil {
		err = validCaseRequest(req, s.opts.Now())
	}
	if err == nil {
		// The case's reason is the reason an auditor must give.
		err = s.allow(r, auth.ActCase, "", time.Time{}, req.Reason)
	}
	if err == nil {
		for _, it := range req.Items {
			if err = s.allow(r, auth.ActHold, it.Camera, it.From, req.Reason); err != nil {
				break
			}
		}
	}
	var c Case
	created := false
	if err == nil {
		c, created, err = ca.CreateCase(r.Context(), req, userOf(r.Context()).User)
	}
	if err == nil && !userOf(r.Context()).CityWide() {
		// A scoped user's query may only reach its own cameras.
		for _, it := range c.Items {
			if !userOf(r.Context()).SeesCamera(it.Camera, it.Kelurahan) {
				err = fmt.Errorf("%w: the case reaches camera %s, outside %s's scope; narrow the place or the area", ErrForbidden, it.Camera, userOf(r.Context()).User)
				break
			}
		}
	}
	s.audit(r, "case-create "+c.ID, "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	writeJSON(w, status, c)
}

func validCaseRequest(req CaseRequest, now time.Time) error {
	var problems []string
	if strings.TrimSpace(req.Reason) == "" {
		problems = append(problems, "'reason' is required: say why (a case, report or police request number)")
	}
	if len(req.Items) == 0 && req.Query == nil {
		problems = append(problems, "give 'items' (cameras and ranges) or a 'query' (a place or an area, and a time range)")
	}
	if len(req.Items) > MaxCaseItems {
		problems = append(problems, fmt.Sprintf("at most %d items in one case", MaxCaseItems))
	}
	for i, it := range req.Items {
		switch {
		case it.Camera == "":
			problems = append(problems, fmt.Sprintf("items[%d]: 'camera' is required", i))
		case it.From.IsZero() || it.To.IsZero() || !it.To.After(it.From):
			problems = append(problems, fmt.Sprintf("items[%d]: 'from' and 'to' are required RFC 3339 times with to after from", i))
		case it.To.Sub(it.From) > MaxHoldRange:
			problems = append(problems, fmt.Sprintf("items[%d]: a range covers at most %s; split it", i, MaxHoldRange))
		}
	}
	if q := req.Query; q != nil {
		switch {
		case q.From.IsZero() || q.To.IsZero() || !q.To.After(q.From):
			problems = append(problems, "query: 'from' and 'to' are required RFC 3339 times with to after from")
		case q.To.Sub(q.From) > MaxHoldRange:
			problems = append(problems, fmt.Sprintf("query: the time range covers at most %s", MaxHoldRange))
		}
		place := q.RadiusM > 0
		if place && (q.Lat < -90 || q.Lat > 90 || q.Lon < -180 || q.Lon > 180 || q.RadiusM > 5000 || math.IsNaN(q.Lat+q.Lon+q.RadiusM)) {
			problems = append(problems, "query: 'lat'/'lon' must be a place and 'radius_m' at most 5000")
		}
		if !place && q.Area == "" {
			problems = append(problems, "query: give a place ('lat', 'lon', 'radius_m') or an 'area' code")
		}
	}
	if !req.Deadline.IsZero() && !req.Deadline.After(now) {
		problems = append(problems, "'deadline' is already past")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrBadRequest, strings.Join(problems, "; "))
	}
	return nil
}

func (s *Server) cases(w http.ResponseWriter, r *http.Request) {
	ca, err := s.caseAdmin()
	var all []Case
	if err == nil {
		all, err = ca.Cases(r.Context())
	}
	if err != nil {
		writeError(w, err)
		return
	}
	out := []Case{}
	report := r.URL.Query().Get("report")
	for _, c := range all {
		if s.seesCase(r, c) && (report == "" || c.Report == report) {
			out = append(out, c)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"cases": out})
}

// oneCase finds a case the caller may see. A scoped user gets 403 for a
// case outside its scope whether or not it exists (ids are not probed),
// and the refusal is audited.
func (s *Server) oneCase(r *http.Request) (CaseAdmin, Case, error) {
	ca, err := s.caseAdmin()
	if err != nil {
		return nil, Case{}, err
	}
	p := userOf(r.Context())
	c, err := ca.Case(r.Context(), r.PathValue("id"))
	if !p.CityWide() && (errors.Is(err, ErrNotFound) || err == nil && !s.seesCase(r, c)) {
		err = fmt.Errorf("%w: %s (role %s) may not case: case %q is not among the cases of the user's scope (%s)", ErrForbidden, p.User, p.Role, r.PathValue("id"), p.Scope)
		s.opts.Audit(AuditEvent{Time: s.opts.Now(), User: p.User, Action: string(auth.ActCase), Remote: r.RemoteAddr, Reason: r.PathValue("id"), Outcome: "denied: " + err.Error()})
	}
	return ca, c, err
}

func (s *Server) getCase(w http.ResponseWriter, r *http.Request) {
	ca, c, err := s.oneCase(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ca.CaseViewed(r.Context(), c.ID, userOf(r.Context()).User)
	writeJSON(w, http.StatusOK, c)
}

// caseChange applies a change to a case the caller may see (close, pull)
// and audits it as "case-NAME ID".
func (s *Server) caseChange(name string, status int, change func(CaseAdmin, *http.Request, string) (Case, error)) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		ca, c, err := s.oneCase(r)
		if err == nil {
			c, err = change(ca, r, c.ID)
		}
		s.audit(r, "case-"+name+" "+r.PathValue("id"), "", time.Time{}, time.Time{}, err)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, status, c)
	}
}

type bundleWriter struct {
	w       http.ResponseWriter
	started bool
}

func (b *bundleWriter) SetName(name string) {
	b.w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
}

func (b *bundleWriter) Write(p []byte) (int, error) {
	if !b.started {
		b.started = true
		b.w.Header().Set("Content-Type", "application/zip")
		b.w.Header().Set("Cache-Control", "no-store")
		b.w.WriteHeader(http.StatusOK)
	}
	return b.w.Write(p)
}

func (s *Server) caseBundle(w http.ResponseWriter, r *http.Request) {
	ca, c, err := s.oneCase(r)
	bw := &bundleWriter{w: w}
	if err == nil {
		err = ca.Bundle(r.Context(), c.ID, userOf(r.Context()).User, bw)
	}
	s.audit(r, "case-download "+r.PathValue("id"), "", time.Time{}, time.Time{}, err)
	if err != nil {
		if bw.started {
			s.opts.Logger.Warn("case bundle broke off", "case", r.PathValue("id"), "err", err)
			return
		}
		writeError(w, err)
	}
}

// reportClient checks the complaint system's own credential.
func (s *Server) reportClient(r *http.Request) (string, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", fmt.Errorf("%w: reports are posted with the complaint system's own token (Authorization: Bearer …), not a person's login", ErrUnauthorized)
	}
	sum := sha256.Sum256([]byte(tok))
	for _, c := range s.opts.ReportClients {
		if subtle.ConstantTimeCompare(sum[:], c.TokenSHA256[:]) == 1 {
			return c.Name, nil
		}
	}
	return "", fmt.Errorf("%w: this token is not a report client's (hub.yaml reports.clients); a person's login cannot post reports", ErrUnauthorized)
}

func (s *Server) reportStore() (ReportStore, error) {
	rs, ok := s.opts.Backend.(ReportStore)
	if !ok {
		by, _ := s.opts.Backend.Identity()
		return nil, fmt.Errorf("%w: citizen reports go to the hub, not this %s", ErrNotFound, by)
	}
	return rs, nil
}

func (s *Server) postReport(w http.ResponseWriter, r *http.Request) {
	client, err := s.reportClient(r)
	var req ReportRequest
	var rs ReportStore
	if err == nil {
		rs, err = s.reportStore()
	}
	if err == nil {
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if derr := dec.Decode(&req); derr != nil {
			err = fmt.Errorf("%w: send JSON {\"id\", \"category\", \"text\", \"location\": {\"lat\", \"lon\"}, \"reported_at\", \"incident_from\", \"incident_to\" (RFC 3339), \"callback_url\"?}: %v", ErrBadRequest, derr)
		}
	}
	if err == nil {
		err = validReport(req, s.opts.Now())
	}
	var st ReportStatus
	created := false
	if err == nil {
		st, created, err = rs.SubmitReport(r.Context(), req, client)
	}
	s.opts.Audit(AuditEvent{Time: s.opts.Now(), User: "report-client:" + client, Action: "report " + req.ID, Remote: r.RemoteAddr,
		Reason: req.ID, Outcome: reportOutcome(err, st.CaseID)})
	if err != nil {
		writeError(w, err)
		return
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	writeJSON(w, status, st)
}

func reportOutcome(err error, caseID string) string {
	if err != nil {
		return outcomeOfErr(err)
	}
	return "ok case=" + caseID
}

func validReport(req ReportRequest, now time.Time) error {
	var problems []string
	if validReportID(req.ID) != nil {
		problems = append(problems, "'id' is required: the complaint system's report number (letters, digits, '-', '_', '.'; at most 64)")
	}
	if strings.TrimSpace(req.Category) == "" {
		problems = append(problems, "'category' is required")
	}
	if len(req.Text) > 4000 {
		problems = append(problems, "'text' is at most 4000 characters")
	}
	if req.Location.Lat == 0 && req.Location.Lon == 0 || req.Location.Lat < -90 || req.Location.Lat > 90 || req.Location.Lon < -180 || req.Location.Lon > 180 {
		problems = append(problems, "'location' needs the spot's 'lat' and 'lon'")
	}
	switch {
	case req.IncidentFrom.IsZero() || req.IncidentTo.IsZero() || !req.IncidentTo.After(req.IncidentFrom):
		problems = append(problems, "'incident_from' and 'incident_to' are required RFC 3339 times with to after from")
	case req.IncidentTo.Sub(req.IncidentFrom) > 24*time.Hour:
		problems = append(problems, "the incident window is at most 24 h")
	case req.IncidentFrom.After(now.Add(time.Minute)):
		problems = append(problems, "the incident window starts in the future")
	}
	if req.ReportedAt.IsZero() {
		problems = append(problems, "'reported_at' is required (RFC 3339): the 6-day deadline counts from it")
	}
	if req.CallbackURL != "" {
		u, err := url.Parse(req.CallbackURL)
		loopback := err == nil && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost" || u.Hostname() == "::1")
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopback)) {
			problems = append(problems, "'callback_url' must be an https URL")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: report %q: %s", ErrBadRequest, req.ID, strings.Join(problems, "; "))
	}
	return nil
}

func validReportID(id string) error {
	if id == "" || len(id) > 64 {
		return errors.New("bad length")
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return errors.New("bad character")
		}
	}
	return nil
}

func (s *Server) getReport(w http.ResponseWriter, r *http.Request) {
	_, err := s.reportClient(r)
	var rs ReportStore
	if err == nil {
		rs, err = s.reportStore()
	}
	var st ReportStatus
	if err == nil {
		st, err = rs.Report(r.Context(), r.PathValue("id"))
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// ReportTokenHash is a report client's token as hub.yaml keeps it (hex SHA-256).
func ReportTokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// RetentionResult answers POST /api/v1/retention/run.
type RetentionResult struct {
	OlderThan string    `json:"older_than"`
	Horizon   time.Time `json:"horizon"`
	Deleted   int       `json:"deleted_segments"`
	HeldKept  int       `json:"held_segments_kept"`
}

// RetentionRunner is implemented by nodes.
type RetentionRunner interface {
	RunRetention(ctx context.Context, olderThan time.Duration) (RetentionResult, error)
}

// runRetention deletes unheld footage older than a limit at once (a node
// admin freeing space; held footage always stays).
func (s *Server) runRetention(w http.ResponseWriter, r *http.Request) {
	var req struct {
		OlderThan string `json:"older_than"`
	}
	var d time.Duration
	rr, ok := s.opts.Backend.(RetentionRunner)
	var err error
	if !ok {
		by, _ := s.opts.Backend.Identity()
		err = fmt.Errorf("%w: retention runs at the node that records the footage, not this %s", ErrNotFound, by)
	} else if derr := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&req); derr != nil {
		err = fmt.Errorf("%w: send JSON {\"older_than\": \"24h\"}: %v", ErrBadRequest, derr)
	} else if d, err = time.ParseDuration(req.OlderThan); err != nil || d < 30*time.Second {
		err = fmt.Errorf("%w: older_than %q: a duration of at least 30s (footage still being written is never touched)", ErrBadRequest, req.OlderThan)
	}
	var res RetentionResult
	if err == nil {
		res, err = rr.RunRetention(r.Context(), d)
	}
	s.audit(r, "retention-run older_than="+req.OlderThan, "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
