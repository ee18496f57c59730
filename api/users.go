package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

func (s *Server) userAdmin() (UserAdmin, error) {
	ua, ok := s.opts.Backend.(UserAdmin)
	if !ok {
		return nil, fmt.Errorf("%w: users are managed at the hub (GET/POST/PATCH/DELETE /api/v1/users at a hub member, or 'ronda users')", ErrNotFound)
	}
	return ua, nil
}

func (s *Server) users(w http.ResponseWriter, r *http.Request) {
	ua, err := s.userAdmin()
	var out []UserInfo
	if err == nil {
		out, err = ua.Users(r.Context())
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if out == nil {
		out = []UserInfo{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
}

func (s *Server) user(w http.ResponseWriter, r *http.Request) {
	ua, err := s.userAdmin()
	var out []UserInfo
	if err == nil {
		out, err = ua.Users(r.Context())
	}
	if err != nil {
		writeError(w, err)
		return
	}
	for _, u := range out {
		if u.Name == r.PathValue("name") {
			writeJSON(w, http.StatusOK, u)
			return
		}
	}
	writeError(w, fmt.Errorf("%w: no user %q", ErrNotFound, r.PathValue("name")))
}

func readUser(r *http.Request) (UserRequest, error) {
	var req UserRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("%w: send JSON {\"name\", \"password\", \"role\", \"scope\": {\"areas\"|\"cameras\", \"playback_hours\"}, \"disabled\"}: %v", ErrBadRequest, err)
	}
	if req.Password != "" && len(req.Password) < MinPasswordLength {
		return req, fmt.Errorf("%w: the password must have at least %d characters", ErrBadRequest, MinPasswordLength)
	}
	return req, nil
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	ua, err := s.userAdmin()
	var req UserRequest
	if err == nil {
		req, err = readUser(r)
	}
	if err == nil && (req.Name == "" || req.Password == "" || req.Role == "") {
		err = fmt.Errorf("%w: a new user needs 'name', 'password' and 'role' (and the 'scope' the role needs)", ErrBadRequest)
	}
	var out UserInfo
	if err == nil {
		out, err = ua.PutUser(r.Context(), req, true, userOf(r.Context()).User)
	}
	s.audit(r, "user-create "+req.Name+" "+req.Role+" "+scopeText(req), "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func scopeText(req UserRequest) string {
	if req.Scope == nil {
		return ""
	}
	return "(" + req.Scope.String() + ")"
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request) {
	ua, err := s.userAdmin()
	var req UserRequest
	if err == nil {
		req, err = readUser(r)
	}
	if err == nil && req.Name != "" && req.Name != r.PathValue("name") {
		err = fmt.Errorf("%w: a user cannot be renamed (create a new one and delete this one)", ErrBadRequest)
	}
	req.Name = r.PathValue("name")
	var out UserInfo
	if err == nil {
		out, err = ua.PutUser(r.Context(), req, false, userOf(r.Context()).User)
	}
	what := "user-change " + req.Name
	if req.Role != "" {
		what += " role " + req.Role
	}
	what += " " + scopeText(req)
	if req.Password != "" {
		what += " password"
	}
	if req.Disabled != nil {
		what += fmt.Sprintf(" disabled=%v", *req.Disabled)
	}
	s.audit(r, what, "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) {
	ua, err := s.userAdmin()
	name := r.PathValue("name")
	if err == nil && name == userOf(r.Context()).User {
		err = errors.Join(ErrBadRequest, errors.New("an admin cannot delete themself; ask another admin"))
	}
	if err == nil {
		err = ua.DeleteUser(r.Context(), name, userOf(r.Context()).User)
	}
	s.audit(r, "user-delete "+name, "", time.Time{}, time.Time{}, err)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
}
