package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

func (s *Server) prover() (AuditProver, error) {
	p, ok := s.opts.Backend.(AuditProver)
	if !ok {
		return nil, fmt.Errorf("%w: the audit Merkle log is kept by the hub (ask a hub member)", ErrNotFound)
	}
	return p, nil
}

func uintParam(r *http.Request, name string, def uint64) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s=%q is not a whole number", ErrBadRequest, name, v)
	}
	return n, nil
}

// auditCheckpoints answers the log's size, root, the signed checkpoints and
// the key that signs them; it is where a verification starts, so it is the
// call that is audited.
func (s *Server) auditCheckpoints(w http.ResponseWriter, r *http.Request) {
	p, err := s.prover()
	var out AuditCheckpoints
	if err == nil {
		out, err = p.AuditCheckpoints(r.Context())
	}
	s.audit(r, "audit-verify", "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	if out.Checkpoints == nil {
		out.Checkpoints = []AuditCheckpoint{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) auditLeaves(w http.ResponseWriter, r *http.Request) {
	p, err := s.prover()
	var start, count uint64
	if err == nil {
		start, err = uintParam(r, "start", 0)
	}
	if err == nil {
		count, err = uintParam(r, "count", 1000)
		if err == nil && (count == 0 || count > MaxAuditLeaves) {
			err = fmt.Errorf("%w: count must be 1..%d", ErrBadRequest, MaxAuditLeaves)
		}
	}
	var out []AuditLeaf
	if err == nil {
		out, err = p.AuditLeaves(r.Context(), start, int(count))
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if out == nil {
		out = []AuditLeaf{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"leaves": out})
}

func (s *Server) auditProof(consistency bool) func(http.ResponseWriter, *http.Request) {
	first, second := "index", "size"
	if consistency {
		first, second = "from", "to"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.prover()
		var a, b uint64
		if err == nil {
			a, err = uintParam(r, first, 0)
		}
		if err == nil {
			b, err = uintParam(r, second, 0)
		}
		var hashes [][]byte
		if err == nil {
			hashes, err = p.AuditProof(r.Context(), a, b, consistency)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		if hashes == nil {
			hashes = [][]byte{}
		}
		writeJSON(w, http.StatusOK, map[string]any{first: a, second: b, "hashes": hashes})
	}
}

// exportProof answers the proof that ties an export to the audit log.
func (s *Server) exportProof(w http.ResponseWriter, r *http.Request) {
	p, ok := s.opts.Backend.(ExportProver)
	var err error
	if !ok {
		err = fmt.Errorf("%w: export proofs come from the hub's audit log (ask a hub member)", ErrNotFound)
	}
	node, id := r.URL.Query().Get("node"), r.URL.Query().Get("export")
	if err == nil && (node == "" || id == "") {
		err = fmt.Errorf("%w: give ?node=NODE&export=EXPORT-ID", ErrBadRequest)
	}
	var out ExportProof
	if err == nil {
		out, err = p.ExportProof(r.Context(), node, id)
	}
	s.audit(r, "export-proof "+node+" "+id, "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
