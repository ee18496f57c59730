package api

// The authorisation matrix: every role × every API call × a camera of the
// user's own kelurahan and one of another, at the hub and at a node. The
// expected answers are written out below by hand (not computed from the
// policy), every cell is asserted, and every refusal must be in the audit
// log.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/auth"
)

const (
	kelOwn   = "31.71.01.1001" // Gambir, Jakarta Pusat
	kelOther = "31.74.01.1001" // Jakarta Selatan
	camOwn   = "3171011001-cam1"
	camOwn2  = "3171011001-cam2" // own kelurahan, not the viewer's camera
	camOther = "3174011001-cam1"
)

// matrixBackend answers every call successfully for the cameras above.
type matrixBackend struct {
	servedBy string
}

func (m matrixBackend) Identity() (string, string) { return m.servedBy, "matrix" }
func (matrixBackend) Nodes(context.Context) ([]Node, error) {
	return []Node{{NodeID: "n1", KelurahanCode: kelOwn}, {NodeID: "n2", KelurahanCode: kelOther}}, nil
}
func (matrixBackend) Cameras(context.Context) ([]Camera, error) {
	return []Camera{{ID: camOwn, KelurahanCode: kelOwn}, {ID: camOwn2, KelurahanCode: kelOwn}, {ID: camOther, KelurahanCode: kelOther}}, nil
}
func (matrixBackend) CameraKelurahan(_ context.Context, id string) (string, error) {
	switch id {
	case camOwn, camOwn2:
		return kelOwn, nil
	case camOther:
		return kelOther, nil
	}
	return "", fmt.Errorf("%w: no camera %q", ErrNotFound, id)
}
func (m matrixBackend) OwnKelurahan() string {
	if m.servedBy == "node" {
		return kelOwn
	}
	return ""
}
func (matrixBackend) Recordings(_ context.Context, id string, from, to time.Time) (Recordings, error) {
	return Recordings{CameraID: id, Spans: []Span{{Start: from, End: to}}}, nil
}
func (matrixBackend) Playback(_ context.Context, w io.Writer, _ string, _, _ time.Time, _ string) error {
	_, err := w.Write([]byte("ftypmp4"))
	return err
}
func (matrixBackend) Whep(context.Context, WhepOffer) (WhepAnswer, error) {
	return WhepAnswer{SDP: "v=0", Session: "s1"}, nil
}
func (matrixBackend) WhepPatch(context.Context, string, string) error { return nil }
func (matrixBackend) WhepSession(context.Context, string) (LiveSession, error) {
	return LiveSession{Session: "s1"}, nil
}
func (matrixBackend) WhepDelete(context.Context, string) error       { return nil }
func (matrixBackend) ICEServers(context.Context, string) []ICEServer { return nil }
func (matrixBackend) Cluster(context.Context) (any, error) {
	return map[string]string{"leader": "h1"}, nil
}
func (matrixBackend) CreateExport(_ context.Context, req ExportRequest, _ string) (Export, error) {
	return Export{ID: "x", Camera: req.Camera}, nil
}
func (matrixBackend) Exports(context.Context) ([]Export, error) {
	return []Export{{ID: "e-own", Camera: camOwn}, {ID: "e-other", Camera: camOther}}, nil
}
func (matrixBackend) OpenExport(_ context.Context, id, _ string) (io.ReadSeekCloser, string, time.Time, error) {
	return nopCloser{strings.NewReader("data")}, id + ".mp4", time.Unix(0, 0), nil
}
func (matrixBackend) PutHold(_ context.Context, id string, req HoldRequest, _ string) (Hold, error) {
	return Hold{ID: "h1", CameraID: id}, nil
}
func (matrixBackend) Holds(context.Context, string) ([]Hold, error) { return nil, nil }
func (matrixBackend) AllHolds(context.Context) ([]Hold, error) {
	return []Hold{{ID: "h-own", CameraID: camOwn, Active: true}, {ID: "h-other", CameraID: camOther, Active: true}}, nil
}
func (matrixBackend) VerifyExport(_ context.Context, id, _ string) (ExportVerification, error) {
	return ExportVerification{Export: id, Verified: true}, nil
}
func (matrixBackend) VerifyAudit(context.Context) (any, error) {
	return map[string]bool{"ok": true}, nil
}
func (matrixBackend) DeleteHold(context.Context, string, string) error { return nil }
func (matrixBackend) Search(context.Context, SearchRequest) (SearchResult, error) {
	return SearchResult{Cameras: []SearchCamera{{ID: camOwn, KelurahanCode: kelOwn}, {ID: camOther, KelurahanCode: kelOther}}, Total: 2}, nil
}
func (matrixBackend) Areas(context.Context, string, string) (Areas, error) { return Areas{}, nil }
func (matrixBackend) Audit(context.Context, AuditQuery) ([]AuditRecord, error) {
	return nil, nil
}
func (matrixBackend) AuditCheckpoints(context.Context) (AuditCheckpoints, error) {
	return AuditCheckpoints{}, nil
}
func (matrixBackend) AuditLeaves(context.Context, uint64, int) ([]AuditLeaf, error) { return nil, nil }
func (matrixBackend) AuditProof(context.Context, uint64, uint64, bool) ([][]byte, error) {
	return nil, nil
}
func (matrixBackend) ExportProof(context.Context, string, string) (ExportProof, error) {
	return ExportProof{}, nil
}
func (matrixBackend) Members(context.Context) (any, error)               { return []string{"h1"}, nil }
func (matrixBackend) Join(context.Context, JoinRequest, string) error    { return nil }
func (matrixBackend) RemoveMember(context.Context, string, string) error { return nil }
func (matrixBackend) TransferLeader(context.Context, string, string) (string, error) {
	return "h2", nil
}
func (matrixBackend) OpenBackup(context.Context) (Backup, string, error) {
	return nopBackup{}, "h1", nil
}
func (matrixBackend) Revoke(_ context.Context, req RevocationRequest, _ string) (Revocation, error) {
	return Revocation{Identity: "spiffe://x"}, nil
}
func (matrixBackend) LiftRevocation(context.Context, RevocationRequest, string) (string, error) {
	return "spiffe://x", nil
}
func (matrixBackend) Revocations(context.Context) ([]Revocation, error) { return nil, nil }
func (matrixBackend) CreateJoinToken(_ context.Context, kel string, _ time.Duration, _ string) (JoinToken, error) {
	return JoinToken{Token: "t", Kelurahan: kel}, nil
}
func (matrixBackend) Enroll(context.Context, EnrollRequest) (Enrolled, error) { return Enrolled{}, nil }
func (matrixBackend) Users(context.Context) ([]UserInfo, error) {
	return []UserInfo{{Name: "someone", Role: "operator"}}, nil
}
func (matrixBackend) PutUser(_ context.Context, req UserRequest, _ bool, _ string) (UserInfo, error) {
	return UserInfo{Name: req.Name}, nil
}
func (matrixBackend) DeleteUser(context.Context, string, string) error { return nil }
func (matrixBackend) Logout(context.Context, string) error             { return nil }

// Cases: "case-CAMERA" holds that camera.
func matrixCase(id string) Case {
	cam := strings.TrimPrefix(id, "case-")
	kel, _ := matrixBackend{}.CameraKelurahan(context.Background(), cam)
	return Case{ID: id, Reason: "JAKI-1", Items: []CaseItem{{ID: "i1", Camera: cam, Kelurahan: kel}}}
}
func (matrixBackend) CreateCase(_ context.Context, req CaseRequest, _ string) (Case, bool, error) {
	return matrixCase("case-" + req.Items[0].Camera), true, nil
}
func (matrixBackend) Cases(context.Context) ([]Case, error) {
	return []Case{matrixCase("case-" + camOwn), matrixCase("case-" + camOther)}, nil
}
func (matrixBackend) Case(_ context.Context, id string) (Case, error) {
	if _, err := (matrixBackend{}).CameraKelurahan(context.Background(), strings.TrimPrefix(id, "case-")); err != nil {
		return Case{}, fmt.Errorf("%w: no case %q", ErrNotFound, id)
	}
	return matrixCase(id), nil
}
func (matrixBackend) CloseCase(_ context.Context, id, _ string) (Case, error) {
	return matrixCase(id), nil
}
func (matrixBackend) RequestPull(_ context.Context, id, _ string) (Case, error) {
	return matrixCase(id), nil
}
func (matrixBackend) Bundle(_ context.Context, _, _ string, w BundleWriter) error {
	_, err := w.Write([]byte("PK"))
	return err
}
func (matrixBackend) CaseViewed(context.Context, string, string) {}
func (matrixBackend) RunRetention(_ context.Context, d time.Duration) (RetentionResult, error) {
	return RetentionResult{OlderThan: d.String()}, nil
}

type nopBackup struct{}

func (nopBackup) AppliedIndex() uint64 { return 1 }
func (nopBackup) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write([]byte("backup"))
	return int64(n), err
}
func (nopBackup) Close() {}

// The principals: one letter each in the expectation strings.
//
//	A city admin            O control-room operator
//	K area operator (kota 31.71: own kelurahan in it)
//	C area operator (kecamatan 31.71.01)
//	L area operator (kelurahan 31.71.01.1001)
//	V RT/RW viewer of cam1 of the own kelurahan, live + last 24 h
//	v RT/RW viewer of the same camera, live only
//	U auditor giving a reason   u auditor giving none
//	N node admin of the own kelurahan
var principals = []struct {
	letter string
	user   auth.User
	reason bool
}{
	{"A", auth.User{Name: "admin", Role: auth.RoleAdmin}, false},
	{"O", auth.User{Name: "operator", Role: auth.RoleOperator}, false},
	{"K", auth.User{Name: "kota", Role: auth.RoleAreaOperator, Scope: auth.Scope{Areas: []string{"31.71"}}}, false},
	{"C", auth.User{Name: "kecamatan", Role: auth.RoleAreaOperator, Scope: auth.Scope{Areas: []string{"31.71.01"}}}, false},
	{"L", auth.User{Name: "kelurahan", Role: auth.RoleAreaOperator, Scope: auth.Scope{Areas: []string{kelOwn}}}, false},
	{"V", auth.User{Name: "rtrw", Role: auth.RoleViewer, Scope: auth.Scope{Cameras: []string{camOwn}, PlaybackHours: 24}}, false},
	{"v", auth.User{Name: "rtrw-live", Role: auth.RoleViewer, Scope: auth.Scope{Cameras: []string{camOwn}}}, false},
	{"U", auth.User{Name: "auditor", Role: auth.RoleAuditor}, true},
	{"u", auth.User{Name: "auditor2", Role: auth.RoleAuditor}, false},
	{"N", auth.User{Name: "nodeadmin", Role: auth.RoleNodeAdmin, Scope: auth.Scope{Areas: []string{kelOwn}}}, false},
}

// A call: how to make it for a camera ("" for calls without one), and who
// may make it for the own kelurahan's camera and for the other's, at the
// hub and at a node ("=" at the node: as at the hub).
type matrixCall struct {
	route              string // the server's pattern
	name               string // distinguishes variants of one route
	method, path, body string // {cam} and {exp} are filled in
	ctype              string
	own, other         string // letters allowed
	ownNode, otherNode string // "" : as at the hub
	// sees: for list calls, who sees the other kelurahan's entries.
	listKey, seesOther string
}

const (
	all      = "AOKCLVvUuN"
	cityWide = "AOUu"
)

func matrixCalls(now time.Time) []matrixCall {
	rng := "from=" + now.Add(-time.Hour).Format(time.RFC3339) + "&to=" + now.Add(-time.Hour+time.Minute).Format(time.RFC3339)
	old := "from=" + now.Add(-48*time.Hour).Format(time.RFC3339) + "&to=" + now.Add(-48*time.Hour+time.Minute).Format(time.RFC3339)
	hold := fmt.Sprintf(`{"from":%q,"to":%q,"reason":"JAKI-1"}`, now.Add(-time.Hour).Format(time.RFC3339), now.Format(time.RFC3339))
	export := fmt.Sprintf(`{"camera":"{cam}","from":%q,"to":%q,"reason":"JAKI-1"}`, now.Add(-time.Hour).Format(time.RFC3339), now.Add(-50*time.Minute).Format(time.RFC3339))
	kase := fmt.Sprintf(`{"reason":"JAKI-1","items":[{"camera":"{cam}","from":%q,"to":%q}]}`, now.Add(-time.Hour).Format(time.RFC3339), now.Add(-50*time.Minute).Format(time.RFC3339))
	return []matrixCall{
		{route: "POST /api/v1/logout", method: "POST", path: "/api/v1/logout", own: all, other: all},
		{route: "POST /api/v1/token", method: "POST", path: "/api/v1/token", own: all, other: all},
		{route: "GET /api/v1/me", method: "GET", path: "/api/v1/me", own: all, other: all},
		{route: "GET /api/v1/nodes", method: "GET", path: "/api/v1/nodes", own: all, other: all, listKey: "nodes", seesOther: "AOUu"},
		{route: "GET /api/v1/cameras", method: "GET", path: "/api/v1/cameras", own: all, other: all, listKey: "cameras", seesOther: "AOUu"},
		{route: "GET /api/v1/search", method: "GET", path: "/api/v1/search", own: all, other: all, listKey: "cameras", seesOther: "AOUu"},
		{route: "GET /api/v1/areas", method: "GET", path: "/api/v1/areas", own: all, other: all},
		{route: "GET /api/v1/cameras/{id}", method: "GET", path: "/api/v1/cameras/{cam}", own: all, other: cityWide},
		{route: "GET /api/v1/cameras/{id}", name: "not the viewer's camera", method: "GET", path: "/api/v1/cameras/" + camOwn2, own: "AOKCLUuN", other: "AOKCLUuN"},
		{route: "GET /api/v1/cameras/{id}/recordings", method: "GET", path: "/api/v1/cameras/{cam}/recordings?" + rng, own: all, other: cityWide},
		{route: "GET /api/v1/cameras/{id}/completeness", method: "GET", path: "/api/v1/cameras/{cam}/completeness?" + rng, own: all, other: cityWide},
		{route: "GET /api/v1/cameras/{id}/media.mp4", method: "GET", path: "/api/v1/cameras/{cam}/media.mp4?" + rng, own: "AOKCLVUN", other: "AOU"},
		{route: "GET /api/v1/cameras/{id}/media.mp4", name: "48 h ago", method: "GET", path: "/api/v1/cameras/{cam}/media.mp4?" + old, own: "AOKCLUN", other: "AOU"},
		{route: "POST /api/v1/cameras/{id}/whep", method: "POST", path: "/api/v1/cameras/{cam}/whep", body: "v=0 offer", ctype: "application/sdp", own: "AOKCLVvN", other: "AO"},
		{route: "PATCH /api/v1/whep/{session}", method: "PATCH", path: "/api/v1/whep/s1", body: "a=candidate:1", ctype: "application/trickle-ice-sdpfrag", own: "AOKCLVvN", other: "AOKCLVvN"},
		{route: "GET /api/v1/whep/{session}", method: "GET", path: "/api/v1/whep/s1", own: "AOKCLVvN", other: "AOKCLVvN"},
		{route: "DELETE /api/v1/whep/{session}", method: "DELETE", path: "/api/v1/whep/s1", own: "AOKCLVvN", other: "AOKCLVvN"},
		{route: "GET /api/v1/live/ice-servers", method: "GET", path: "/api/v1/live/ice-servers", own: "AOKCLVvN", other: "AOKCLVvN"},
		{route: "GET /api/v1/cameras/{id}/holds", method: "GET", path: "/api/v1/cameras/{cam}/holds", own: "AOKCLUuN", other: cityWide},
		{route: "GET /api/v1/holds", method: "GET", path: "/api/v1/holds", own: "AOKCLUuN", other: "AOKCLUuN", listKey: "holds", seesOther: "AOUu"},
		{route: "POST /api/v1/cameras/{id}/holds", method: "POST", path: "/api/v1/cameras/{cam}/holds", body: hold, ctype: "application/json", own: "AOKCLUuN", other: cityWide},
		{route: "DELETE /api/v1/cameras/{id}/holds/{hold}", method: "DELETE", path: "/api/v1/cameras/{cam}/holds/h1", own: "AOKCLUN", other: "AOU"},
		{route: "POST /api/v1/exports", method: "POST", path: "/api/v1/exports", body: export, ctype: "application/json", own: "AOKCLUuN", other: cityWide},
		{route: "GET /api/v1/exports", method: "GET", path: "/api/v1/exports", own: "AOKCLUuN", other: "AOKCLUuN", listKey: "exports", seesOther: "AOUu"},
		{route: "GET /api/v1/exports/{id}/file.mp4", method: "GET", path: "/api/v1/exports/{exp}/file.mp4", own: "AOKCLUuN", other: cityWide},
		{route: "GET /api/v1/exports/{id}/manifest.json", method: "GET", path: "/api/v1/exports/{exp}/manifest.json", own: "AOKCLUuN", other: cityWide},
		{route: "GET /api/v1/exports/{id}/verify", method: "GET", path: "/api/v1/exports/{exp}/verify", own: "AOKCLUuN", other: cityWide},
		{route: "GET /api/v1/audit", method: "GET", path: "/api/v1/audit?node=n1", own: "AUu", other: "AUu", ownNode: "AUuN", otherNode: "AUuN"},
		{route: "GET /api/v1/audit/verify", method: "GET", path: "/api/v1/audit/verify", own: "AUu", other: "AUu", ownNode: "AUuN", otherNode: "AUuN"},
		{route: "GET /api/v1/audit/checkpoints", method: "GET", path: "/api/v1/audit/checkpoints", own: "AUu", other: "AUu", ownNode: "AUuN", otherNode: "AUuN"},
		{route: "GET /api/v1/audit/leaves", method: "GET", path: "/api/v1/audit/leaves?start=0&count=10", own: "AUu", other: "AUu", ownNode: "AUuN", otherNode: "AUuN"},
		{route: "GET /api/v1/audit/proof/inclusion", method: "GET", path: "/api/v1/audit/proof/inclusion?index=0&size=1", own: "AUu", other: "AUu", ownNode: "AUuN", otherNode: "AUuN"},
		{route: "GET /api/v1/audit/proof/consistency", method: "GET", path: "/api/v1/audit/proof/consistency?from=1&to=2", own: "AUu", other: "AUu", ownNode: "AUuN", otherNode: "AUuN"},
		{route: "GET /api/v1/audit/proof/export", method: "GET", path: "/api/v1/audit/proof/export?node=n1&export=e-own", own: "AUu", other: "AUu", ownNode: "AUuN", otherNode: "AUuN"},
		{route: "GET /api/v1/cluster", method: "GET", path: "/api/v1/cluster", own: "AO", other: "AO"},
		{route: "GET /api/v1/cluster/members", method: "GET", path: "/api/v1/cluster/members", own: "AO", other: "AO"},
		{route: "POST /api/v1/cluster/members", method: "POST", path: "/api/v1/cluster/members", body: `{"id":"h4","raft":"127.0.0.1:1","grpc":"127.0.0.1:2"}`, ctype: "application/json", own: "A", other: "A"},
		{route: "DELETE /api/v1/cluster/members/{id}", method: "DELETE", path: "/api/v1/cluster/members/h4", own: "A", other: "A"},
		{route: "POST /api/v1/cluster/leader", method: "POST", path: "/api/v1/cluster/leader", own: "A", other: "A"},
		{route: "GET /api/v1/cluster/backup", method: "GET", path: "/api/v1/cluster/backup", own: "A", other: "A"},
		{route: "POST /api/v1/enrollment/tokens", method: "POST", path: "/api/v1/enrollment/tokens", body: `{"kelurahan":"31.71.01.1001"}`, ctype: "application/json", own: "A", other: "A"},
		{route: "GET /api/v1/revocations", method: "GET", path: "/api/v1/revocations", own: "A", other: "A"},
		{route: "POST /api/v1/revocations", method: "POST", path: "/api/v1/revocations", body: `{"node_id":"n9","reason":"stolen"}`, ctype: "application/json", own: "A", other: "A"},
		{route: "DELETE /api/v1/revocations", method: "DELETE", path: "/api/v1/revocations", body: `{"node_id":"n9"}`, ctype: "application/json", own: "A", other: "A"},
		{route: "POST /api/v1/cases", method: "POST", path: "/api/v1/cases", body: kase, ctype: "application/json", own: "AOKCLUu", other: cityWide},
		{route: "GET /api/v1/cases", method: "GET", path: "/api/v1/cases", own: "AOKCLUu", other: "AOKCLUu", listKey: "cases", seesOther: "AOUu"},
		{route: "GET /api/v1/cases/{id}", method: "GET", path: "/api/v1/cases/case-{cam}", own: "AOKCLUu", other: cityWide},
		{route: "POST /api/v1/cases/{id}/close", method: "POST", path: "/api/v1/cases/case-{cam}/close", own: "AOKCLUu", other: cityWide},
		{route: "POST /api/v1/cases/{id}/pull", method: "POST", path: "/api/v1/cases/case-{cam}/pull", own: "AOKCLUu", other: cityWide},
		{route: "GET /api/v1/cases/{id}/bundle", method: "GET", path: "/api/v1/cases/case-{cam}/bundle", own: "AOKCLUu", other: cityWide},
		{route: "POST /api/v1/retention/run", method: "POST", path: "/api/v1/retention/run", body: `{"older_than":"24h"}`, ctype: "application/json", own: "A", other: "A", ownNode: "AN", otherNode: "AN"},
		{route: "GET /api/v1/users", method: "GET", path: "/api/v1/users", own: "A", other: "A"},
		{route: "POST /api/v1/users", method: "POST", path: "/api/v1/users", body: `{"name":"new","password":"long-enough-pw","role":"operator"}`, ctype: "application/json", own: "A", other: "A"},
		{route: "GET /api/v1/users/{name}", method: "GET", path: "/api/v1/users/someone", own: "A", other: "A"},
		{route: "PATCH /api/v1/users/{name}", method: "PATCH", path: "/api/v1/users/someone", body: `{"disabled":true}`, ctype: "application/json", own: "A", other: "A"},
		{route: "DELETE /api/v1/users/{name}", method: "DELETE", path: "/api/v1/users/someone", own: "A", other: "A"},
	}
}

// The calls that take no login: the login itself, and enrollment (its join
// token is the credential).
var noLogin = []string{"POST /api/v1/login", "POST /api/v1/enroll", "POST /api/v1/reports", "GET /api/v1/reports/{id}"}

func TestAuthorisationMatrix(t *testing.T) {
	now := time.Now()
	calls := matrixCalls(now)
	var users []auth.User
	for _, p := range principals {
		u := p.user
		u.PasswordHash, _ = auth.HashPassword("pw-" + u.Name)
		users = append(users, u)
	}
	dir, err := auth.NewStaticUsers(users)
	if err != nil {
		t.Fatal(err)
	}
	cases, allowed, denied := 0, 0, 0
	for _, at := range []string{"hub", "node"} {
		authn, err := auth.New(auth.Options{Issuer: "node:n1", Secret: []byte(strings.Repeat("m", 32)), Users: dir})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var audits []AuditEvent
		s := New(Options{Backend: matrixBackend{servedBy: at}, Auth: authn, Audit: func(e AuditEvent) { mu.Lock(); audits = append(audits, e); mu.Unlock() }})
		srv := httptest.NewServer(s)

		// Every route the server answers is in the matrix (or takes no login).
		covered := map[string]bool{}
		for _, c := range calls {
			covered[c.route] = true
		}
		for _, r := range s.Routes() {
			switch {
			case r.Action == "" && !slices.Contains(noLogin, r.Pattern):
				t.Errorf("%s takes no login but is not one of %v", r.Pattern, noLogin)
			case r.Action != "" && !covered[r.Pattern]:
				t.Errorf("%s (%s) is not in the authorisation matrix", r.Pattern, r.Action)
			}
		}

		tokens := map[string]string{}
		for _, p := range principals {
			resp, err := http.Post(srv.URL+"/api/v1/login", "application/json", strings.NewReader(fmt.Sprintf(`{"user":%q,"password":%q}`, p.user.Name, "pw-"+p.user.Name)))
			if err != nil {
				t.Fatal(err)
			}
			var out struct{ Token string }
			_ = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if out.Token == "" {
				t.Fatalf("%s: login failed: %d", p.user.Name, resp.StatusCode)
			}
			tokens[p.letter] = out.Token
		}

		for _, c := range calls {
			for _, side := range []string{"own", "other"} {
				want := map[string]string{"own": c.own, "other": c.other}[side]
				if at == "node" && side == "own" && c.ownNode != "" {
					want = c.ownNode
				}
				if at == "node" && side == "other" && c.otherNode != "" {
					want = c.otherNode
				}
				cam, exp := camOwn, "e-own"
				if side == "other" {
					cam, exp = camOther, "e-other"
				}
				for _, p := range principals {
					cases++
					path := strings.NewReplacer("{cam}", cam, "{exp}", exp).Replace(c.path)
					if p.reason {
						sep := "?"
						if strings.Contains(path, "?") {
							sep = "&"
						}
						path += sep + "reason=JAKI-2026-0042"
					}
					body := strings.ReplaceAll(c.body, "{cam}", cam)
					req, _ := http.NewRequest(c.method, srv.URL+path, strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+tokens[p.letter])
					if c.ctype != "" {
						req.Header.Set("Content-Type", c.ctype)
					}
					mu.Lock()
					before := len(audits)
					mu.Unlock()
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					raw, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					label := fmt.Sprintf("at the %s: %s (%s) %s %s [%s kelurahan]", at, p.user.Name, p.user.Role, c.route, c.name, side)
					if strings.Contains(want, p.letter) {
						allowed++
						if resp.StatusCode/100 != 2 {
							t.Errorf("%s: got %d %s, want allowed (2xx)", label, resp.StatusCode, raw)
							continue
						}
						if c.listKey != "" {
							sees := strings.Contains(string(raw), camOther) || strings.Contains(string(raw), kelOther)
							if wantSee := strings.Contains(c.seesOther, p.letter); sees != wantSee {
								t.Errorf("%s: the answer shows the other kelurahan: %v, want %v: %s", label, sees, wantSee, raw)
							}
						}
						continue
					}
					denied++
					if resp.StatusCode != http.StatusForbidden {
						t.Errorf("%s: got %d %s, want 403", label, resp.StatusCode, raw)
						continue
					}
					var e errorBody
					if json.Unmarshal(raw, &e) != nil || !strings.Contains(e.Error, p.user.Name) {
						t.Errorf("%s: the refusal does not say who and why: %s", label, raw)
					}
					mu.Lock()
					found := false
					for _, a := range audits[before:] {
						if a.User == p.user.Name && strings.HasPrefix(a.Outcome, "denied") {
							found = true
						}
					}
					mu.Unlock()
					if !found {
						t.Errorf("%s: the refusal is not in the audit log", label)
					}
				}
			}
		}
		srv.Close()
	}
	t.Logf("authorisation matrix: %d cases (%d roles/scopes × %d calls × own/other kelurahan × hub/node): %d allowed, %d denied, all asserted",
		cases, len(principals), len(calls), allowed, denied)
	fmt.Printf("authorisation matrix: %d cases asserted (%d allowed, %d denied)\n", cases, allowed, denied)
}
