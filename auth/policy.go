package auth

// Roles, scopes and the one authorisation table. Every API call names an
// Action and, when it concerns a camera, the camera's kelurahan; Authorize
// decides, and the API server answers 403 (and audits the attempt) when it
// says no. The same table runs on the hub and on every node, so a user has
// the same rights wherever they log in.

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Roles.
const (
	// RoleAdmin is a city admin: every camera and every administrative call.
	RoleAdmin = "admin"
	// RoleOperator is a control-room operator: every camera, live and
	// playback, holds and exports; no administration, no audit log.
	RoleOperator = "operator"
	// RoleAreaOperator is an operator scoped to areas (kota, kecamatan or
	// kelurahan codes in Scope.Areas).
	RoleAreaOperator = "area_operator"
	// RoleViewer is an RT/RW viewer: the cameras named in Scope.Cameras,
	// live only, or live and the last Scope.PlaybackHours hours.
	RoleViewer = "viewer"
	// RoleAuditor plays back and exports across the city and reads the
	// audit log; every playback, hold and export needs a reason.
	RoleAuditor = "auditor"
	// RoleNodeAdmin is a kelurahan node's own admin (Scope.Areas: the
	// kelurahan): its cameras, its holds and exports, and its audit log.
	RoleNodeAdmin = "node_admin"
)

// Roles lists every role.
var Roles = []string{RoleAdmin, RoleOperator, RoleAreaOperator, RoleViewer, RoleAuditor, RoleNodeAdmin}

// MaxViewerPlaybackHours bounds a viewer's look-back.
const MaxViewerPlaybackHours = 24 * 7

// Scope narrows a role to part of the city.
type Scope struct {
	// Areas: kota ("31.71"), kecamatan ("31.71.01") or kelurahan
	// ("31.71.01.1001") codes (area_operator, node_admin).
	Areas []string `json:"areas,omitempty" yaml:"areas,omitempty"`
	// Cameras: camera ids (viewer).
	Cameras []string `json:"cameras,omitempty" yaml:"cameras,omitempty"`
	// PlaybackHours (viewer): 0 is live only; N allows playback of the last
	// N hours.
	PlaybackHours int `json:"playback_hours,omitempty" yaml:"playback_hours,omitempty"`
}

// String describes a scope for people.
func (s Scope) String() string {
	var parts []string
	if len(s.Areas) > 0 {
		parts = append(parts, "areas "+strings.Join(s.Areas, ","))
	}
	if len(s.Cameras) > 0 {
		parts = append(parts, "cameras "+strings.Join(s.Cameras, ","))
	}
	if s.PlaybackHours > 0 {
		parts = append(parts, fmt.Sprintf("playback of the last %d h", s.PlaybackHours))
	}
	if len(parts) == 0 {
		return "whole city"
	}
	return strings.Join(parts, "; ")
}

// Sentinel errors of Authorize.
var (
	ErrForbidden = errors.New("forbidden")
	// ErrReasonRequired: the role may do it, but only with a reason.
	ErrReasonRequired = errors.New("a reason is required")
)

// CheckRole validates a role and the scope it needs: area_operator and
// node_admin need areas, viewer needs cameras; city-wide roles take none.
// validArea, when set, says whether an area code exists.
func CheckRole(role string, s Scope, validArea func(code string) bool) error {
	if !slices.Contains(Roles, role) {
		return fmt.Errorf("unknown role %q; roles are %s", role, strings.Join(Roles, ", "))
	}
	switch role {
	case RoleAreaOperator, RoleNodeAdmin:
		if len(s.Areas) == 0 {
			return fmt.Errorf("role %s needs scope.areas (kota, kecamatan or kelurahan codes such as 31.71.01.1001)", role)
		}
		if len(s.Cameras) > 0 || s.PlaybackHours != 0 {
			return fmt.Errorf("role %s takes scope.areas only", role)
		}
		for _, a := range s.Areas {
			if !areaCodeShape(a) || (validArea != nil && !validArea(a)) {
				return fmt.Errorf("scope area %q is not a known kota, kecamatan or kelurahan code (see GET /api/v1/areas)", a)
			}
		}
	case RoleViewer:
		if len(s.Cameras) == 0 {
			return fmt.Errorf("role viewer needs scope.cameras (the camera ids the RT/RW may watch)")
		}
		if len(s.Areas) > 0 {
			return fmt.Errorf("role viewer takes scope.cameras and scope.playback_hours, not areas")
		}
		if s.PlaybackHours < 0 || s.PlaybackHours > MaxViewerPlaybackHours {
			return fmt.Errorf("scope.playback_hours must be 0 (live only) to %d", MaxViewerPlaybackHours)
		}
	default:
		if len(s.Areas) > 0 || len(s.Cameras) > 0 || s.PlaybackHours != 0 {
			return fmt.Errorf("role %s is city-wide and takes no scope", role)
		}
	}
	return nil
}

// areaCodeShape: 31.71, 31.71.01 or 31.71.01.1001.
func areaCodeShape(code string) bool {
	parts := strings.Split(code, ".")
	if len(parts) < 2 || len(parts) > 4 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 4 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// Principal is who makes a call.
type Principal struct {
	User  string
	Role  string
	Scope Scope
}

// CityWide reports whether the principal sees every camera.
func (p Principal) CityWide() bool {
	return p.Role == RoleAdmin || p.Role == RoleOperator || p.Role == RoleAuditor
}

// inArea reports whether kelurahan code kel lies in area code a.
func inArea(kel, a string) bool {
	return kel == a || (strings.HasPrefix(kel, a) && len(kel) > len(a) && kel[len(a)] == '.')
}

// SeesKelurahan reports whether the principal may see anything of kelurahan
// kel: city-wide roles everything, scoped roles their areas, a viewer the
// kelurahan of its cameras.
func (p Principal) SeesKelurahan(kel string) bool {
	switch {
	case p.CityWide():
		return true
	case p.Role == RoleViewer:
		prefix := strings.ReplaceAll(kel, ".", "") + "-"
		return slices.ContainsFunc(p.Scope.Cameras, func(c string) bool { return strings.HasPrefix(c, prefix) })
	}
	return slices.ContainsFunc(p.Scope.Areas, func(a string) bool { return inArea(kel, a) })
}

// SeesCamera reports whether the principal may see camera id of kelurahan kel.
func (p Principal) SeesCamera(id, kel string) bool {
	if p.Role == RoleViewer {
		return slices.Contains(p.Scope.Cameras, id)
	}
	return p.SeesKelurahan(kel)
}

// Action is an API call as the authorisation table knows it.
type Action string

// Actions.
const (
	ActMe           Action = "me"            // who am I, log out
	ActAreas        Action = "areas"         // the area catalog
	ActList         Action = "list"          // nodes, cameras, search: answers filtered by scope
	ActCamera       Action = "camera"        // one camera, its timeline and completeness
	ActLive         Action = "live"          // WHEP, RTSPS re-stream
	ActPlayback     Action = "playback"      // media.mp4
	ActHoldsRead    Action = "holds-read"    // a camera's holds
	ActHold         Action = "hold"          // place or release a hold
	ActExport       Action = "export"        // create an export
	ActExportsRead  Action = "exports-read"  // list and download exports
	ActAuditRead    Action = "audit-read"    // the audit log and its proofs
	ActCluster      Action = "cluster"       // cluster health, members (read)
	ActClusterAdmin Action = "cluster-admin" // join, remove, leader transfer, backup
	ActEnroll       Action = "enrollment"    // join tokens for new nodes
	ActRevocations  Action = "revocations"   // read or change the certificate deny-list
	ActUsers        Action = "users"         // read or change users
	ActTokenRefresh Action = "token-refresh" // a fresh token for a valid one
	ActCase         Action = "case"          // evidence cases: create, read, pull, close, download the bundle (hub)
	ActRetention    Action = "retention"     // free space now: delete unheld footage older than a limit (node)
)

// Actions lists every action (the matrix test walks them).
var Actions = []Action{ActMe, ActAreas, ActList, ActCamera, ActLive, ActPlayback, ActHoldsRead, ActHold,
	ActExport, ActExportsRead, ActAuditRead, ActCluster, ActClusterAdmin, ActEnroll, ActRevocations, ActUsers, ActTokenRefresh, ActCase, ActRetention}

// Target is what a call touches.
type Target struct {
	// Camera and its kelurahan, for camera calls; Kelurahan alone for a
	// node's calls (a node's own audit log).
	Camera    string
	Kelurahan string
	// From is where a playback starts (viewers may look back only so far).
	From time.Time
	// Reason the caller gave (?reason=, X-Ronda-Reason, or the body's).
	Reason string
	// Now is the time of the call.
	Now time.Time
	// AtNode is true when a node serves the call (its own API).
	AtNode bool
}

// Authorize decides whether p may do a to t. A refusal wraps ErrForbidden
// or ErrReasonRequired and says what the user may do instead.
func Authorize(p Principal, a Action, t Target) error {
	deny := func(why string) error {
		return fmt.Errorf("%w: %s (role %s) may not %s: %s", ErrForbidden, p.User, p.Role, a, why)
	}
	needReason := func() error {
		if p.Role == RoleAuditor && strings.TrimSpace(t.Reason) == "" {
			return fmt.Errorf("%w: %s is an auditor, and auditors must say why for every %s: add ?reason=CASE-OR-REPORT-NUMBER (or the X-Ronda-Reason header)", ErrReasonRequired, p.User, a)
		}
		return nil
	}
	inScope := func() error {
		if t.Camera != "" {
			if !p.SeesCamera(t.Camera, t.Kelurahan) {
				return deny(fmt.Sprintf("camera %s is outside the user's scope (%s)", t.Camera, p.Scope))
			}
			return nil
		}
		if t.Kelurahan != "" && !p.SeesKelurahan(t.Kelurahan) {
			return deny(fmt.Sprintf("kelurahan %s is outside the user's scope (%s)", t.Kelurahan, p.Scope))
		}
		return nil
	}
	if !slices.Contains(Roles, p.Role) {
		return deny("the role is unknown; an admin must fix this user")
	}
	switch a {
	case ActMe, ActAreas, ActList, ActTokenRefresh:
		return nil // lists are filtered by scope
	case ActCamera:
		return inScope()
	case ActLive:
		if p.Role == RoleAuditor {
			return deny("auditors review recorded footage, not live view")
		}
		return inScope()
	case ActPlayback:
		if err := inScope(); err != nil {
			return err
		}
		if p.Role == RoleViewer {
			if p.Scope.PlaybackHours == 0 {
				return deny("this RT/RW viewer has live view only")
			}
			if oldest := t.Now.Add(-time.Duration(p.Scope.PlaybackHours) * time.Hour); t.From.Before(oldest) {
				return deny(fmt.Sprintf("this RT/RW viewer may play back the last %d h only (from %s)", p.Scope.PlaybackHours, oldest.UTC().Format(time.RFC3339)))
			}
		}
		return needReason()
	case ActHoldsRead, ActHold, ActExport, ActExportsRead:
		if p.Role == RoleViewer {
			return deny("RT/RW viewers do not hold or export footage; ask the kelurahan's operator")
		}
		if err := inScope(); err != nil {
			return err
		}
		if a == ActHold || a == ActExport {
			return needReason()
		}
		return nil
	case ActRetention:
		switch {
		case p.Role == RoleAdmin:
			return nil
		case p.Role == RoleNodeAdmin && t.AtNode:
			return inScope()
		}
		return deny("deleting footage at once is for city admins and the node's own admin (at the node)")
	case ActCase:
		switch p.Role {
		case RoleAdmin, RoleOperator, RoleAreaOperator, RoleAuditor:
			return inScope()
		}
		return deny("evidence cases are for city admins, the control room, area operators and auditors; ask one of them")
	case ActAuditRead:
		switch {
		case p.Role == RoleAdmin || p.Role == RoleAuditor:
			return nil
		case p.Role == RoleNodeAdmin && t.AtNode:
			return inScope()
		}
		return deny("only city admins and auditors read the audit log (a node admin reads its own node's, at the node)")
	case ActCluster:
		if p.Role == RoleAdmin || p.Role == RoleOperator {
			return nil
		}
		return deny("cluster health is for city admins and the control room")
	case ActClusterAdmin, ActEnroll, ActRevocations, ActUsers:
		if p.Role == RoleAdmin {
			return nil
		}
		return deny("only city admins may do this")
	}
	return deny("the call is not in the authorisation table")
}

// Capabilities lists the actions p may take at all where t stands for the
// place (t.Camera empty: no one camera; at a node, its kelurahan): the
// actions Authorize allows, and, of them, those it allows only with a
// reason (ErrReasonRequired), each sorted. For a UI to offer only what the
// user may do; the API still decides every call.
func Capabilities(p Principal, t Target) (can, needsReason []Action) {
	t.Camera, t.Reason = "", ""
	for _, a := range Actions {
		switch err := Authorize(p, a, t); {
		case err == nil:
			can = append(can, a)
		case errors.Is(err, ErrReasonRequired):
			can = append(can, a)
			needsReason = append(needsReason, a)
		}
	}
	slices.Sort(can)
	slices.Sort(needsReason)
	return can, needsReason
}
