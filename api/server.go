package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/ronda-jakarta/ronda/auth"
)

// MaxPlaybackRange bounds one media.mp4 request; longer ranges are exports.
const MaxPlaybackRange = 6 * time.Hour

// AuditEvent is one audited API action.
type AuditEvent struct {
	Time     time.Time
	User     string
	Action   string // login, live, playback, recordings, ...
	CameraID string
	From, To time.Time
	Remote   string
	Reason   string // why, when the caller gave one (an auditor's case number)
	Outcome  string // ok | denied | error: ...
}

// Options configure a Server.
type Options struct {
	Backend  Backend
	Auth     Authenticator
	UI       http.Handler // served at / (may be nil)
	Registry *prometheus.Registry
	Logger   *slog.Logger
	Audit    func(AuditEvent) // nil: audit events go to the log
	Now      func() time.Time
	// ReportClients may post citizen reports (POST /api/v1/reports) with
	// their own tokens (hub).
	ReportClients []ReportClient
}

// Server is the HTTP API.
type Server struct {
	opts     Options
	mux      *http.ServeMux
	requests *prometheus.CounterVec
	routes   []Route

	// The last GET /api/v1/audit/verify answer (AuditVerifyCache).
	verifyMu   sync.Mutex
	verifyAt   time.Time
	verifyBody any
}

// Route is an API call and its action in the authorisation table ("" for
// the calls that take no login).
type Route struct {
	Pattern string
	Action  auth.Action
}

// Routes lists every API call the server answers.
func (s *Server) Routes() []Route { return s.routes }

// New builds the API handler.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Audit == nil {
		l := opts.Logger
		opts.Audit = func(e AuditEvent) {
			l.Info("audit", "user", e.User, "action", e.Action, "camera", e.CameraID, "from", e.From, "to", e.To, "remote", e.Remote, "outcome", e.Outcome)
		}
	}
	s := &Server{opts: opts, mux: http.NewServeMux()}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ronda_api_requests_total", Help: "API requests by route and status class.",
	}, []string{"route", "code"})
	opts.Registry.MustRegister(s.requests)

	s.handle("POST /api/v1/login", "", s.login)
	s.handle("POST /api/v1/logout", auth.ActMe, s.logout)
	s.handle("POST /api/v1/token", auth.ActTokenRefresh, s.refresh)
	s.handle("GET /api/v1/me", auth.ActMe, s.me)
	s.handle("GET /api/v1/nodes", auth.ActList, s.nodes)
	s.handle("GET /api/v1/cameras", auth.ActList, s.cameras)
	s.handle("GET /api/v1/cameras/{id}", auth.ActCamera, s.camera)
	s.handle("GET /api/v1/cameras/{id}/recordings", auth.ActCamera, s.recordings)
	s.handle("GET /api/v1/cameras/{id}/media.mp4", auth.ActPlayback, s.media)
	s.handle("GET /api/v1/cameras/{id}/completeness", auth.ActCamera, s.completeness)
	s.handle("POST /api/v1/cameras/{id}/whep", auth.ActLive, s.whep)
	s.handle("PATCH /api/v1/whep/{session}", auth.ActLive, s.whepPatch)
	s.handle("GET /api/v1/whep/{session}", auth.ActLive, s.whepSession)
	s.handle("DELETE /api/v1/whep/{session}", auth.ActLive, s.whepDelete)
	s.handle("GET /api/v1/live/ice-servers", auth.ActLive, s.iceServers)
	s.handle("GET /api/v1/holds", auth.ActHoldsRead, s.allHolds)
	s.handle("GET /api/v1/cameras/{id}/holds", auth.ActHoldsRead, s.holds)
	s.handle("POST /api/v1/cameras/{id}/holds", auth.ActHold, s.putHold)
	s.handle("DELETE /api/v1/cameras/{id}/holds/{hold}", auth.ActHold, s.deleteHold)
	s.handle("GET /api/v1/cluster", auth.ActCluster, s.cluster)
	s.handle("GET /api/v1/cluster/backup", auth.ActClusterAdmin, s.backup)
	s.handle("POST /api/v1/enrollment/tokens", auth.ActEnroll, s.joinToken)
	s.handle("POST /api/v1/enroll", "", s.enroll) // the token is the credential
	s.handle("GET /api/v1/revocations", auth.ActRevocations, s.revocations)
	s.handle("POST /api/v1/revocations", auth.ActRevocations, s.revoke)
	s.handle("DELETE /api/v1/revocations", auth.ActRevocations, s.liftRevocation)
	s.handle("GET /api/v1/cluster/members", auth.ActCluster, s.members)
	s.handle("POST /api/v1/cluster/members", auth.ActClusterAdmin, s.join)
	s.handle("DELETE /api/v1/cluster/members/{id}", auth.ActClusterAdmin, s.removeMember)
	s.handle("POST /api/v1/cluster/leader", auth.ActClusterAdmin, s.transferLeader)
	s.handle("GET /api/v1/audit", auth.ActAuditRead, s.auditLog)
	s.handle("GET /api/v1/audit/verify", auth.ActAuditRead, s.auditVerify)
	s.handle("GET /api/v1/audit/checkpoints", auth.ActAuditRead, s.auditCheckpoints)
	s.handle("GET /api/v1/audit/leaves", auth.ActAuditRead, s.auditLeaves)
	s.handle("GET /api/v1/audit/proof/inclusion", auth.ActAuditRead, s.auditProof(false))
	s.handle("GET /api/v1/audit/proof/consistency", auth.ActAuditRead, s.auditProof(true))
	s.handle("GET /api/v1/audit/proof/export", auth.ActAuditRead, s.exportProof)
	s.handle("GET /api/v1/search", auth.ActList, s.search)
	s.handle("GET /api/v1/areas", auth.ActAreas, s.areas)
	s.handle("POST /api/v1/exports", auth.ActExport, s.createExport)
	s.handle("GET /api/v1/exports", auth.ActExportsRead, s.exports)
	s.handle("GET /api/v1/exports/{id}/file.mp4", auth.ActExportsRead, s.exportPart("file"))
	s.handle("GET /api/v1/exports/{id}/manifest.json", auth.ActExportsRead, s.exportPart("manifest"))
	s.handle("GET /api/v1/exports/{id}/verify", auth.ActExportsRead, s.verifyExport)
	s.handle("POST /api/v1/cases", auth.ActCase, s.createCase)
	s.handle("GET /api/v1/cases", auth.ActCase, s.cases)
	s.handle("GET /api/v1/cases/{id}", auth.ActCase, s.getCase)
	s.handle("POST /api/v1/cases/{id}/close", auth.ActCase, s.caseChange("close", http.StatusOK, func(ca CaseAdmin, r *http.Request, id string) (Case, error) {
		return ca.CloseCase(r.Context(), id, userOf(r.Context()).User)
	}))
	s.handle("POST /api/v1/cases/{id}/pull", auth.ActCase, s.caseChange("pull", http.StatusAccepted, func(ca CaseAdmin, r *http.Request, id string) (Case, error) {
		return ca.RequestPull(r.Context(), id, userOf(r.Context()).User)
	}))
	s.handle("GET /api/v1/cases/{id}/bundle", auth.ActCase, s.caseBundle)
	s.handle("POST /api/v1/retention/run", auth.ActRetention, s.runRetention)
	s.handle("POST /api/v1/reports", "", s.postReport) // the complaint system's own token
	s.handle("GET /api/v1/reports/{id}", "", s.getReport)
	s.handle("GET /api/v1/users", auth.ActUsers, s.users)
	s.handle("POST /api/v1/users", auth.ActUsers, s.createUser)
	s.handle("GET /api/v1/users/{name}", auth.ActUsers, s.user)
	s.handle("PATCH /api/v1/users/{name}", auth.ActUsers, s.patchUser)
	s.handle("DELETE /api/v1/users/{name}", auth.ActUsers, s.deleteUser)
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, fmt.Errorf("%w: no API call %s %s; see docs/api.md", ErrNotFound, r.Method, r.URL.Path))
	})
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{}))
	if opts.UI != nil {
		s.mux.Handle("/", opts.UI)
	}
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

type ctxKey struct{}

func userOf(ctx context.Context) auth.Principal {
	p, _ := ctx.Value(ctxKey{}).(auth.Principal)
	return p
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// catalogRead reports whether a route reads the hub's replicated catalog
// (and so takes ?consistency=stale|default|linearizable).
func catalogRead(pattern string) bool {
	switch pattern {
	case "GET /api/v1/nodes", "GET /api/v1/cameras", "GET /api/v1/cameras/{id}",
		"GET /api/v1/cameras/{id}/recordings", "GET /api/v1/search", "GET /api/v1/areas", "GET /api/v1/audit",
		"GET /api/v1/audit/checkpoints", "GET /api/v1/audit/leaves", "GET /api/v1/audit/proof/inclusion", "GET /api/v1/audit/proof/consistency",
		"GET /api/v1/cases", "GET /api/v1/cases/{id}", "GET /api/v1/reports/{id}":
		return true
	}
	return false
}

// handle registers a route. act is the route's action in the authorisation
// table (auth.Authorize); "" for the calls that take no login. A camera
// route ({id}) is checked against the camera's kelurahan before the handler
// runs; a refusal is audited.
func (s *Server) handle(pattern string, act auth.Action, h func(http.ResponseWriter, *http.Request)) {
	route := pattern
	s.routes = append(s.routes, Route{Pattern: pattern, Action: act})
	cameraRoute := strings.Contains(pattern, "/cameras/{id}")
	reasonInBody := strings.HasPrefix(pattern, "POST ") && (act == auth.ActHold || act == auth.ActExport || pattern == "POST /api/v1/cases")
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		defer func() { s.requests.WithLabelValues(route, fmt.Sprintf("%dxx", rec.code/100)).Inc() }()
		if act != "" {
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || tok == "" {
				writeError(rec, fmt.Errorf("%w: log in first (POST /api/v1/login) and send 'Authorization: Bearer TOKEN'", ErrUnauthorized))
				return
			}
			c, err := s.opts.Auth.Verify(tok)
			if err != nil {
				writeError(rec, fmt.Errorf("%w: %v", ErrUnauthorized, err))
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, c.Principal()))
			camera := ""
			if cameraRoute {
				camera = r.PathValue("id")
			}
			var from time.Time
			if act == auth.ActPlayback {
				from, _ = time.Parse(time.RFC3339Nano, r.URL.Query().Get("from"))
			}
			reason := reasonOf(r)
			if reasonInBody {
				reason = "(in the body: required of everyone)"
			}
			if err := s.allow(r, act, camera, from, reason); err != nil {
				writeError(rec, err)
				return
			}
		}
		if cr, ok := s.opts.Backend.(ConsistentReader); ok && catalogRead(pattern) {
			level, err := cr.ReadBarrier(r.Context(), r.URL.Query().Get("consistency"))
			if err != nil {
				writeError(rec, err)
				return
			}
			rec.Header().Set("X-Ronda-Read-Consistency", level)
		}
		h(rec, r)
	})
}

// reasonOf is the reason a caller gives for a playback or another audited
// read: ?reason= or the X-Ronda-Reason header.
func reasonOf(r *http.Request) string {
	if v := r.URL.Query().Get("reason"); v != "" {
		return v
	}
	return r.Header.Get("X-Ronda-Reason")
}

// allow runs the authorisation table for the caller; a camera is located
// first (its kelurahan decides). A refusal is audited and returned as
// ErrForbidden with what the user may do instead.
func (s *Server) allow(r *http.Request, act auth.Action, camera string, from time.Time, reason string) error {
	p := userOf(r.Context())
	by, _ := s.opts.Backend.Identity()
	t := auth.Target{Camera: camera, From: from, Reason: reason, Now: s.opts.Now(), AtNode: by == "node"}
	var err error
	if camera != "" && !p.CityWide() { // city-wide roles need no location
		t.Kelurahan, err = s.locate(r.Context(), camera)
		if errors.Is(err, ErrNotFound) && !p.CityWide() {
			// A scoped user learns nothing about cameras outside the scope.
			err = fmt.Errorf("%w: %s (role %s) may not %s: camera %s is not among the cameras this user may see (%s)", ErrForbidden, p.User, p.Role, act, camera, p.Scope)
		}
	} else if by == "node" {
		t.Kelurahan = s.nodeKelurahan(r.Context())
	}
	if err == nil {
		err = auth.Authorize(p, act, t)
		if errors.Is(err, auth.ErrForbidden) || errors.Is(err, auth.ErrReasonRequired) {
			err = fmt.Errorf("%w: %s", ErrForbidden, strings.TrimPrefix(err.Error(), auth.ErrForbidden.Error()+": "))
		}
	}
	if err != nil && errors.Is(err, ErrForbidden) {
		s.opts.Audit(AuditEvent{Time: s.opts.Now(), User: p.User, Action: string(act), CameraID: camera, From: from,
			Remote: r.RemoteAddr, Reason: reason, Outcome: "denied: " + err.Error()})
	}
	return err
}

// locate finds a camera's kelurahan.
func (s *Server) locate(ctx context.Context, camera string) (string, error) {
	if l, ok := s.opts.Backend.(CameraLocator); ok {
		return l.CameraKelurahan(ctx, camera)
	}
	cams, err := s.opts.Backend.Cameras(ctx)
	if err != nil {
		return "", err
	}
	for _, c := range cams {
		if c.ID == camera {
			return c.KelurahanCode, nil
		}
	}
	return "", fmt.Errorf("%w: no camera %q; GET /api/v1/cameras lists them", ErrNotFound, camera)
}

// nodeKelurahan is a node's own kelurahan (for its audit log's scope).
func (s *Server) nodeKelurahan(ctx context.Context) string {
	if l, ok := s.opts.Backend.(CameraLocator); ok {
		return l.OwnKelurahan()
	}
	return ""
}

func (s *Server) audit(r *http.Request, action, camera string, from, to time.Time, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error: " + err.Error()
		if errors.Is(err, ErrForbidden) || errors.Is(err, ErrUnauthorized) {
			outcome = "denied: " + err.Error()
		}
	}
	s.opts.Audit(AuditEvent{Time: s.opts.Now(), User: userOf(r.Context()).User, Action: action, CameraID: camera,
		From: from, To: to, Remote: r.RemoteAddr, Reason: reasonOf(r), Outcome: outcome})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		User     string `json:"user"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil || req.User == "" {
		writeError(w, fmt.Errorf("%w: send JSON {\"user\": \"...\", \"password\": \"...\"}", ErrBadRequest))
		return
	}
	tok, c, err := s.opts.Auth.Login(req.User, req.Password)
	s.opts.Audit(AuditEvent{Time: s.opts.Now(), User: req.User, Action: "login", Remote: r.RemoteAddr, Outcome: outcomeOf(err)})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "user": c.User, "role": c.Role, "scope": c.Scope, "expires": time.Unix(c.Expires, 0).UTC()})
}

// MaxAuditPage bounds one GET /api/v1/audit answer.
const MaxAuditPage = 10000

// auditLog lists audit events (city admins and auditors): ?node=ID&after=SEQ&limit=N,
// oldest first; or, with order=newest, newest first with filters (user,
// action prefix, camera, outcome ok|denied|error) and the cursor before=N.
func (s *Server) auditLog(w http.ResponseWriter, r *http.Request) {
	qv := r.URL.Query()
	q := AuditQuery{NodeID: qv.Get("node"), Limit: 1000}
	var err error
	al, ok := s.opts.Backend.(AuditLog)
	if !ok {
		err = fmt.Errorf("%w: this server keeps no audit log", ErrNotFound)
	}
	newest := false
	switch o := qv.Get("order"); o {
	case "", "oldest":
	case "newest":
		newest = true
	default:
		if err == nil {
			err = fmt.Errorf("%w: 'order' is newest (newest first, with filters and 'before') or left out (oldest first, paged with 'after'); got %q", ErrBadRequest, o)
		}
	}
	if v := qv.Get("after"); err == nil && v != "" {
		if newest {
			err = fmt.Errorf("%w: with order=newest page with 'before' (the answer's next_before), not 'after'", ErrBadRequest)
		} else if q.After, err = strconv.ParseUint(v, 10, 64); err != nil {
			err = fmt.Errorf("%w: 'after' must be an audit sequence number (got %q)", ErrBadRequest, v)
		}
	}
	if v := qv.Get("limit"); err == nil && v != "" {
		if q.Limit, err = strconv.Atoi(v); err != nil || q.Limit < 1 || q.Limit > MaxAuditPage {
			err = fmt.Errorf("%w: 'limit' must be 1..%d (got %q)", ErrBadRequest, MaxAuditPage, v)
		}
	}
	if err == nil {
		err = s.auditFilters(qv, newest, &q)
	}
	if err == nil && newest {
		s.auditNewest(w, r, q)
		return
	}
	var out []AuditRecord
	if err == nil {
		out, err = al.Audit(r.Context(), q)
	}
	s.audit(r, "audit-read", "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	if out == nil {
		out = []AuditRecord{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out})
}

// auditFilters reads order=newest's cursor and filters into q; without
// order=newest they are refused (the oldest-first listing takes none).
func (s *Server) auditFilters(qv url.Values, newest bool, q *AuditQuery) error {
	var given []string
	for _, name := range []string{"before", "user", "action", "camera", "outcome"} {
		if qv.Get(name) != "" {
			given = append(given, name)
		}
	}
	if !newest {
		if len(given) > 0 {
			return fmt.Errorf("%w: %s go with order=newest (newest first); the oldest-first listing pages with 'after' and takes no filters", ErrBadRequest, strings.Join(given, ", "))
		}
		return nil
	}
	if v := qv.Get("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return fmt.Errorf("%w: 'before' is the next_before of the previous page, a positive whole number (got %q)", ErrBadRequest, v)
		}
		q.Before = n
	}
	q.User, q.Action, q.Camera, q.Outcome = qv.Get("user"), qv.Get("action"), qv.Get("camera"), qv.Get("outcome")
	switch q.Outcome {
	case "", "ok", "denied", "error":
	default:
		return fmt.Errorf("%w: 'outcome' is ok, denied or error (got %q)", ErrBadRequest, q.Outcome)
	}
	q.MaxScan = MaxAuditScan
	return nil
}

// auditNewest answers order=newest: {"events", "next_before" (absent at the
// oldest record), "scanned"}.
func (s *Server) auditNewest(w http.ResponseWriter, r *http.Request, q AuditQuery) {
	var page AuditPage
	as, ok := s.opts.Backend.(AuditSearcher)
	var err error
	if !ok {
		by, _ := s.opts.Backend.Identity()
		err = fmt.Errorf("%w: this %s lists its audit log oldest first only; leave out 'order'", ErrNotFound, by)
	} else {
		page, err = as.AuditNewest(r.Context(), q)
	}
	s.audit(r, "audit-read", "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	if page.Events == nil {
		page.Events = []AuditRecord{}
	}
	out := map[string]any{"events": page.Events, "scanned": page.Scanned}
	if page.NextBefore != nil {
		out["next_before"] = *page.NextBefore
	}
	writeJSON(w, http.StatusOK, out)
}

// ExportOutcome is the outcome of an export's audit event: it names the
// export and its file's SHA-256.
func ExportOutcome(id, sha256 string) string {
	return "ok export=" + id + " file_sha256=" + sha256
}

func outcomeOf(err error) string {
	if err == nil {
		return "ok"
	}
	return "denied: " + err.Error()
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	p := userOf(r.Context())
	by, name := s.opts.Backend.Identity()
	// What the user may do at all here: any camera (a playback from now),
	// at a node in the node's kelurahan, as the calls themselves check.
	now := s.opts.Now()
	t := auth.Target{Now: now, From: now, AtNode: by == "node"}
	if t.AtNode {
		t.Kelurahan = s.nodeKelurahan(r.Context())
	}
	can, needs := auth.Capabilities(p, t)
	me := Me{User: p.User, Role: p.Role, Scope: p.Scope, ServedBy: by, Name: name, Can: []string{}, NeedsReason: []string{}}
	for _, a := range can {
		me.Can = append(me.Can, string(a))
	}
	for _, a := range needs {
		me.NeedsReason = append(me.NeedsReason, string(a))
	}
	writeJSON(w, http.StatusOK, me)
}

func (s *Server) nodes(w http.ResponseWriter, r *http.Request) {
	all, err := s.opts.Backend.Nodes(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	p := userOf(r.Context())
	nodes := []Node{}
	for _, n := range all {
		if p.SeesKelurahan(n.KelurahanCode) {
			nodes = append(nodes, n)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": nodes})
}

func (s *Server) cameras(w http.ResponseWriter, r *http.Request) {
	all, err := s.opts.Backend.Cameras(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	p := userOf(r.Context())
	cams := []Camera{}
	for _, c := range all {
		if p.SeesCamera(c.ID, c.KelurahanCode) {
			cams = append(cams, c)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"cameras": cams})
}

func (s *Server) camera(w http.ResponseWriter, r *http.Request) {
	cams, err := s.opts.Backend.Cameras(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	id := r.PathValue("id")
	for _, c := range cams {
		if c.ID == id {
			writeJSON(w, http.StatusOK, c)
			return
		}
	}
	writeError(w, fmt.Errorf("%w: no camera %q; GET /api/v1/cameras lists them", ErrNotFound, id))
}

// timeRange parses from/to (RFC 3339) and checks them.
func timeRange(r *http.Request, max time.Duration) (from, to time.Time, err error) {
	q := r.URL.Query()
	from, err = time.Parse(time.RFC3339Nano, q.Get("from"))
	if err != nil {
		return from, to, fmt.Errorf("%w: 'from' must be an RFC 3339 time like 2026-11-22T10:00:00Z (got %q)", ErrBadRequest, q.Get("from"))
	}
	to, err = time.Parse(time.RFC3339Nano, q.Get("to"))
	if err != nil {
		return from, to, fmt.Errorf("%w: 'to' must be an RFC 3339 time like 2026-11-22T10:05:00Z (got %q)", ErrBadRequest, q.Get("to"))
	}
	if !to.After(from) {
		return from, to, fmt.Errorf("%w: 'to' (%s) must be after 'from' (%s)", ErrBadRequest, q.Get("to"), q.Get("from"))
	}
	if max > 0 && to.Sub(from) > max {
		return from, to, fmt.Errorf("%w: range of %s is longer than %s; split it or use an export", ErrBadRequest, to.Sub(from), max)
	}
	return from, to, nil
}

func (s *Server) recordings(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	from, to, err := timeRange(r, 0)
	if err == nil {
		var rec Recordings
		rec, err = s.opts.Backend.Recordings(r.Context(), id, from, to)
		if err == nil {
			if rec.Spans == nil {
				rec.Spans = []Span{}
			}
			if rec.Gaps == nil {
				rec.Gaps = []Gap{}
			}
			writeJSON(w, http.StatusOK, rec)
			return
		}
	}
	writeError(w, err)
}

// firstWrite defers the response header until the backend writes its first
// byte, so an early error still becomes a JSON error.
type firstWrite struct {
	w       http.ResponseWriter
	started bool
}

// Header lets a backend set headers before its first byte (the hub passes
// on what the node said the file covers).
func (f *firstWrite) Header() http.Header { return f.w.Header() }

// SetPlaybackHeaders says what a playback file covers: X-Ronda-From is
// the wall time of the file's time 0.
func SetPlaybackHeaders(h http.Header, info PlaybackInfo) {
	h.Set("X-Ronda-From", info.From.UTC().Format(time.RFC3339Nano))
	h.Set("X-Ronda-To", info.To.UTC().Format(time.RFC3339Nano))
	h.Set("X-Ronda-Keyframe-From", info.KeyframeFrom.UTC().Format(time.RFC3339Nano))
	h.Set("X-Ronda-Gaps", strconv.Itoa(info.Gaps))
	if info.Truncated != "" {
		h.Set("X-Ronda-Truncated", info.Truncated)
	}
}

func (f *firstWrite) Write(b []byte) (int, error) {
	if !f.started {
		f.started = true
		f.w.Header().Set("Content-Type", "video/mp4")
		f.w.Header().Set("Cache-Control", "no-store")
		f.w.WriteHeader(http.StatusOK)
	}
	return f.w.Write(b)
}

func (s *Server) media(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	from, to, err := timeRange(r, MaxPlaybackRange)
	if err != nil {
		writeError(w, err)
		return
	}
	if rp, ok := s.opts.Backend.(RangePlayback); ok {
		m, err := rp.OpenPlayback(r.Context(), id, from, to, userOf(r.Context()).User)
		s.audit(r, "playback", id, from, to, err)
		if err != nil {
			writeError(w, err)
			return
		}
		defer m.Close()
		h := w.Header()
		h.Set("Content-Type", "video/mp4")
		h.Set("Cache-Control", "no-store")
		SetPlaybackHeaders(h, m.Info())
		http.ServeContent(w, r, "", time.Time{}, m)
		return
	}
	fw := &firstWrite{w: w}
	err = s.opts.Backend.Playback(r.Context(), fw, id, from, to, userOf(r.Context()).User)
	s.audit(r, "playback", id, from, to, err)
	if err != nil {
		if !fw.started {
			writeError(w, err)
			return
		}
		// Headers are gone; abort the connection so the client sees a broken
		// transfer rather than a silently short file.
		s.opts.Logger.Warn("playback aborted mid-stream", "camera", id, "err", err)
		panic(http.ErrAbortHandler)
	}
	if !fw.started {
		writeError(w, fmt.Errorf("%w: no footage of camera %s in that range", ErrNotFound, id))
	}
}

func (s *Server) whep(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/sdp") {
		writeError(w, fmt.Errorf("%w: WHEP needs Content-Type application/sdp (got %q)", ErrBadRequest, ct))
		return
	}
	offer, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil || len(offer) == 0 {
		writeError(w, fmt.Errorf("%w: empty SDP offer", ErrBadRequest))
		return
	}
	req := WhepOffer{CameraID: id, SDP: string(offer), User: userOf(r.Context()).User}
	switch v := r.URL.Query().Get("gop_cache"); v {
	case "", "1", "true":
	case "0", "false":
		req.NoGOPCache = true
	default:
		writeError(w, fmt.Errorf("%w: gop_cache must be 0 or 1 (got %q)", ErrBadRequest, v))
		return
	}
	switch req.Stream = r.URL.Query().Get("stream"); req.Stream {
	case "", "main", "sub":
	default:
		writeError(w, fmt.Errorf("%w: stream must be main or sub (got %q)", ErrBadRequest, req.Stream))
		return
	}
	ans, err := s.opts.Backend.Whep(r.Context(), req)
	s.audit(r, "live", id, time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	if p, ok := s.opts.Backend.(ICEServerProvider); ok {
		for _, srv := range p.ICEServers(r.Context(), req.User) {
			for _, u := range srv.URLs {
				link := "<" + u + ">; rel=\"ice-server\""
				if srv.Username != "" {
					link += "; username=" + strconv.Quote(srv.Username) + "; credential=" + strconv.Quote(srv.Credential) + "; credential-type=\"password\""
				}
				w.Header().Add("Link", link)
			}
		}
	}
	if ans.Warning != "" {
		w.Header().Set("Ronda-Warning", ans.Warning)
	}
	if ans.Stream != "" {
		w.Header().Set("Ronda-Stream", ans.Stream)
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/api/v1/whep/"+ans.Session)
	w.Header().Set("Accept-Patch", "application/trickle-ice-sdpfrag")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, ans.SDP)
}

// whepPatch takes trickled ICE candidates (RFC 9725 / RFC 8840).
func (s *Server) whepPatch(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/trickle-ice-sdpfrag") {
		writeError(w, fmt.Errorf("%w: a WHEP PATCH needs Content-Type application/trickle-ice-sdpfrag (got %q)", ErrUnsupportedMediaType, ct))
		return
	}
	frag, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		writeError(w, fmt.Errorf("%w: reading the fragment: %v", ErrBadRequest, err))
		return
	}
	if err := s.opts.Backend.WhepPatch(r.Context(), r.PathValue("session"), string(frag)); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) whepSession(w http.ResponseWriter, r *http.Request) {
	info, err := s.opts.Backend.WhepSession(r.Context(), r.PathValue("session"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) whepDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.opts.Backend.WhepDelete(r.Context(), r.PathValue("session")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) iceServers(w http.ResponseWriter, r *http.Request) {
	out := []ICEServer{}
	if p, ok := s.opts.Backend.(ICEServerProvider); ok {
		out = append(out, p.ICEServers(r.Context(), userOf(r.Context()).User)...)
	}
	writeJSON(w, http.StatusOK, map[string]any{"ice_servers": out})
}

func (s *Server) cluster(w http.ResponseWriter, r *http.Request) {
	c, err := s.opts.Backend.Cluster(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) areas(w http.ResponseWriter, r *http.Request) {
	al, ok := s.opts.Backend.(AreaLister)
	if !ok {
		writeError(w, fmt.Errorf("%w: the area catalog is the hub's (GET /api/v1/areas at a hub member)", ErrNotFound))
		return
	}
	q := r.URL.Query()
	level := q.Get("level")
	switch level {
	case "", "kota", "kecamatan", "kelurahan":
	default:
		writeError(w, fmt.Errorf("%w: level %q: use kota, kecamatan or kelurahan", ErrBadRequest, level))
		return
	}
	out, err := al.Areas(r.Context(), level, q.Get("parent"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) enroller() (Enroller, error) {
	en, ok := s.opts.Backend.(Enroller)
	if !ok {
		return nil, fmt.Errorf("%w: nodes enroll at a hub member with enrollment configured (hub.yaml enrollment.ca_dir)", ErrNotFound)
	}
	return en, nil
}

func (s *Server) joinToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Kelurahan string `json:"kelurahan"`
		TTL       string `json:"ttl"`
	}
	en, err := s.enroller()
	ttl := time.Hour
	if err == nil {
		if derr := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&req); derr != nil || req.Kelurahan == "" {
			err = fmt.Errorf("%w: send JSON {\"kelurahan\": \"31.71.01.1001\", \"ttl\"?: \"1h\"}", ErrBadRequest)
		} else if req.TTL != "" {
			d, perr := time.ParseDuration(req.TTL)
			if perr != nil || d <= 0 || d > 7*24*time.Hour {
				err = fmt.Errorf("%w: ttl %q: a duration up to 168h", ErrBadRequest, req.TTL)
			}
			ttl = d
		}
	}
	var tok JoinToken
	if err == nil {
		tok, err = en.CreateJoinToken(r.Context(), req.Kelurahan, ttl, userOf(r.Context()).User)
	}
	s.audit(r, "join-token "+req.Kelurahan, "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, tok)
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	var req EnrollRequest
	en, err := s.enroller()
	if err == nil {
		if derr := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&req); derr != nil || req.Token == "" || req.NodeID == "" || req.CSR == "" {
			err = fmt.Errorf("%w: send JSON {\"token\", \"node_id\", \"csr\": PEM} (use 'ronda node enroll')", ErrBadRequest)
		}
	}
	var out Enrolled
	if err == nil {
		out, err = en.Enroll(r.Context(), req)
	}
	s.opts.Audit(AuditEvent{Time: s.opts.Now(), User: "enroll:" + req.NodeID, Action: "enroll " + out.Identity, Remote: r.RemoteAddr, Outcome: outcomeOf(err)})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

// revoker returns the backend's deny-list, or why not.
func (s *Server) revoker(r *http.Request, change bool) (Revoker, error) {
	rv, ok := s.opts.Backend.(Revoker)
	if !ok {
		return nil, fmt.Errorf("%w: certificates are revoked at a hub member", ErrNotFound)
	}
	return rv, nil
}

func (s *Server) revocations(w http.ResponseWriter, r *http.Request) {
	rv, err := s.revoker(r, false)
	var out []Revocation
	if err == nil {
		out, err = rv.Revocations(r.Context())
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revocations": out})
}

func readRevocation(r *http.Request, needReason bool) (RevocationRequest, error) {
	var req RevocationRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&req); err != nil {
		return req, fmt.Errorf("%w: send JSON {\"node_id\" | \"member\" | \"identity\": \"spiffe://…\", \"reason\"}: %v", ErrBadRequest, err)
	}
	n := 0
	for _, v := range []string{req.Identity, req.NodeID, req.Member} {
		if v != "" {
			n++
		}
	}
	switch {
	case n != 1:
		return req, fmt.Errorf("%w: name exactly one of 'node_id', 'member' or 'identity'", ErrBadRequest)
	case needReason && strings.TrimSpace(req.Reason) == "":
		return req, fmt.Errorf("%w: 'reason' is required (why is this certificate revoked?)", ErrBadRequest)
	}
	return req, nil
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	rv, err := s.revoker(r, true)
	var req RevocationRequest
	if err == nil {
		req, err = readRevocation(r, true)
	}
	var out Revocation
	if err == nil {
		out, err = rv.Revoke(r.Context(), req, userOf(r.Context()).User)
	}
	s.audit(r, "revoke "+req.Identity+req.NodeID+req.Member+" ("+req.Reason+")", "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) liftRevocation(w http.ResponseWriter, r *http.Request) {
	rv, err := s.revoker(r, true)
	var req RevocationRequest
	if err == nil {
		req, err = readRevocation(r, false)
	}
	var id string
	if err == nil {
		id, err = rv.LiftRevocation(r.Context(), req, userOf(r.Context()).User)
	}
	s.audit(r, "lift-revocation "+req.Identity+req.NodeID+req.Member, "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"identity": id, "state": "lifted"})
}

// clusterAdmin returns the backend's membership interface, or why not.
func (s *Server) clusterAdmin(r *http.Request, change bool) (ClusterAdmin, error) {
	ca, ok := s.opts.Backend.(ClusterAdmin)
	if !ok {
		return nil, fmt.Errorf("%w: hub membership is managed at a hub member", ErrNotFound)
	}
	return ca, nil
}

func (s *Server) members(w http.ResponseWriter, r *http.Request) {
	ca, err := s.clusterAdmin(r, false)
	var out any
	if err == nil {
		out, err = ca.Members(r.Context())
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	var req JoinRequest
	ca, err := s.clusterAdmin(r, true)
	if err == nil {
		if derr := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&req); derr != nil {
			err = fmt.Errorf("%w: send JSON {\"id\", \"raft\": \"host:port\", \"grpc\": \"host:port\", \"http\"?}: %v", ErrBadRequest, derr)
		} else if req.ID == "" || req.Raft == "" || req.GRPC == "" {
			err = fmt.Errorf("%w: 'id', 'raft' and 'grpc' are required", ErrBadRequest)
		}
	}
	if err == nil {
		err = ca.Join(r.Context(), req, userOf(r.Context()).User)
	}
	s.audit(r, "member-join "+req.ID, "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	out, err := ca.Members(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ca, err := s.clusterAdmin(r, true)
	if err == nil {
		err = ca.RemoveMember(r.Context(), id, userOf(r.Context()).User)
	}
	s.audit(r, "member-remove "+id, "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": id})
}

func (s *Server) transferLeader(w http.ResponseWriter, r *http.Request) {
	var req struct {
		To string `json:"to"`
	}
	ca, err := s.clusterAdmin(r, true)
	if err == nil && r.ContentLength != 0 {
		if derr := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&req); derr != nil {
			err = fmt.Errorf("%w: send JSON {\"to\": \"MEMBER\"} or no body for any up-to-date voter: %v", ErrBadRequest, derr)
		}
	}
	var leader string
	if err == nil {
		leader, err = ca.TransferLeader(r.Context(), req.To, userOf(r.Context()).User)
	}
	s.audit(r, "transfer-leader "+req.To, "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"leader": leader})
}

// backup streams an online backup of the hub's catalog (admins only).
func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	var err error
	bk, ok := s.opts.Backend.(Backuper)
	if !ok {
		err = fmt.Errorf("%w: backups are taken at a hub member (ronda hub backup)", ErrNotFound)
	}
	var b Backup
	var member string
	if err == nil {
		b, member, err = bk.OpenBackup(r.Context())
	}
	if err != nil {
		s.audit(r, "backup", "", time.Time{}, time.Time{}, err)
		writeError(w, err)
		return
	}
	defer b.Close()
	name := fmt.Sprintf("ronda-hub-%s-%d.backup", member, b.AppliedIndex())
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("X-Ronda-Backup-Applied-Index", strconv.FormatUint(b.AppliedIndex(), 10))
	w.Header().Set("X-Ronda-Backup-Member", member)
	w.Header().Set("X-Ronda-Read-Consistency", "default")
	w.WriteHeader(http.StatusOK)
	n, err := b.WriteTo(w)
	if err != nil {
		err = fmt.Errorf("backup stream broke after %d bytes: %w", n, err)
		s.opts.Logger.Warn("backup", "err", err)
	}
	s.audit(r, "backup", "", time.Time{}, time.Time{}, err)
}

func (s *Server) createExport(w http.ResponseWriter, r *http.Request) {
	var req ExportRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		writeError(w, fmt.Errorf("%w: send JSON {\"camera\", \"from\", \"to\" (RFC 3339), \"reason\"}: %v", ErrBadRequest, err))
		return
	}
	var err error
	switch {
	case req.Camera == "":
		err = fmt.Errorf("%w: 'camera' is required", ErrBadRequest)
	case req.From.IsZero() || req.To.IsZero() || !req.To.After(req.From):
		err = fmt.Errorf("%w: 'from' and 'to' are required RFC 3339 times with to after from", ErrBadRequest)
	case req.To.Sub(req.From) > MaxExportRange:
		err = fmt.Errorf("%w: an export covers at most %s; split the range", ErrBadRequest, MaxExportRange)
	case strings.TrimSpace(req.Reason) == "":
		err = fmt.Errorf("%w: 'reason' is required: say why (a case or report number, a police request)", ErrBadRequest)
	}
	if err == nil {
		err = s.allow(r, auth.ActExport, req.Camera, req.From, req.Reason)
	}
	var e Export
	if err == nil {
		e, err = s.opts.Backend.CreateExport(r.Context(), req, userOf(r.Context()).User)
	}
	// The export's id and file hash go into its audit event: once the hub
	// has committed the event to its audit Merkle log, an inclusion proof
	// ties the footage to the log (GET /api/v1/audit/proof/export).
	if !errors.Is(err, ErrForbidden) { // a refusal was audited by allow
		outcome := ExportOutcome(e.ID, e.SHA256)
		if err != nil {
			outcome = "error: " + err.Error()
		}
		s.opts.Audit(AuditEvent{Time: s.opts.Now(), User: userOf(r.Context()).User, Action: "export", CameraID: req.Camera,
			From: req.From, To: req.To, Remote: r.RemoteAddr, Reason: req.Reason, Outcome: outcome})
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, e)
}

func (s *Server) exports(w http.ResponseWriter, r *http.Request) {
	all, err := s.opts.Backend.Exports(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	list := []Export{}
	for _, e := range all {
		if s.sees(r, e.Camera) {
			list = append(list, e)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"exports": list})
}

func (s *Server) exportPart(part string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		err := s.allowExport(r, r.PathValue("id"), "")
		var f io.ReadSeekCloser
		var name string
		var mod time.Time
		if err == nil {
			f, name, mod, err = s.opts.Backend.OpenExport(r.Context(), r.PathValue("id"), part)
		}
		s.audit(r, "download-"+part, r.PathValue("id"), time.Time{}, time.Time{}, err)
		if err != nil {
			writeError(w, err)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
		w.Header().Set("Cache-Control", "no-store")
		http.ServeContent(w, r, name, mod, f)
	}
}

// search answers "which cameras had footage here, then?" from the hub's
// catalog. Every search is audited: it is how footage of a place is found.
func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var req SearchRequest
	var problems []string
	parseTime := func(name string) time.Time {
		v := q.Get(name)
		if v == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s=%q is not an RFC 3339 time (2026-11-22T08:00:00+07:00)", name, v))
		}
		return t
	}
	parseFloat := func(name string) float64 {
		v := q.Get(name)
		if v == "" {
			return 0
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			problems = append(problems, fmt.Sprintf("%s=%q is not a number", name, v))
		}
		return f
	}
	req.From, req.To = parseTime("from"), parseTime("to")
	req.Kota, req.Kecamatan, req.Kelurahan, req.Node = q.Get("kota"), q.Get("kecamatan"), q.Get("kelurahan"), q.Get("node")
	req.Tags = q["tag"]
	req.Lat, req.Lon, req.RadiusM = parseFloat("lat"), parseFloat("lon"), parseFloat("radius_m")
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("limit=%q is not a whole number", v))
		}
		req.Limit = n
	}
	if req.From.IsZero() != req.To.IsZero() {
		problems = append(problems, "give both 'from' and 'to' (or neither, for cameras whatever their footage)")
	}
	var err error
	if len(problems) > 0 {
		err = fmt.Errorf("%w: %s", ErrBadRequest, strings.Join(problems, "; "))
	}
	var res SearchResult
	if err == nil {
		sr, ok := s.opts.Backend.(Searcher)
		if !ok {
			by, _ := s.opts.Backend.Identity()
			err = fmt.Errorf("%w: search across the city is answered by the hub, not this %s; GET /api/v1/cameras lists this %s's cameras", ErrNotFound, by, by)
		} else {
			res, err = sr.Search(r.Context(), req)
		}
	}
	s.audit(r, "search "+r.URL.RawQuery, "", req.From, req.To, err)
	if err != nil {
		writeError(w, err)
		return
	}
	p := userOf(r.Context())
	found := []SearchCamera{}
	for _, c := range res.Cameras {
		if p.SeesCamera(c.ID, c.KelurahanCode) {
			found = append(found, c)
		}
	}
	if !p.CityWide() {
		res.Total = len(found) // a scoped user learns nothing about other cameras
	}
	res.Cameras = found
	if level := w.Header().Get("X-Ronda-Read-Consistency"); level != "" {
		res.Consistency = level
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) holdStore() (HoldStore, error) {
	hs, ok := s.opts.Backend.(HoldStore)
	if !ok {
		by, _ := s.opts.Backend.Identity()
		return nil, fmt.Errorf("%w: holds are kept by the node that records the camera; this %s does not take them yet (place the hold at the node)", ErrNotFound, by)
	}
	return hs, nil
}

func (s *Server) holds(w http.ResponseWriter, r *http.Request) {
	hs, err := s.holdStore()
	var list []Hold
	if err == nil {
		list, err = hs.Holds(r.Context(), r.PathValue("id"))
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if list == nil {
		list = []Hold{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"holds": list})
}

func (s *Server) putHold(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req HoldRequest
	err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req)
	switch {
	case err != nil:
		err = fmt.Errorf("%w: send JSON {\"from\", \"to\" (RFC 3339), \"reason\", optional \"expires\"}: %v", ErrBadRequest, err)
	case req.From.IsZero() || req.To.IsZero() || !req.To.After(req.From):
		err = fmt.Errorf("%w: 'from' and 'to' are required RFC 3339 times with to after from", ErrBadRequest)
	case req.To.Sub(req.From) > MaxHoldRange:
		err = fmt.Errorf("%w: a hold covers at most %s; place several", ErrBadRequest, MaxHoldRange)
	case strings.TrimSpace(req.Reason) == "":
		err = fmt.Errorf("%w: 'reason' is required: say why the footage must be kept (a case or report number)", ErrBadRequest)
	case !req.Expires.IsZero() && !req.Expires.After(s.opts.Now()):
		err = fmt.Errorf("%w: 'expires' (%s) is already past; leave it out to hold until released", ErrBadRequest, req.Expires.Format(time.RFC3339))
	}
	var h Hold
	if err == nil {
		var hs HoldStore
		if hs, err = s.holdStore(); err == nil {
			h, err = hs.PutHold(r.Context(), id, req, userOf(r.Context()).User)
		}
	}
	s.audit(r, "hold", id, req.From, req.To, err)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, h)
}

func (s *Server) deleteHold(w http.ResponseWriter, r *http.Request) {
	id, hold := r.PathValue("id"), r.PathValue("hold")
	hs, err := s.holdStore()
	if err == nil {
		err = hs.DeleteHold(r.Context(), id, hold)
	}
	s.audit(r, "release-hold "+hold, id, time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// HourCompleteness is one hour of a camera: seconds recorded of seconds expected.
type HourCompleteness struct {
	Hour            time.Time `json:"hour"`
	RecordedSeconds float64   `json:"recorded_seconds"`
	ExpectedSeconds float64   `json:"expected_seconds"`
	Ratio           float64   `json:"ratio"`
}

// MaxCompletenessRange bounds one completeness query.
const MaxCompletenessRange = 31 * 24 * time.Hour

// completeness answers per hour of [from,to) how much was recorded, from the
// same spans as /recordings (the node's index, or the hub's coverage).
func (s *Server) completeness(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	from, to, err := timeRange(r, MaxCompletenessRange)
	if err != nil {
		writeError(w, err)
		return
	}
	if now := s.opts.Now(); to.After(now) {
		to = now
	}
	var hours []HourCompleteness
	if to.After(from) {
		rec, err := s.opts.Backend.Recordings(r.Context(), id, from, to)
		if err != nil {
			writeError(w, err)
			return
		}
		hours = hourly(rec.Spans, from, to)
	}
	writeJSON(w, http.StatusOK, map[string]any{"camera_id": id, "source": "spans", "hours": hours})
}

func hourly(spans []Span, from, to time.Time) []HourCompleteness {
	var out []HourCompleteness
	for h := from.Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		lo, hi := later(h, from), earlier(h.Add(time.Hour), to)
		c := HourCompleteness{Hour: h.UTC(), ExpectedSeconds: hi.Sub(lo).Seconds()}
		for _, sp := range spans {
			if a, b := later(sp.Start, lo), earlier(sp.End, hi); b.After(a) {
				c.RecordedSeconds += b.Sub(a).Seconds()
			}
		}
		if c.ExpectedSeconds > 0 {
			c.Ratio = c.RecordedSeconds / c.ExpectedSeconds
		}
		out = append(out, c)
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// sees reports whether the caller may see a camera (lists are filtered).
func (s *Server) sees(r *http.Request, camera string) bool {
	p := userOf(r.Context())
	if p.CityWide() {
		return true
	}
	kel, err := s.locate(r.Context(), camera)
	return err == nil && p.SeesCamera(camera, kel)
}

// allowExport checks that the caller may download or verify an export:
// its camera must be in scope. nodeID (hub, optional) names the node that
// made it.
func (s *Server) allowExport(r *http.Request, id, nodeID string) error {
	if userOf(r.Context()).CityWide() {
		return nil
	}
	list, err := s.opts.Backend.Exports(r.Context())
	if err != nil {
		return err
	}
	for _, e := range list {
		if e.ID == id && (nodeID == "" || e.NodeID == nodeID) {
			return s.allow(r, auth.ActExportsRead, e.Camera, time.Time{}, reasonOf(r))
		}
	}
	return fmt.Errorf("%w: no export %q; GET /api/v1/exports lists the exports this user may see", ErrNotFound, id)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	p := userOf(r.Context())
	var err error
	if lo, ok := s.opts.Backend.(LogoutHandler); ok {
		err = lo.Logout(r.Context(), p.User)
	}
	s.audit(r, "logout", "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"user": p.User, "state": "logged out: every token issued to this user until now is void"})
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	nt, c, err := s.opts.Auth.Refresh(tok)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": nt, "user": c.User, "role": c.Role, "scope": c.Scope, "expires": time.Unix(c.Expires, 0).UTC()})
}
