package api

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

// otherKelOperator is an area operator of the other kelurahan (Jakarta
// Selatan): at the matrix's node (Gambir) nothing of its is in scope.
var otherKelOperator = auth.User{Name: "selatan", Role: auth.RoleAreaOperator, Scope: auth.Scope{Areas: []string{"31.74"}}}

// testUsers are the matrix's principals and otherKelOperator with their
// passwords hashed (once: bcrypt is slow, more so under -race).
var testUsers = sync.OnceValue(func() auth.StaticUsers {
	users := []auth.User{otherKelOperator}
	for _, p := range principals {
		users = append(users, p.user)
	}
	for i := range users {
		users[i].PasswordHash, _ = auth.HashPassword("pw-" + users[i].Name)
	}
	dir, err := auth.NewStaticUsers(users)
	if err != nil {
		panic(err)
	}
	return dir
})

// testEnv is a server over a backend where testUsers log in.
type testEnv struct {
	srv    *httptest.Server
	mu     sync.Mutex
	tokens map[string]string // by user name, once logged in
	audits []AuditEvent
	now    time.Time
}

func newTestEnv(t *testing.T, b Backend) *testEnv {
	t.Helper()
	authn, err := auth.New(auth.Options{Issuer: "node:n1", Secret: []byte(strings.Repeat("o", 32)), Users: testUsers()})
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{tokens: map[string]string{}, now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	env.srv = httptest.NewServer(New(Options{Backend: b, Auth: authn,
		Now:   func() time.Time { env.mu.Lock(); defer env.mu.Unlock(); return env.now },
		Audit: func(e AuditEvent) { env.mu.Lock(); env.audits = append(env.audits, e); env.mu.Unlock() }}))
	t.Cleanup(env.srv.Close)
	return env
}

// token logs user in (the first time).
func (env *testEnv) token(t *testing.T, user string) string {
	t.Helper()
	env.mu.Lock()
	tok, ok := env.tokens[user]
	env.mu.Unlock()
	if ok {
		return tok
	}
	resp, err := http.Post(env.srv.URL+"/api/v1/login", "application/json", strings.NewReader(fmt.Sprintf(`{"user":%q,"password":%q}`, user, "pw-"+user)))
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Token string }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if out.Token == "" {
		t.Fatalf("%s: login failed: %d", user, resp.StatusCode)
	}
	env.mu.Lock()
	env.tokens[user] = out.Token
	env.mu.Unlock()
	return out.Token
}

func (env *testEnv) advance(d time.Duration) {
	env.mu.Lock()
	env.now = env.now.Add(d)
	env.mu.Unlock()
}

func (env *testEnv) auditsOf(action string) []AuditEvent {
	env.mu.Lock()
	defer env.mu.Unlock()
	var out []AuditEvent
	for _, a := range env.audits {
		if a.Action == action {
			out = append(out, a)
		}
	}
	return out
}

// get calls the API as user and decodes a JSON answer into out (when given).
func (env *testEnv) get(t *testing.T, user, path string, out any) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", env.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+env.token(t, user))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, raw)
		}
	}
	return resp, string(raw)
}

// GET /api/v1/me lists what each role may do at all: what the UI offers.
func TestMeListsWhatTheUserMayDo(t *testing.T) {
	const base = "areas camera list me token-refresh"
	sorted := func(s string) []string {
		f := strings.Fields(s)
		slices.Sort(f)
		return f
	}
	cases := []struct {
		user            string
		hub, node       string // can ("" at the node: as at the hub)
		needsReason     string
		nodeNeedsReason string
	}{
		{user: "admin", hub: base + " audit-read case cluster cluster-admin enrollment export exports-read hold holds-read live playback retention revocations users"},
		{user: "operator", hub: base + " case cluster export exports-read hold holds-read live playback"},
		{user: "kota", hub: base + " case export exports-read hold holds-read live playback"},
		{user: "kecamatan", hub: base + " case export exports-read hold holds-read live playback"},
		{user: "kelurahan", hub: base + " case export exports-read hold holds-read live playback"},
		{user: "rtrw", hub: base + " live playback"},
		{user: "rtrw-live", hub: base + " live"},
		{user: "auditor", hub: base + " audit-read case export exports-read hold holds-read playback", needsReason: "export hold playback"},
		{user: "auditor2", hub: base + " audit-read case export exports-read hold holds-read playback", needsReason: "export hold playback"},
		{user: "nodeadmin", hub: base + " export exports-read hold holds-read live playback", node: base + " audit-read export exports-read hold holds-read live playback retention"},
		// At the Gambir node an operator of Jakarta Selatan has nothing in scope.
		{user: "selatan", hub: base + " case export exports-read hold holds-read live playback", node: "areas list me token-refresh"},
	}
	for _, at := range []string{"hub", "node"} {
		env := newTestEnv(t, matrixBackend{servedBy: at})
		for _, c := range cases {
			want, wantReason := c.hub, c.needsReason
			if at == "node" && c.node != "" {
				want = c.node
			}
			if at == "node" && c.nodeNeedsReason != "" {
				wantReason = c.nodeNeedsReason
			}
			var me Me
			if resp, raw := env.get(t, c.user, "/api/v1/me", &me); resp.StatusCode != 200 {
				t.Fatalf("at the %s: %s: %d %s", at, c.user, resp.StatusCode, raw)
			}
			if !slices.Equal(me.Can, sorted(want)) {
				t.Errorf("at the %s: %s (%s) can %v, want %v", at, c.user, me.Role, me.Can, sorted(want))
			}
			if !slices.Equal(me.NeedsReason, sorted(wantReason)) || me.NeedsReason == nil {
				t.Errorf("at the %s: %s needs a reason for %v, want %v", at, c.user, me.NeedsReason, sorted(wantReason))
			}
		}
	}
}

// holdsBackend lists holds of both kelurahan, active and expired.
type holdsBackend struct{ matrixBackend }

func (holdsBackend) AllHolds(context.Context) ([]Hold, error) {
	at := func(h int) time.Time { return time.Date(2026, 11, 20, h, 0, 0, 0, time.UTC) }
	return []Hold{
		{ID: "h1", CameraID: camOwn, Reason: "JAKI-1", Created: at(1), Active: true, NodeID: "n1", State: "applied"},
		{ID: "h2", CameraID: camOther, Reason: "JAKI-2", Created: at(3), Active: true, NodeID: "n2", State: "pending"},
		{ID: "h3", CameraID: camOwn2, Reason: "JAKI-3", Created: at(2), Active: false, NodeID: "n1", State: "released"},
		{ID: "h4", CameraID: "gone-cam", Reason: "JAKI-4", Created: at(4), Active: true},
	}, nil
}

func TestAllHoldsFilteredByScopeNewestFirst(t *testing.T) {
	env := newTestEnv(t, holdsBackend{matrixBackend{servedBy: "hub"}})
	ids := func(user, query string) []string {
		t.Helper()
		var out struct{ Holds []Hold }
		if resp, raw := env.get(t, user, "/api/v1/holds"+query, &out); resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d %s", user, query, resp.StatusCode, raw)
		}
		var got []string
		for _, h := range out.Holds {
			got = append(got, h.ID)
		}
		return got
	}
	for _, c := range []struct{ user, query, want string }{
		{"admin", "", "h4 h2 h3 h1"},
		{"admin", "?active=1", "h4 h2 h1"},
		{"operator", "?active=true", "h4 h2 h1"},
		{"kelurahan", "", "h3 h1"}, // not the other kelurahan's, nor a camera the catalog no longer knows
		{"kelurahan", "?active=1", "h1"},
		{"selatan", "", "h2"},
	} {
		if got := strings.Join(ids(c.user, c.query), " "); got != c.want {
			t.Errorf("%s GET /api/v1/holds%s: holds %q, want %q", c.user, c.query, got, c.want)
		}
	}
	var out struct{ Holds []map[string]any }
	env.get(t, "admin", "/api/v1/holds", &out)
	if h := out.Holds[1]; h["node_id"] != "n2" || h["state"] != "pending" || h["camera"] != camOther {
		t.Errorf("a hold at the hub shows its node and state: %v", h)
	}
	if resp, raw := env.get(t, "rtrw", "/api/v1/holds", nil); resp.StatusCode != 403 || !strings.Contains(raw, "do not hold or export") {
		t.Errorf("a viewer's holds list: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := env.get(t, "admin", "/api/v1/holds?active=maybe", nil); resp.StatusCode != 400 || !strings.Contains(raw, "'active' is 1") {
		t.Errorf("active=maybe: %d %s", resp.StatusCode, raw)
	}
}

// auditBackend records the query it was asked and answers one page.
type auditBackend struct {
	matrixBackend
	mu       sync.Mutex
	queries  []AuditQuery
	verifies int
}

func (b *auditBackend) Audit(_ context.Context, q AuditQuery) ([]AuditRecord, error) {
	b.mu.Lock()
	b.queries = append(b.queries, q)
	b.mu.Unlock()
	return []AuditRecord{{NodeID: "n1", Seq: q.After + 1, Action: "live", Outcome: "ok"}}, nil
}

func (b *auditBackend) AuditNewest(_ context.Context, q AuditQuery) (AuditPage, error) {
	b.mu.Lock()
	b.queries = append(b.queries, q)
	b.mu.Unlock()
	leaf := uint64(41)
	page := AuditPage{Events: []AuditRecord{{NodeID: "n1", Seq: 9, Action: "export", Outcome: "ok", Leaf: &leaf}}, Scanned: 12}
	if q.Before != 5 {
		next := uint64(41)
		page.NextBefore = &next
	}
	return page, nil
}

func (b *auditBackend) VerifyAudit(context.Context) (any, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.verifies++
	return map[string]any{"ok": true, "run": b.verifies}, nil
}

func (b *auditBackend) last() AuditQuery {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.queries[len(b.queries)-1]
}

func TestAuditNewestFirstWithFilters(t *testing.T) {
	b := &auditBackend{matrixBackend: matrixBackend{servedBy: "hub"}}
	env := newTestEnv(t, b)

	// The oldest-first listing is as it was: events only, paged with after.
	var plain map[string]json.RawMessage
	if resp, raw := env.get(t, "admin", "/api/v1/audit?node=n1&after=7&limit=5", &plain); resp.StatusCode != 200 || len(plain) != 1 || plain["events"] == nil {
		t.Fatalf("oldest first: %d %s", resp.StatusCode, raw)
	}
	if q := b.last(); q.After != 7 || q.Limit != 5 || q.NodeID != "n1" || q.Before != 0 {
		t.Fatalf("oldest first asked %+v", q)
	}

	var page struct {
		Events     []AuditRecord
		NextBefore *uint64 `json:"next_before"`
		Scanned    int
	}
	resp, raw := env.get(t, "auditor2", "/api/v1/audit?order=newest&before=100&user=siti&action=download-&camera=c1&outcome=denied&node=n1&limit=20", &page)
	if resp.StatusCode != 200 {
		t.Fatalf("newest first: %d %s", resp.StatusCode, raw)
	}
	want := AuditQuery{NodeID: "n1", Limit: 20, Before: 100, User: "siti", Action: "download-", Camera: "c1", Outcome: "denied", MaxScan: MaxAuditScan}
	if q := b.last(); q != want {
		t.Fatalf("newest first asked %+v, want %+v", q, want)
	}
	if page.NextBefore == nil || *page.NextBefore != 41 || page.Scanned != 12 || len(page.Events) != 1 || page.Events[0].Leaf == nil || *page.Events[0].Leaf != 41 {
		t.Fatalf("newest first answered %s", raw)
	}
	if !strings.Contains(raw, `"leaf": 41`) {
		t.Fatalf("a record does not show its leaf: %s", raw)
	}
	// At the oldest record next_before is left out.
	if _, raw := env.get(t, "admin", "/api/v1/audit?order=newest&before=5", nil); strings.Contains(raw, "next_before") || !strings.Contains(raw, `"scanned": 12`) {
		t.Fatalf("the last page: %s", raw)
	}

	for _, c := range []struct{ query, says string }{
		{"?user=siti", "user go with order=newest"},
		{"?before=10", "before go with order=newest"},
		{"?order=newest&after=3", "page with 'before'"},
		{"?order=newest&outcome=fine", "'outcome' is ok, denied or error"},
		{"?order=newest&before=x", "'before' is the next_before"},
		{"?order=sideways", "'order' is newest"},
	} {
		if resp, raw := env.get(t, "admin", "/api/v1/audit"+c.query, nil); resp.StatusCode != 400 || !strings.Contains(raw, c.says) {
			t.Errorf("GET /api/v1/audit%s: %d %s, want 400 saying %q", c.query, resp.StatusCode, raw, c.says)
		}
	}
	if n := len(env.auditsOf("audit-read")); n < 4 {
		t.Errorf("%d audit-read events, want every listing audited", n)
	}
}

func TestAuditQueryMatch(t *testing.T) {
	ev := func(q AuditQuery, action, outcome string) bool { return q.Match("n1", "siti", action, "cam1", outcome) }
	for _, c := range []struct {
		q               AuditQuery
		action, outcome string
		want            bool
	}{
		{AuditQuery{Action: "export"}, "export", "ok export=E1 file_sha256=ab", true},
		{AuditQuery{Action: "download-"}, "download-file", "ok", true},
		{AuditQuery{Action: "download-"}, "download-manifest", "ok", true},
		{AuditQuery{Action: "download-"}, "export", "ok", false},
		{AuditQuery{Outcome: "ok"}, "live", "ok export=E1", true},
		{AuditQuery{Outcome: "ok"}, "live", "denied: forbidden", false},
		{AuditQuery{Outcome: "denied"}, "live", "denied: forbidden", true},
		{AuditQuery{Outcome: "error"}, "live", "error: node offline", true},
		{AuditQuery{User: "siti"}, "live", "ok", true},
		{AuditQuery{User: "budi"}, "live", "ok", false},
		{AuditQuery{Camera: "cam2"}, "live", "ok", false},
		{AuditQuery{NodeID: "n2"}, "live", "ok", false},
		{AuditQuery{NodeID: "n1", Camera: "cam1", User: "siti", Action: "li", Outcome: "ok"}, "live", "ok", true},
	} {
		if got := ev(c.q, c.action, c.outcome); got != c.want {
			t.Errorf("%+v matches %q %q: %v, want %v", c.q, c.action, c.outcome, got, c.want)
		}
	}
}

func TestAuditVerifyIsCachedFor30Seconds(t *testing.T) {
	b := &auditBackend{matrixBackend: matrixBackend{servedBy: "hub"}}
	env := newTestEnv(t, b)
	run := func() (int, *http.Response) {
		var out struct {
			OK  bool
			Run int
		}
		resp, raw := env.get(t, "auditor", "/api/v1/audit/verify", &out)
		if resp.StatusCode != 200 || !out.OK {
			t.Fatalf("verify: %d %s", resp.StatusCode, raw)
		}
		return out.Run, resp
	}
	if n, resp := run(); n != 1 || resp.Header.Get("X-Ronda-Cached") != "" {
		t.Fatalf("first verification: run %d, cached %q", n, resp.Header.Get("X-Ronda-Cached"))
	}
	env.advance(20 * time.Second)
	if n, resp := run(); n != 1 || resp.Header.Get("X-Ronda-Cached") != "true" || resp.Header.Get("Age") != "20" {
		t.Fatalf("20 s later: run %d, cached %q, age %q; want the same answer", n, resp.Header.Get("X-Ronda-Cached"), resp.Header.Get("Age"))
	}
	env.advance(11 * time.Second)
	if n, _ := run(); n != 2 {
		t.Fatalf("31 s after the first: run %d, want a new verification", n)
	}
	if got := len(env.auditsOf("audit-verify")); got != 3 {
		t.Fatalf("%d audit-verify events for 3 calls", got)
	}
	if resp, raw := env.get(t, "operator", "/api/v1/audit/verify", nil); resp.StatusCode != 403 || !strings.Contains(raw, "auditors read the audit log") {
		t.Fatalf("an operator: %d %s", resp.StatusCode, raw)
	}
}

// verifyBackend verifies e-own, and finds e-other altered.
type verifyBackend struct{ matrixBackend }

func (verifyBackend) VerifyExport(_ context.Context, id, node string) (ExportVerification, error) {
	switch id {
	case "e-own":
		return ExportVerification{Export: id, Camera: camOwn, Method: "manifest", Verified: true, SHA256: "ab12", Checks: []string{"file SHA-256 matches the manifest"}}, nil
	case "e-other":
		return ExportVerification{Export: id, Camera: camOther, Method: "manifest", Problems: []string{"file e-other.mp4: SHA-256 is cd34; the manifest says ab12"}}, nil
	}
	return ExportVerification{}, fmt.Errorf("%w: no export %q", ErrNotFound, id)
}

func TestVerifyExportIsScopedAndAudited(t *testing.T) {
	env := newTestEnv(t, verifyBackend{matrixBackend{servedBy: "node"}})
	var v ExportVerification
	if resp, raw := env.get(t, "kelurahan", "/api/v1/exports/e-own/verify", &v); resp.StatusCode != 200 || !v.Verified || len(v.Checks) != 1 || v.Problems == nil {
		t.Fatalf("own export: %d %s", resp.StatusCode, raw)
	}
	v = ExportVerification{}
	if resp, raw := env.get(t, "admin", "/api/v1/exports/e-other/verify", &v); resp.StatusCode != 200 || v.Verified || !strings.Contains(v.Problems[0], "SHA-256") || v.Checks == nil {
		t.Fatalf("altered export: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := env.get(t, "kelurahan", "/api/v1/exports/e-other/verify", nil); resp.StatusCode != 403 || !strings.Contains(raw, "outside the user's scope") {
		t.Fatalf("another kelurahan's export: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := env.get(t, "kelurahan", "/api/v1/exports/nope/verify", nil); resp.StatusCode != 404 || !strings.Contains(raw, "GET /api/v1/exports lists") {
		t.Fatalf("unknown export: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := env.get(t, "rtrw", "/api/v1/exports/e-own/verify", nil); resp.StatusCode != 403 {
		t.Fatalf("a viewer: %d %s", resp.StatusCode, raw)
	}
	if d := env.auditsOf("exports-read"); len(d) != 2 || d[1].User != "rtrw" || !strings.HasPrefix(d[1].Outcome, "denied") {
		t.Fatalf("the refusals before the call ran are audited as exports-read: %+v", d)
	}
	got := env.auditsOf("verify-export")
	if len(got) != 4 {
		t.Fatalf("%d verify-export events, want one per call: %+v", len(got), got)
	}
	for i, want := range []struct{ user, camera, outcome string }{
		{"kelurahan", camOwn, "ok: export e-own verified"},
		{"admin", camOther, "ok: export e-other NOT verified: 1 problems"},
		{"kelurahan", "", "denied: "},
		{"kelurahan", "", "error: "},
	} {
		if got[i].User != want.user || got[i].CameraID != want.camera || !strings.HasPrefix(got[i].Outcome, want.outcome) {
			t.Errorf("verify-export event %d: %+v, want %+v", i, got[i], want)
		}
	}
}
