// Package api is Ronda's HTTP API (/api/v1/...), the same on a node (its own
// cameras) and on the hub (all cameras, by federation). It is transport only:
// it parses requests, authenticates, calls a Backend and maps errors to
// statuses in one table (errors.go). It imports neither node nor hub.
package api

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/ronda-jakarta/ronda/auth"
)

// Node is a kelurahan node as the API shows it.
type Node struct {
	NodeID        string    `json:"node_id"`
	KelurahanCode string    `json:"kelurahan_code"`
	Kelurahan     string    `json:"kelurahan"`
	Kecamatan     string    `json:"kecamatan"`
	Kota          string    `json:"kota"`
	Online        bool      `json:"online"`
	LastSeen      time.Time `json:"last_seen"`
	Cameras       int       `json:"cameras"`
	// AckedSeq (hub): the node's last outbox record committed by the hub.
	AckedSeq uint64 `json:"acked_seq,omitempty"`
	// Status (hub): online, degraded (link flapping, or far behind) or
	// offline; StatusDetail says why in words.
	Status       string     `json:"status,omitempty"`
	StatusDetail string     `json:"status_detail,omitempty"`
	Behind       uint64     `json:"behind_records,omitempty"` // records the node has not delivered yet
	Reconnects   int        `json:"reconnects_5m,omitempty"`
	OfflineSince *time.Time `json:"offline_since,omitempty"`
	// LinkedMembers (hub): the hub members the node has a connection to now;
	// any member reaches the node through one of them. StatusFrom says whose
	// view this is: "cluster" (the leader's merged heartbeats, the same on
	// every member) or "member" (only the answering member's own links, when
	// it has not heard from the leader lately).
	LinkedMembers []string `json:"linked_members,omitempty"`
	StatusFrom    string   `json:"status_from,omitempty"`
	// Storage (hub): the node's recording storage as it last reported.
	Storage *NodeStorage `json:"storage,omitempty"`
}

// NodeStorage is a node's recording storage.
type NodeStorage struct {
	FreeBytes        uint64  `json:"free_bytes"`
	WriteBytesPerSec float64 `json:"write_bytes_per_second"`
	ReserveBytes     uint64  `json:"reserve_bytes"`
	// DaysUntilFull: at the current write rate, days until retention has to
	// delete old footage to keep recording (absent while nothing is written).
	DaysUntilFull *float64  `json:"days_until_full,omitempty"`
	At            time.Time `json:"at"`
}

// StorageLowDays: a node with less than this many days until full shows
// degraded.
const StorageLowDays = 2

// Camera is a camera as the API shows it.
type Camera struct {
	ID            string        `json:"id"`
	Name          string        `json:"name"`
	KelurahanCode string        `json:"kelurahan_code"`
	Kelurahan     string        `json:"kelurahan"`
	NodeID        string        `json:"node_id"`
	State         string        `json:"state"` // connecting | streaming | failing | unknown
	Reason        string        `json:"reason,omitempty"`
	Codec         string        `json:"codec"`
	Width         int           `json:"width"`
	Height        int           `json:"height"`
	Recording     bool          `json:"recording"` // footage durable within the last 30 s
	RecordedUntil *time.Time    `json:"recorded_until,omitempty"`
	Health        *CameraHealth `json:"health,omitempty"` // served by the node that pulls the camera
	// SubStream is the camera's lower-resolution stream for grids (live
	// view only, not recorded), when it has one; at its node.
	SubStream *StreamState `json:"sub_stream,omitempty"`
}

// StreamState is the state of one of a camera's streams.
type StreamState struct {
	State  string `json:"state"` // connecting | streaming | failing
	Reason string `json:"reason,omitempty"`
	Codec  string `json:"codec,omitempty"`
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
}

// CameraHealth is a camera's live stream health as its node measures it.
type CameraHealth struct {
	FPS          float64    `json:"fps"`
	BitrateBps   float64    `json:"bitrate_bps"`
	GOPFrames    int        `json:"gop_frames"`
	LastKeyframe *time.Time `json:"last_keyframe,omitempty"`
	Reconnects   int        `json:"reconnects"`
	ClockSteps   int        `json:"clock_steps"` // times the camera's clock jumped (timeline kept continuous)
	StateSince   time.Time  `json:"state_since"`
	LiveViewers  int        `json:"live_viewers"`
	// LiveWarning says why live view of this camera may look wrong
	// (B-frames), and what to change.
	LiveWarning string `json:"live_warning,omitempty"`
}

// Span is a recorded interval.
type Span struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Gap is an interval without footage and why.
type Gap struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Reason is a stable code: camera_offline, network, node_down,
	// disk_full, write_failed, clock_step or not_recorded.
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"` // what exactly happened
}

// Recordings is the answer of GET /cameras/{id}/recordings.
type Recordings struct {
	CameraID        string    `json:"camera_id"`
	From            time.Time `json:"from"`
	To              time.Time `json:"to"`
	Spans           []Span    `json:"spans"`
	Gaps            []Gap     `json:"gaps"`
	RecordedSeconds float64   `json:"recorded_seconds"`
	Source          string    `json:"source"` // "node" (full index) or "hub" (coverage index)
	// Manifests: per UTC day the range touches, the segment manifest hash
	// (internal/manifest) — at the hub as the node reported it while
	// recording, at the node as its index stands now. Equal hashes mean the
	// node still holds exactly the segments it reported that day.
	Manifests []DayManifest `json:"manifests,omitempty"`
}

// DayManifest is one camera-day's segment manifest hash.
type DayManifest struct {
	Day      string `json:"day"` // YYYY-MM-DD, UTC
	Segments int    `json:"segments"`
	SHA256   string `json:"sha256"`
}

// Me is who is logged in and who serves the API.
type Me struct {
	User     string     `json:"user"`
	Role     string     `json:"role"`
	Scope    auth.Scope `json:"scope,omitzero"`
	ServedBy string     `json:"served_by"` // "hub" | "node"
	Name     string     `json:"name"`      // "Hub Kota Jakarta" or the kelurahan name
	// Can lists the actions (auth.Action: live, playback, export, ...) the
	// user may take at all on this server; NeedsReason those of them that
	// need a reason every time (an auditor's). Both sorted.
	Can         []string `json:"can"`
	NeedsReason []string `json:"needs_reason"`
}

// ExportRequest is the body of POST /api/v1/exports.
type ExportRequest struct {
	Camera string    `json:"camera"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Reason string    `json:"reason"` // required: a case or report number, a police request
}

// Export is an exported piece of footage with its signed manifest.
type Export struct {
	ID     string    `json:"id"`
	Camera string    `json:"camera"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	// Status: done (at its node); at the hub at_node: the node made it and
	// keeps the file (FileURL and ManifestURL are the node's).
	Status      string    `json:"status"`
	Bytes       int64     `json:"bytes"` // 0 at the hub (its audit event does not say)
	SHA256      string    `json:"sha256"`
	Reason      string    `json:"reason"`
	RequestedBy string    `json:"requested_by"`
	Created     time.Time `json:"created"`
	FileURL     string    `json:"file_url"`
	ManifestURL string    `json:"manifest_url"`
	// NodeID: the node that made it and keeps it.
	NodeID string `json:"node_id,omitempty"`
}

// ExportVerification is the answer of GET /api/v1/exports/{id}/verify. At a
// node (Method "manifest") it is the check `ronda verify FILE MANIFEST`
// makes of the stored export; at the hub (Method "audit-log") the check of
// the export's audit event in the hub's signed audit log, as `ronda verify
// --audit-proof` makes it. Checks says what was checked and held, Problems
// what did not (Verified: none).
type ExportVerification struct {
	Export   string    `json:"export"`
	NodeID   string    `json:"node_id,omitempty"`
	Camera   string    `json:"camera,omitempty"`
	Method   string    `json:"method"` // manifest | audit-log
	Verified bool      `json:"verified"`
	Problems []string  `json:"problems"`
	SHA256   string    `json:"sha256"`
	Signer   string    `json:"signer"` // the manifest's signer (node) or the checkpoint's member (hub)
	Checked  time.Time `json:"checked"`
	Checks   []string  `json:"checks"`
	// Hub: the event's leaf and the signed checkpoint that covers it.
	Leaf           *uint64 `json:"leaf,omitempty"`
	CheckpointSize uint64  `json:"checkpoint_size,omitempty"`
	// Note says what this verification does not cover.
	Note string `json:"note,omitempty"`
}

// ExportVerifier is implemented by backends that can check an export (a
// node its stored files, the hub the export's audit event). nodeID (hub)
// may be empty when only one node made an export with this id.
type ExportVerifier interface {
	VerifyExport(ctx context.Context, id, nodeID string) (ExportVerification, error)
}

// WhepOffer is a WHEP POST.
type WhepOffer struct {
	CameraID string
	SDP      string
	User     string
	// NoGOPCache (?gop_cache=0) starts at the camera's next keyframe instead
	// of the cached GOP: for comparing time to first frame.
	NoGOPCache bool
	// Stream (?stream=main|sub): a grid asks for the sub stream; a camera
	// without one serves its main stream.
	Stream string
	// ICEServers the node may use for a relay candidate of its own (the
	// hub member's TURN server; set by the hub, not by clients).
	ICEServers []ICEServer
}

// WhepAnswer is the answer to a WHEP offer.
type WhepAnswer struct {
	SDP     string
	Session string
	Stream  string // the stream served: main or sub (Ronda-Stream header)
	// Warning tells the viewer about a camera problem that affects live view
	// (B-frames), sent as the Ronda-Warning header.
	Warning string
}

// LiveSession describes one live-view session (GET /api/v1/whep/{session}).
type LiveSession struct {
	Session  string `json:"session"`
	CameraID string `json:"camera_id"`
	Stream   string `json:"stream"` // main | sub
	State    string `json:"state"`  // connecting | connected
	// Path says how media flows: "direct" (browser <-> node) or "turn"
	// (through a TURN relay, e.g. the hub's); empty until ICE has chosen.
	Path        string    `json:"path,omitempty"`
	Offered     time.Time `json:"offered"`
	ConnectMS   int64     `json:"connect_ms,omitempty"`
	FirstFrame  int64     `json:"first_frame_ms,omitempty"`
	StartedFrom string    `json:"started_from,omitempty"` // gop_cache | keyframe
	Packets     int64     `json:"packets"`
	Bytes       int64     `json:"bytes"`
	Dropped     int64     `json:"dropped_frames"`
	PLIs        int64     `json:"pli"`
	GOPReplays  int64     `json:"gop_replays"`
	// NodeID is the node serving it (set by the hub).
	NodeID string `json:"node_id,omitempty"`
	// NodeCandidates: the kinds of ICE candidate the node offered: host,
	// and relay when it allocated one on the hub's TURN server.
	NodeCandidates []string `json:"node_candidates,omitempty"`
}

// ICEServer is a STUN or TURN server a browser may use for live view
// (RTCIceServer). TURN credentials are short-lived.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ICEServerProvider is implemented by a Backend that offers browsers ICE
// servers (the hub's embedded TURN server): GET /api/v1/live/ice-servers,
// and Link headers on the WHEP answer (RFC 9725).
type ICEServerProvider interface {
	ICEServers(ctx context.Context, user string) []ICEServer
}

// RevocationRequest names a certificate to revoke (or whose revocation to
// lift): its SPIFFE identity, or a node id or hub member name the hub turns
// into one.
type RevocationRequest struct {
	Identity string `json:"identity,omitempty"`
	NodeID   string `json:"node_id,omitempty"`
	Member   string `json:"member,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Revocation is a revoked certificate identity.
type Revocation struct {
	Identity string    `json:"identity"`
	Reason   string    `json:"reason"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
}

// Revoker is implemented by a hub member: the certificate deny-list in the
// Raft state (POST/GET/DELETE /api/v1/revocations).
type Revoker interface {
	Revoke(ctx context.Context, req RevocationRequest, user string) (Revocation, error)
	LiftRevocation(ctx context.Context, req RevocationRequest, user string) (identity string, err error)
	Revocations(ctx context.Context) ([]Revocation, error)
}

// JoinToken is a single-use enrollment token for one kelurahan.
type JoinToken struct {
	Token     string    `json:"token"` // shown once; the hub keeps only its hash
	Kelurahan string    `json:"kelurahan"`
	Expires   time.Time `json:"expires"`
}

// EnrollRequest is a new node asking for its certificate: the token, the
// node id it will have, and a certificate request for the key it made.
type EnrollRequest struct {
	Token  string `json:"token"`
	NodeID string `json:"node_id"`
	CSR    string `json:"csr"` // PEM
}

// Enrolled is the answer: the node's certificate and the city CA.
type Enrolled struct {
	Identity string `json:"identity"`
	Cert     string `json:"cert"` // PEM
	CA       string `json:"ca"`   // PEM
}

// Enroller is implemented by a hub member with enrollment configured.
type Enroller interface {
	CreateJoinToken(ctx context.Context, kelurahan string, ttl time.Duration, user string) (JoinToken, error)
	Enroll(ctx context.Context, req EnrollRequest) (Enrolled, error)
}

// MaxExportRange bounds one export.
const MaxExportRange = 24 * time.Hour

// Backend is what a node or a hub member implements to serve the API.
// Errors wrap the sentinels in errors.go so they map to the right status.
type Backend interface {
	// Identity returns "hub" or "node" and a display name.
	Identity() (servedBy, name string)
	Nodes(ctx context.Context) ([]Node, error)
	Cameras(ctx context.Context) ([]Camera, error)
	Recordings(ctx context.Context, cameraID string, from, to time.Time) (Recordings, error)
	// Playback writes fragmented MP4 of [from,to) to w. An error returned
	// before anything was written becomes a JSON error response.
	Playback(ctx context.Context, w io.Writer, cameraID string, from, to time.Time, user string) error
	// (A Backend that also implements RangePlayback serves media.mp4 with
	// a known length and HTTP Range.)
	// Whep answers a WHEP offer; the answer's Session names it for PATCH,
	// GET and DELETE.
	Whep(ctx context.Context, offer WhepOffer) (WhepAnswer, error)
	// WhepPatch applies a trickle ICE fragment (RFC 8840) to a session.
	WhepPatch(ctx context.Context, sessionID, fragment string) error
	// WhepSession describes a session: state, media path, counters.
	WhepSession(ctx context.Context, sessionID string) (LiveSession, error)
	WhepDelete(ctx context.Context, sessionID string) error
	// Cluster describes the hub's Raft cluster (ErrNotFound on a node).
	Cluster(ctx context.Context) (any, error)
	// CreateExport makes an export and its signed manifest.
	CreateExport(ctx context.Context, req ExportRequest, user string) (Export, error)
	Exports(ctx context.Context) ([]Export, error)
	// OpenExport opens an export's "file" or "manifest" for download.
	OpenExport(ctx context.Context, id, part string) (f io.ReadSeekCloser, name string, modTime time.Time, err error)
}

// Authenticator logs users in and verifies tokens (*auth.Authenticator).
type Authenticator interface {
	Login(user, password string) (token string, claims auth.Claims, err error)
	Verify(token string) (auth.Claims, error)
	// Refresh returns a fresh token for a valid one (the user as it is now).
	Refresh(token string) (string, auth.Claims, error)
}

// LogoutHandler is implemented by backends that void a user's tokens
// (POST /api/v1/logout): the hub for every member and node, a node for the
// tokens of its own offline logins.
type LogoutHandler interface {
	Logout(ctx context.Context, user string) error
}

// CameraLocator is implemented by backends that can tell a camera's
// kelurahan without listing every camera.
type CameraLocator interface {
	CameraKelurahan(ctx context.Context, camera string) (string, error)
	// OwnKelurahan is a node's kelurahan ("" at the hub).
	OwnKelurahan() string
}

// UserInfo is a user as GET /api/v1/users shows it (never the password).
type UserInfo struct {
	Name     string     `json:"name"`
	Role     string     `json:"role"`
	Scope    auth.Scope `json:"scope,omitzero"`
	Disabled bool       `json:"disabled,omitempty"`
	// Source: "hub" (managed through the API) or "config" (hub.yaml, read-only).
	Source    string    `json:"source"`
	Created   time.Time `json:"created,omitzero"`
	Changed   time.Time `json:"changed,omitzero"`
	ChangedBy string    `json:"changed_by,omitempty"`
}

// UserRequest is the body of POST /api/v1/users (all of name, password,
// role and the scope the role needs) and PATCH /api/v1/users/{name} (only
// what changes).
type UserRequest struct {
	Name     string      `json:"name"`
	Password string      `json:"password,omitempty"`
	Role     string      `json:"role,omitempty"`
	Scope    *auth.Scope `json:"scope,omitempty"`
	Disabled *bool       `json:"disabled,omitempty"`
}

// MinPasswordLength is the shortest password the users API takes.
const MinPasswordLength = 10

// UserAdmin is implemented by the hub: users in its replicated state.
// Errors a caller got wrong wrap ErrBadRequest; a missing user ErrNotFound.
type UserAdmin interface {
	Users(ctx context.Context) ([]UserInfo, error)
	// PutUser creates (create) or changes a user.
	PutUser(ctx context.Context, req UserRequest, create bool, by string) (UserInfo, error)
	DeleteUser(ctx context.Context, name, by string) error
}

// PlaybackMedia is a planned playback whose length is known before the
// first byte: media.mp4 serves it with Content-Length and HTTP Range.
type PlaybackMedia interface {
	io.ReadSeeker
	io.Closer
	// Info is what the file shows: the actual range, and why it ends early
	// or how many gaps it holds. It becomes X-Ronda-* response headers.
	Info() PlaybackInfo
}

// PlaybackInfo describes a planned playback.
type PlaybackInfo struct {
	From, To     time.Time
	KeyframeFrom time.Time // where decoding starts (an edit list skips to From)
	Gaps         int
	Truncated    string
}

// RangePlayback is implemented by backends that can plan playbacks (nodes).
type RangePlayback interface {
	OpenPlayback(ctx context.Context, cameraID string, from, to time.Time, user string) (PlaybackMedia, error)
}

// Hold keeps a camera's footage in [From, To) from being deleted by
// retention until Expires (zero: until released).
type Hold struct {
	ID        string    `json:"id"`
	CameraID  string    `json:"camera"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Reason    string    `json:"reason"`
	Expires   time.Time `json:"expires,omitzero"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by,omitempty"`
	// Active is false once Expires has passed (the footage may go).
	Active bool `json:"active"`
	// At the hub: the node keeping the footage and where the hold stands —
	// pending (the node has not applied it yet; it is offline), applied,
	// failed (Error says why), release_pending, released.
	NodeID string `json:"node_id,omitempty"`
	State  string `json:"state,omitempty"`
	Error  string `json:"error,omitempty"`
}

// HoldRequest is the body of POST /api/v1/cameras/{id}/holds.
type HoldRequest struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Reason  string    `json:"reason"`
	Expires time.Time `json:"expires,omitzero"`
}

// MaxHoldRange bounds one hold (longer ones are several holds, on purpose).
const MaxHoldRange = 31 * 24 * time.Hour

// HoldLister is implemented by backends that list every camera's holds
// (GET /api/v1/holds): a node its recording store's, the hub those in its
// replicated state.
type HoldLister interface {
	AllHolds(ctx context.Context) ([]Hold, error)
}

// HoldStore is implemented by backends that keep footage (nodes).
type HoldStore interface {
	PutHold(ctx context.Context, cameraID string, req HoldRequest, user string) (Hold, error)
	Holds(ctx context.Context, cameraID string) ([]Hold, error)
	DeleteHold(ctx context.Context, cameraID, holdID string) error
}

// SearchRequest is GET /api/v1/search: cameras by place and time. Zero
// fields do not filter.
type SearchRequest struct {
	From, To  time.Time // footage in [From, To); both zero: any camera
	Kota      string    // e.g. 31.71
	Kecamatan string    // e.g. 31.71.01
	Kelurahan string    // e.g. 31.71.01.1001
	Node      string
	Tags      []string // all of them
	Lat, Lon  float64
	RadiusM   float64 // with Lat/Lon: within this many metres
	Limit     int
}

// SearchCamera is one camera found.
type SearchCamera struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	NodeID          string    `json:"node_id"`
	KelurahanCode   string    `json:"kelurahan_code"`
	Kelurahan       string    `json:"kelurahan"`
	Kecamatan       string    `json:"kecamatan"`
	Kota            string    `json:"kota"`
	Lat             float64   `json:"lat,omitempty"`
	Lon             float64   `json:"lon,omitempty"`
	RT              string    `json:"rt,omitempty"`
	RW              string    `json:"rw,omitempty"`
	Tags            []string  `json:"tags,omitempty"`
	State           string    `json:"state"`
	Reason          string    `json:"reason,omitempty"`
	RecordedSeconds float64   `json:"recorded_seconds"`
	FirstRecorded   time.Time `json:"first_recorded,omitzero"`
	LastRecorded    time.Time `json:"last_recorded,omitzero"`
	DistanceM       float64   `json:"distance_m,omitempty"`
}

// SearchResult answers a search.
type SearchResult struct {
	Cameras []SearchCamera `json:"cameras"`
	Total   int            `json:"total"`   // matched (cameras may be cut at limit)
	Scanned int            `json:"scanned"` // cameras in the catalog
	// Consistency says how fresh the answer is: "stale" is this member's
	// applied state, which may trail the leader by the replication delay.
	Consistency  string `json:"consistency"`
	Member       string `json:"member"`
	AppliedIndex uint64 `json:"applied_index"`
}

// ConsistentReader is implemented by backends whose catalog is replicated
// (hub members). Before a catalog read the server calls ReadBarrier with the
// request's ?consistency= (stale | default | linearizable; empty: default);
// it returns the level it guarantees, which the answer states in the
// X-Ronda-Read-Consistency header (and in a search's body).
type ConsistentReader interface {
	ReadBarrier(ctx context.Context, consistency string) (level string, err error)
}

// AuditRecord is one audit event as GET /api/v1/audit lists it.
type AuditRecord struct {
	NodeID   string     `json:"node_id"`
	Seq      uint64     `json:"seq"` // the node's audit sequence: 1, 2, 3, ... without gaps
	Time     time.Time  `json:"time"`
	User     string     `json:"user"`
	Action   string     `json:"action"`
	CameraID string     `json:"camera_id,omitempty"`
	From     *time.Time `json:"from,omitempty"`
	To       *time.Time `json:"to,omitempty"`
	Remote   string     `json:"remote,omitempty"`
	Reason   string     `json:"reason,omitempty"`
	Outcome  string     `json:"outcome"`
	// Hash is the event's chain hash (hex; internal/auditchain), PrevHash
	// the one before it.
	Hash     string `json:"hash"`
	PrevHash string `json:"prev_hash"`
	// Hub only: when the hub committed it, and why it does not continue the
	// node's chain (empty when it does).
	Committed  *time.Time `json:"committed,omitempty"`
	ChainError string     `json:"chain_error,omitempty"`
	// Leaf (hub): the event's leaf in the audit Merkle log, when it has one.
	Leaf *uint64 `json:"leaf,omitempty"`
}

// AuditQuery selects audit events: one node's (NodeID; required on a hub
// to page with After), those with Seq > After, at most Limit.
//
// For AuditSearcher (order=newest) After is unused; Before is the cursor
// (a leaf index at the hub, an audit seq at a node: events below it; 0:
// from the newest), and User, Action (a prefix), Camera and Outcome (ok,
// denied or error) filter, as Match says. At most MaxScan records are
// examined.
type AuditQuery struct {
	NodeID string
	After  uint64
	Limit  int

	Before  uint64
	User    string
	Action  string
	Camera  string
	Outcome string
	MaxScan int
}

// Match reports whether an event passes the query's filters.
func (q AuditQuery) Match(nodeID, user, action, camera, outcome string) bool {
	switch {
	case q.NodeID != "" && nodeID != q.NodeID,
		q.User != "" && user != q.User,
		q.Action != "" && !strings.HasPrefix(action, q.Action),
		q.Camera != "" && camera != q.Camera:
		return false
	}
	switch q.Outcome {
	case "ok":
		return strings.HasPrefix(outcome, "ok")
	case "denied":
		return strings.HasPrefix(outcome, "denied")
	case "error":
		return strings.HasPrefix(outcome, "error")
	}
	return true
}

// MaxAuditScan bounds the records one GET /api/v1/audit?order=newest examines.
const MaxAuditScan = 50000

// Bounded is q with Limit and MaxScan in their ranges (defaults 1000 and
// MaxAuditScan).
func (q AuditQuery) Bounded() AuditQuery {
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	if q.MaxScan <= 0 || q.MaxScan > MaxAuditScan {
		q.MaxScan = MaxAuditScan
	}
	return q
}

// AuditPage is one page of a newest-first audit listing. NextBefore is the
// cursor of the next page (nil: the oldest record was reached); Scanned how
// many records were examined for this one.
type AuditPage struct {
	Events     []AuditRecord
	NextBefore *uint64
	Scanned    int
}

// AuditSearcher is implemented by backends that list their audit log newest
// first with filters (GET /api/v1/audit?order=newest): the hub in the order
// it committed the events (by leaf index), a node by its audit seq.
type AuditSearcher interface {
	AuditNewest(ctx context.Context, q AuditQuery) (AuditPage, error)
}

// AuditVerifier is implemented by backends that check their own audit log
// (GET /api/v1/audit/verify): a hub member its audit Merkle log, a node its
// hash chain. The answer is served as JSON and carries "ok".
type AuditVerifier interface {
	VerifyAudit(ctx context.Context) (any, error)
}

// AuditVerifyCache is how long GET /api/v1/audit/verify answers from its
// last verification.
const AuditVerifyCache = 30 * time.Second

// NodeAuditVerification is a node's answer of GET /api/v1/audit/verify.
type NodeAuditVerification struct {
	OK       bool                `json:"ok"`
	NodeID   string              `json:"node_id"`
	Events   uint64              `json:"events"`
	HeadSeq  uint64              `json:"head_seq"`
	HeadHash string              `json:"head_hash,omitempty"`
	Findings []AuditChainFinding `json:"findings"`
	TookMS   int64               `json:"took_ms"`
	Checked  time.Time           `json:"checked"`
	Note     string              `json:"note,omitempty"` // what the check cannot show
}

// AuditChainFinding is something wrong in a node's audit hash chain: the
// event (by audit seq) and what is wrong with it.
type AuditChainFinding struct {
	NodeID  string `json:"node_id,omitempty"`
	Seq     uint64 `json:"seq"`
	Problem string `json:"problem"`
}

// AuditLog is implemented by backends that keep audit events (a node its
// own, the hub every node's).
type AuditLog interface {
	Audit(ctx context.Context, q AuditQuery) ([]AuditRecord, error)
}

// Searcher is implemented by backends that hold the city's catalog (hub).
type Searcher interface {
	Search(ctx context.Context, req SearchRequest) (SearchResult, error)
}

// Backup is a pinned, consistent view of a hub member's state.
type Backup interface {
	AppliedIndex() uint64
	WriteTo(w io.Writer) (int64, error)
	Close()
}

// Backuper is implemented by backends that can take an online backup (hub
// members). OpenBackup first makes the member's state at least as new as
// the leader's at the time of the call (a default read barrier).
type Backuper interface {
	OpenBackup(ctx context.Context) (b Backup, member string, err error)
}

// JoinRequest is the body of POST /api/v1/cluster/members.
type JoinRequest struct {
	ID   string `json:"id"`
	Raft string `json:"raft"`
	GRPC string `json:"grpc"`
	HTTP string `json:"http,omitempty"`
}

// ClusterAdmin is implemented by hub members: membership and leadership.
// Errors a caller got wrong wrap ErrBadRequest.
type ClusterAdmin interface {
	Members(ctx context.Context) (any, error)
	Join(ctx context.Context, req JoinRequest, user string) error
	RemoveMember(ctx context.Context, id, user string) error
	TransferLeader(ctx context.Context, to, user string) (newLeader string, err error)
}

// Area is a kota/kabupaten, kecamatan or kelurahan with what the hub knows
// in it.
type Area struct {
	Code    string  `json:"code"`
	Name    string  `json:"name"`
	Level   string  `json:"level"` // kota | kecamatan | kelurahan
	Parent  string  `json:"parent,omitempty"`
	Lat     float64 `json:"lat"`
	Lon     float64 `json:"lon"`
	Nodes   int     `json:"nodes"`
	Cameras int     `json:"cameras"`
}

// Areas is the answer of GET /api/v1/areas.
type Areas struct {
	Version string `json:"version"`
	Source  string `json:"source"`
	Areas   []Area `json:"areas"`
}

// AreaLister is implemented by backends holding the seeded area catalog (hub).
type AreaLister interface {
	Areas(ctx context.Context, level, parent string) (Areas, error)
}

// AuditCheckpoint is a signed (size, root) of the hub's audit Merkle log.
type AuditCheckpoint struct {
	Size      uint64 `json:"size"`
	Root      []byte `json:"root"`
	At        int64  `json:"at_unix_nano"`
	Member    string `json:"member"`
	Signature []byte `json:"signature"`
}

// AuditLeaf is one leaf of the audit log: where its event is kept, the
// hash the log committed to, and the event as the member holds it now (nil
// if it does not).
type AuditLeaf struct {
	Index    uint64       `json:"index"`
	NodeID   string       `json:"node_id"`
	Seq      uint64       `json:"seq"`
	LeafHash []byte       `json:"leaf_hash"`
	Record   *AuditRecord `json:"record,omitempty"`
}

// AuditCheckpoints is the answer of GET /api/v1/audit/checkpoints.
type AuditCheckpoints struct {
	// PublicKey is the hub's Ed25519 key that signs checkpoints (and tokens).
	PublicKey   []byte            `json:"public_key"`
	Size        uint64            `json:"size"` // leaves now
	Root        []byte            `json:"root"`
	Member      string            `json:"member"`
	Checkpoints []AuditCheckpoint `json:"checkpoints"`
}

// MaxAuditLeaves bounds one GET /api/v1/audit/leaves answer.
const MaxAuditLeaves = 10000

// AuditProver is implemented by hub members: the audit Merkle log.
type AuditProver interface {
	AuditCheckpoints(ctx context.Context) (AuditCheckpoints, error)
	AuditLeaves(ctx context.Context, start uint64, count int) ([]AuditLeaf, error)
	// AuditProof: inclusion of leaf index in the tree of size (consistency
	// false), or consistency between sizes index and size.
	AuditProof(ctx context.Context, index, size uint64, consistency bool) ([][]byte, error)
}

// ExportProof ties an export to the hub's audit log: the audit event its
// node logged when it made the export (naming the export and its file's
// SHA-256), that event's leaf, a signed checkpoint of the log that includes
// it, the RFC 6962 inclusion proof, and the hub's public key. `ronda verify
// --audit-proof` checks it offline together with the export.
type ExportProof struct {
	Version    int             `json:"version"`
	NodeID     string          `json:"node_id"`
	ExportID   string          `json:"export_id"`
	Record     AuditRecord     `json:"record"`
	LeafIndex  uint64          `json:"leaf_index"`
	Checkpoint AuditCheckpoint `json:"checkpoint"`
	Inclusion  [][]byte        `json:"inclusion"`
	PublicKey  []byte          `json:"public_key"`
}

// ExportProver is implemented by hub members.
type ExportProver interface {
	ExportProof(ctx context.Context, nodeID, exportID string) (ExportProof, error)
}
