package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"
)

func get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	res := rec.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

func TestHandlerServesTheApp(t *testing.T) {
	res, body := get(t, "/")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	// The ids the browser tests and the system test drive.
	for _, id := range []string{"login-user", "login-password", "login-submit", "nodes-table", "cameras-table",
		"live-video", "live-status", "playback-video", "playback-range", "playback-load", "playback-from", "playback-to",
		"lang-toggle", "status", "nav"} {
		if !strings.Contains(body, `id="`+id+`"`) {
			t.Errorf("index.html has no #%s", id)
		}
	}
	for _, path := range []string{"/app.js", "/i18n.js", "/style.css"} {
		if res, _ := get(t, path); res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, res.StatusCode)
		}
	}
	if res, _ := get(t, "/nope.js"); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope.js: %d", res.StatusCode)
	}
}

// Every text the UI shows has both an Indonesian and an English version.
func TestEveryTextIsTranslated(t *testing.T) {
	_, i18n := get(t, "/i18n.js")
	_, html := get(t, "/")
	var app string // every script of the UI
	scripts, err := fs.Glob(static, "static/*.js")
	if err != nil || len(scripts) < 8 {
		t.Fatalf("scripts %v: %v", scripts, err)
	}
	for _, name := range scripts {
		_, body := get(t, strings.TrimPrefix(name, "static"))
		app += body
	}
	idPart, enPart, ok := strings.Cut(i18n, "\n  en: {")
	if !ok {
		t.Fatal("i18n.js: no en block")
	}
	keyRe := regexp.MustCompile(`'([a-z0-9._]+)':`)
	keys := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, k := range keyRe.FindAllStringSubmatch(s, -1) {
			m[k[1]] = true
		}
		return m
	}
	id, en := keys(idPart), keys(enPart)
	var missing []string
	for k := range id {
		if !en[k] {
			missing = append(missing, "en:"+k)
		}
	}
	for k := range en {
		if !id[k] {
			missing = append(missing, "id:"+k)
		}
	}
	used := regexp.MustCompile(`data-i18n="([a-z0-9._]+)"`).FindAllStringSubmatch(html, -1)
	used = append(used, regexp.MustCompile(`\bt\('([a-z0-9._]+)'[,)]`).FindAllStringSubmatch(app, -1)...)
	used = append(used, regexp.MustCompile(`'(live\.[a-z]+)'`).FindAllStringSubmatch(app, -1)...)
	for _, u := range used {
		if !id[u[1]] {
			missing = append(missing, "used:"+u[1])
		}
	}
	for _, s := range []string{"streaming", "connecting", "failing", "unknown"} { // t('state.' + c.state)
		if !id["state."+s] {
			missing = append(missing, "state."+s)
		}
	}
	// Keys built from a value the server sends.
	for _, k := range []string{"role.admin", "role.operator", "role.area_operator", "role.viewer", "role.auditor", "role.node_admin",
		"ev.hold.pending", "ev.hold.applied", "ev.hold.failed", "ev.hold.release_pending", "ev.hold.released",
		"node.online", "node.degraded", "node.offline", "ad.state.leader", "ad.state.follower"} {
		if !id[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Fatalf("untranslated texts: %v", missing)
	}
	if len(used) < 300 {
		t.Fatalf("found only %d texts in use; the patterns no longer match the code", len(used))
	}
}
