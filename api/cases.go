package api

import (
	"context"
	"time"
)

// Evidence cases: footage of several cameras (often of several nodes)
// kept and pulled to the hub for one reason — an auditor's case, a police
// request, a citizen's report.

// CaseQuery picks a case's cameras by place and time: the cameras within
// RadiusM metres of (Lat, Lon), or in Area (a kota, kecamatan or kelurahan
// code), that have footage in [From, To) by the hub's coverage catalog.
type CaseQuery struct {
	Lat     float64   `json:"lat,omitempty"`
	Lon     float64   `json:"lon,omitempty"`
	RadiusM float64   `json:"radius_m,omitempty"`
	Area    string    `json:"area,omitempty"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
}

// CaseItemRequest is one camera and range chosen directly.
type CaseItemRequest struct {
	Camera string    `json:"camera"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
}

// CaseRequest is the body of POST /api/v1/cases: a reason, a deadline
// (default 6 days), and items given directly and/or by a query.
type CaseRequest struct {
	Reason   string            `json:"reason"`
	Deadline time.Time         `json:"deadline,omitzero"`
	Items    []CaseItemRequest `json:"items,omitempty"`
	Query    *CaseQuery        `json:"query,omitempty"`
	// Pull: fetch every item's footage to the hub's evidence store (default
	// true for auditors' cases; reports pull when someone asks).
	Pull *bool `json:"pull,omitempty"`
}

// Pull states of a case item.
const (
	PullWaiting   = "waiting"   // queued (the node may be offline)
	PullExporting = "exporting" // the node is cutting the export
	PullPulling   = "pulling"   // bytes are coming
	PullStored    = "stored"    // verified and in the evidence store
	PullFailed    = "failed"    // Error says why; retried
	PullNone      = "not_requested"
)

// PullProgress is where an item's pull stands.
type PullProgress struct {
	State    string    `json:"state"`
	ExportID string    `json:"export_id,omitempty"`
	Bytes    int64     `json:"bytes"`
	Total    int64     `json:"total,omitempty"`
	SHA256   string    `json:"sha256,omitempty"`
	Error    string    `json:"error,omitempty"`
	Attempts int       `json:"attempts,omitempty"`
	Member   string    `json:"member,omitempty"`  // the hub member pulling it
	Holders  []string  `json:"holders,omitempty"` // members holding the stored copy
	Updated  time.Time `json:"updated,omitzero"`
}

// CaseItem is one camera's range in a case.
type CaseItem struct {
	ID        string       `json:"id"`
	Camera    string       `json:"camera"`
	NodeID    string       `json:"node_id"`
	Kelurahan string       `json:"kelurahan_code,omitempty"`
	From      time.Time    `json:"from"`
	To        time.Time    `json:"to"`
	DistanceM float64      `json:"distance_m,omitempty"`
	HoldID    string       `json:"hold_id"`
	HoldState string       `json:"hold_state"` // pending (node offline), applied, failed, release_pending, released
	HoldError string       `json:"hold_error,omitempty"`
	Pull      PullProgress `json:"pull"`
}

// Case is an evidence case.
type Case struct {
	ID       string     `json:"id"`
	Reason   string     `json:"reason"`
	Owner    string     `json:"owner"`
	Created  time.Time  `json:"created"`
	Deadline time.Time  `json:"deadline"`
	Status   string     `json:"status"` // open | closed
	Closed   *time.Time `json:"closed,omitempty"`
	// ReleaseAfter: a closed case's holds are released then (a grace period).
	ReleaseAfter *time.Time `json:"release_after,omitempty"`
	Report       string     `json:"report,omitempty"` // the citizen report it answers
	Query        *CaseQuery `json:"query,omitempty"`
	Items        []CaseItem `json:"items"`
	// Summary counts, for lists.
	HoldsPending int `json:"holds_pending"`
	ItemsStored  int `json:"items_stored"`
}

// CaseStore is implemented by the hub.
type CaseStore interface {
	CreateCase(ctx context.Context, req CaseRequest, owner string) (Case, bool, error)
	Cases(ctx context.Context) ([]Case, error)
	Case(ctx context.Context, id string) (Case, error)
	CloseCase(ctx context.Context, id, user string) (Case, error)
}

// CaseAdmin is implemented by the hub: pulling, closing and bundling cases.
type CaseAdmin interface {
	CaseStore
	RequestPull(ctx context.Context, id, user string) (Case, error)
	// Bundle writes the case's bundle (a zip) to w, audited as downloaded
	// by user; it fails before writing if the footage is not all pulled.
	Bundle(ctx context.Context, id, user string, w BundleWriter) error
	// CaseViewed records that a person looked at a case (a report's
	// deadline alert then stays quiet).
	CaseViewed(ctx context.Context, id, user string)
}

// BundleWriter is where a bundle goes: headers first, then the zip.
type BundleWriter interface {
	SetName(name string)
	Write(p []byte) (int, error)
}

// ReportLocation is where a citizen says something happened.
type ReportLocation struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

// ReportRequest is the body of POST /api/v1/reports (the city's complaint
// system, with its own credential).
type ReportRequest struct {
	ID           string         `json:"id"`
	Category     string         `json:"category"`
	Text         string         `json:"text"`
	Location     ReportLocation `json:"location"`
	ReportedAt   time.Time      `json:"reported_at"`
	IncidentFrom time.Time      `json:"incident_from"`
	IncidentTo   time.Time      `json:"incident_to"`
	CallbackURL  string         `json:"callback_url,omitempty"`
}

// ReportCamera is a camera holding footage for a report.
type ReportCamera struct {
	Camera    string  `json:"camera"`
	NodeID    string  `json:"node_id"`
	DistanceM float64 `json:"distance_m"`
	HoldState string  `json:"hold_state"`
}

// Report statuses.
const (
	ReportNoCameras    = "no_cameras"    // nothing near the spot recorded then
	ReportHoldsPending = "holds_pending" // a node is offline: its hold waits
	ReportHolding      = "holding"       // every camera's footage is held
	ReportViewed       = "viewed"        // someone looked at the footage
	ReportClosed       = "closed"        // the case is closed
)

// ReportStatus answers POST and GET /api/v1/reports.
type ReportStatus struct {
	ID       string         `json:"id"`
	CaseID   string         `json:"case_id,omitempty"`
	Status   string         `json:"status"`
	Category string         `json:"category"`
	Received time.Time      `json:"received"`
	Deadline time.Time      `json:"deadline"`
	RadiusM  float64        `json:"radius_m"`
	Cameras  []ReportCamera `json:"cameras"`
	Viewed   *time.Time     `json:"viewed,omitempty"`
	ViewedBy string         `json:"viewed_by,omitempty"`
	// Alerted: when the hub raised the alarm that the deadline nears and
	// nobody has looked.
	Alerted *time.Time `json:"alerted,omitempty"`
}

// ReportStore is implemented by the hub.
type ReportStore interface {
	SubmitReport(ctx context.Context, req ReportRequest, client string) (ReportStatus, bool, error)
	Report(ctx context.Context, id string) (ReportStatus, error)
}
