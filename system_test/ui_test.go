//go:build e2e

package system_test

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ronda-jakarta/ronda/auth"
)

// runBrowserJSON runs a test/browser script and decodes its JSON result.
func runBrowserJSON(t *testing.T, script string, out any, args ...string) {
	t.Helper()
	root := repoRoot(t)
	cmd := exec.Command("node", append([]string{filepath.Join(root, "test", "browser", script)}, args...)...)
	cmd.Dir = filepath.Join(root, "test", "browser")
	raw, err := cmd.Output()
	var ok struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "{") {
			_ = json.Unmarshal([]byte(line), &ok)
			_ = json.Unmarshal([]byte(line), out)
		}
	}
	if err != nil || !ok.OK {
		stderr := ""
		if ee, isExit := err.(*exec.ExitError); isExit {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s: %v %s\n%s\n%s", script, err, ok.Error, raw, stderr)
	}
}

// checkOverviewUI: the city overview in Chromium lists the demo's nodes
// online in their kota and kecamatan, draws the map, switches to English
// and back, filters; an RT/RW viewer sees only its kelurahan and camera.
func checkOverviewUI(t *testing.T, f *federation) {
	users := demoUsers(t, f)
	viewer := users[auth.RoleViewer]
	var nodes []string
	for _, n := range f.m.Nodes {
		nodes = append(nodes, n.NodeID)
	}
	shots := filepath.Join(repoRoot(t), "test-output")
	var res struct {
		Listed []struct {
			Kel, State, Text string
		} `json:"listed"`
		Summary   string  `json:"summary"`
		MapLabel  string  `json:"map_label"`
		Painted   int     `json:"painted"`
		RenderMS  float64 `json:"render_ms"`
		Rows      int     `json:"rows"`
		TitleID   string  `json:"title_id"`
		TitleEN   string  `json:"title_en"`
		SummaryEN string  `json:"summary_en"`
		HTMLLang  string  `json:"html_lang"`
		Filtered  []string
		Viewer    *struct {
			Rows    []string `json:"rows"`
			Cameras []string `json:"cameras"`
		} `json:"viewer"`
	}
	runBrowserJSON(t, "overview.mjs", &res, "--url", f.m.Hubs[0].URL, "--user", f.m.Users[0].User, "--password", f.m.Users[0].Password,
		"--camera", "-", "--expect-nodes", strings.Join(nodes, ","), "--viewer-user", viewer.User, "--viewer-password", viewer.Password,
		"--shots", shots)
	online := map[string]bool{}
	for _, r := range res.Listed {
		if r.State == "online" {
			online[r.Kel] = true
		}
	}
	for _, n := range f.m.Nodes {
		if !online[n.Kelurahan] {
			t.Fatalf("the overview does not show %s (%s) online: %+v", n.NodeID, n.Kelurahan, res.Listed)
		}
	}
	if !strings.Contains(res.Summary, "node") || res.Painted == 0 || !strings.Contains(res.MapLabel, "kamera") {
		t.Fatalf("overview summary %q, map %q with %d painted pixels", res.Summary, res.MapLabel, res.Painted)
	}
	if res.Rows < 267 {
		t.Fatalf("the hub's overview lists %d kelurahan, want all 267", res.Rows)
	}
	if res.TitleID != "Ikhtisar kota" || res.TitleEN != "City overview" || res.HTMLLang != "en" || !strings.Contains(res.SummaryEN, "cameras streaming") {
		t.Fatalf("language switch: %q -> %q (lang %s), summary %q", res.TitleID, res.TitleEN, res.HTMLLang, res.SummaryEN)
	}
	if len(res.Filtered) != 1 || res.Filtered[0] != res.Listed[0].Kel {
		t.Fatalf("filtering by %s leaves %v", res.Listed[0].Kel, res.Filtered)
	}
	if res.Viewer == nil || len(res.Viewer.Cameras) != 1 || res.Viewer.Cameras[0] != viewer.Scope.Cameras[0] ||
		!slices.Equal(res.Viewer.Rows, []string{viewer.Kelurahan}) {
		t.Fatalf("the RT/RW viewer %s sees rows %v and cameras %v; want only %s and %s", viewer.User, res.Viewer.Rows, res.Viewer.Cameras, viewer.Kelurahan, viewer.Scope.Cameras)
	}
	t.Logf("overview: %s; %d kelurahan rows rendered in %.1f ms; map: %s; viewer %s sees %v. Screenshots: test-output/ui-overview.png, ui-overview-en.png, ui-overview-viewer.png, ui-cameras-viewer.png",
		res.Summary, res.Rows, res.RenderMS, res.MapLabel, viewer.User, res.Viewer.Cameras)
}
