package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/ronda-jakarta/ronda/auth"
)

// Sentinel errors a Backend wraps (with %w) so the API maps them to statuses.
var (
	ErrBadRequest   = errors.New("bad request")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrNotFound     = errors.New("not found")
	ErrUnavailable  = errors.New("unavailable")
	ErrThrottled    = errors.New("too many requests")
	ErrNotImpl      = errors.New("not available here")
	// ErrUnsupportedMediaType: the request body has the wrong Content-Type.
	ErrUnsupportedMediaType = errors.New("unsupported media type")
	// ErrConflict: the thing is not in the state the call needs (e.g. a
	// case's footage is not pulled yet).
	ErrConflict = errors.New("conflict")
)

// statusOf is the one table from errors to HTTP statuses.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnauthorized), errors.Is(err, auth.ErrBadCredentials), errors.Is(err, auth.ErrBadToken):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrThrottled), errors.Is(err, auth.ErrThrottled):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrUnsupportedMediaType):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, ErrNotImpl):
		return http.StatusNotImplemented
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, statusOf(err), errorBody{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
