package api

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"
)

// allHolds lists every hold the caller may see (GET /api/v1/holds), newest
// first; ?active=1 only those still keeping footage.
func (s *Server) allHolds(w http.ResponseWriter, r *http.Request) {
	var activeOnly bool
	switch v := r.URL.Query().Get("active"); v {
	case "", "0", "false":
	case "1", "true":
		activeOnly = true
	default:
		writeError(w, fmt.Errorf("%w: 'active' is 1 (only holds still in force) or 0 (all; the default), got %q", ErrBadRequest, v))
		return
	}
	hl, ok := s.opts.Backend.(HoldLister)
	if !ok {
		by, _ := s.opts.Backend.Identity()
		writeError(w, fmt.Errorf("%w: this %s keeps no holds; GET /api/v1/cameras/{id}/holds at the camera's node", ErrNotFound, by))
		return
	}
	all, err := hl.AllHolds(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	list := []Hold{}
	seen := map[string]bool{} // camera -> may the caller see it
	for _, h := range all {
		if activeOnly && !h.Active {
			continue
		}
		may, known := seen[h.CameraID]
		if !known {
			may = s.sees(r, h.CameraID)
			seen[h.CameraID] = may
		}
		if may {
			list = append(list, h)
		}
	}
	sort.SliceStable(list, func(i, j int) bool {
		if !list[i].Created.Equal(list[j].Created) {
			return list[i].Created.After(list[j].Created)
		}
		return list[i].ID > list[j].ID
	})
	writeJSON(w, http.StatusOK, map[string]any{"holds": list})
}

// verifyExport checks an export (GET /api/v1/exports/{id}/verify): at a
// node its file against its signed manifest, at the hub its audit event
// against the signed audit log (?node=ID when several nodes made an export
// with this id). The answer says what was checked and what did not hold.
func (s *Server) verifyExport(w http.ResponseWriter, r *http.Request) {
	id, nodeID := r.PathValue("id"), r.URL.Query().Get("node")
	err := s.allowExport(r, id, nodeID)
	var out ExportVerification
	if err == nil {
		if v, ok := s.opts.Backend.(ExportVerifier); ok {
			out, err = v.VerifyExport(r.Context(), id, nodeID)
		} else {
			by, _ := s.opts.Backend.Identity()
			err = fmt.Errorf("%w: this %s does not verify exports", ErrNotFound, by)
		}
	}
	outcome := "ok: export " + id + " verified"
	switch {
	case err != nil:
		outcome = outcomeOfErr(err)
	case !out.Verified:
		outcome = fmt.Sprintf("ok: export %s NOT verified: %d problems", id, len(out.Problems))
	}
	s.opts.Audit(AuditEvent{Time: s.opts.Now(), User: userOf(r.Context()).User, Action: "verify-export", CameraID: out.Camera,
		Remote: r.RemoteAddr, Reason: reasonOf(r), Outcome: outcome})
	if err != nil {
		writeError(w, err)
		return
	}
	if out.Problems == nil {
		out.Problems = []string{}
	}
	if out.Checks == nil {
		out.Checks = []string{}
	}
	writeJSON(w, http.StatusOK, out)
}

// auditVerify checks this server's own audit log (GET /api/v1/audit/verify):
// a hub member its audit Merkle log, a node its hash chain. The answer is
// kept for AuditVerifyCache, so a UI polling it cannot load the server; a
// kept answer comes with the headers Age and X-Ronda-Cached.
func (s *Server) auditVerify(w http.ResponseWriter, r *http.Request) {
	av, ok := s.opts.Backend.(AuditVerifier)
	if !ok {
		by, _ := s.opts.Backend.Identity()
		err := fmt.Errorf("%w: this %s keeps no audit log to verify", ErrNotFound, by)
		s.audit(r, "audit-verify", "", time.Time{}, time.Time{}, err)
		writeError(w, err)
		return
	}
	s.verifyMu.Lock()
	now := s.opts.Now()
	body, at := s.verifyBody, s.verifyAt
	var err error
	cached := body != nil && now.Sub(at) < AuditVerifyCache && !now.Before(at)
	if !cached {
		body, err = av.VerifyAudit(r.Context())
		if err == nil {
			s.verifyBody, s.verifyAt = body, now
		}
	}
	s.verifyMu.Unlock()
	s.audit(r, "audit-verify", "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	if cached {
		w.Header().Set("Age", strconv.Itoa(int(now.Sub(at).Seconds())))
		w.Header().Set("X-Ronda-Cached", "true")
	}
	writeJSON(w, http.StatusOK, body)
}

// outcomeOfErr is an audit outcome for a failed call.
func outcomeOfErr(err error) string {
	if statusOf(err) == http.StatusForbidden || statusOf(err) == http.StatusUnauthorized {
		return "denied: " + err.Error()
	}
	return "error: " + err.Error()
}
