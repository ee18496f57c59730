//go:build e2e

package system_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
	// Every node reports its storage; the hub turns it into days left.
	hub := liveHub(t, f)
	poll(t, 120*time.Second, "every node's storage at the hub", func() error {
		ns, err := hub.Nodes(ctx(t))
		if err != nil {
			return err
		}
		for _, n := range ns {
			if n.Storage == nil || n.Storage.FreeBytes == 0 || n.Storage.DaysUntilFull == nil || *n.Storage.DaysUntilFull <= 0 {
				return fmt.Errorf("%s: storage %+v", n.NodeID, n.Storage)
			}
		}
		return nil
	})
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
	for _, r := range res.Listed {
		if !strings.Contains(r.Text, "hari") && !strings.Contains(r.Text, "tahun") {
			t.Fatalf("the overview row of %s shows no storage left: %q", r.Kel, r.Text)
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

// checkWall: the video wall in Chromium decodes frames in all 4 tiles, a
// tile whose session is ended at the server recovers by itself, a
// double-click gives the main stream, and a saved layout reopens by name.
func checkWall(t *testing.T, f *federation) {
	var res struct {
		BeforeDrag []string `json:"before_drag"`
		Dragged    string   `json:"dragged"`
		Tiles      []struct {
			Camera string `json:"camera"`
			Frames int    `json:"frames"`
			Stream string `json:"stream"`
			W      int    `json:"w"`
			H      int    `json:"h"`
		} `json:"tiles"`
		AllPlayingMS float64 `json:"all_playing_ms"`
		Dropped      struct {
			Loc    string `json:"loc"`
			Status int    `json:"status"`
		} `json:"dropped"`
		RecoveredMS float64 `json:"recovered_ms"`
		NewSession  string  `json:"new_session"`
		Main        struct {
			Stream string `json:"stream"`
			W      int    `json:"w"`
			H      int    `json:"h"`
		} `json:"main"`
		Saved    []string `json:"saved"`
		Reopened []string `json:"reopened"`
		Lag      float64  `json:"worst_frame_gap_ms_16_tiles"`
		Sixteen  float64  `json:"sixteen_playing_ms"`
	}
	runBrowserJSON(t, "wall.mjs", &res, "--url", f.m.Hubs[0].URL, "--user", f.m.Users[0].User, "--password", f.m.Users[0].Password,
		"--camera", "-", "--shots", filepath.Join(repoRoot(t), "test-output"))
	if len(res.Tiles) != 4 || res.Dragged == "" || slices.Contains(res.BeforeDrag, res.Dragged) || res.Tiles[3].Camera != res.Dragged {
		t.Fatalf("tiles %+v (before the drag %v); want 4 with %s, not on the wall before, dragged onto the last", res.Tiles, res.BeforeDrag, res.Dragged)
	}
	for i, tile := range res.Tiles {
		if tile.Frames < 10 || tile.W == 0 || tile.Stream != "sub" {
			t.Fatalf("tile %d (%s): %d frames, %dx%d, stream %s", i, tile.Camera, tile.Frames, tile.W, tile.H, tile.Stream)
		}
	}
	if res.Dropped.Status != 200 || res.NewSession == "" || res.NewSession == res.Dropped.Loc {
		t.Fatalf("dropping tile 0's session: %+v, new session %q", res.Dropped, res.NewSession)
	}
	if res.Main.Stream != "main" || res.Main.W <= res.Tiles[1].W {
		t.Fatalf("double-click: %+v (the sub stream was %dx%d)", res.Main, res.Tiles[1].W, res.Tiles[1].H)
	}
	if !slices.Equal(res.Saved, res.Reopened) || len(res.Saved) != 4 {
		t.Fatalf("saved layout %v reopened as %v", res.Saved, res.Reopened)
	}
	t.Logf("video wall: %s dragged onto tile 4; 4 tiles decoding (sub stream %dx%d) %.0f ms after the drag; a tile whose session was ended at the server recovered in %.1f s; double-click: main stream %dx%d; layout saved and reopened; 16 live tiles all decoding %.1f s after they were filled, worst gap between animation frames over 5 s then %.0f ms. Screenshots: test-output/ui-wall.png, ui-wall-16.png",
		res.Dragged, res.Tiles[0].W, res.Tiles[0].H, res.AllPlayingMS, res.RecoveredMS/1000, res.Main.W, res.Main.H, res.Sixteen/1000, res.Lag)
}

// checkCamera: at a node, the camera's playback scrubbed to a recorded
// minute shows frames of that time, plays at 4x, steps a frame, and a
// selected range is exported and downloaded.
func checkCamera(t *testing.T, f *federation) {
	n := f.m.Nodes[0]
	var camID string
	for _, c := range f.m.Cameras {
		if c.Kelurahan == n.Kelurahan {
			camID = c.ID
			break
		}
	}
	var res struct {
		TargetMS  float64    `json:"target_ms"`
		ShownMS   float64    `json:"shown_ms"`
		Clock     string     `json:"clock"`
		Speed     float64    `json:"speed"`
		Step      [2]float64 `json:"step"`
		Selection string     `json:"selection"`
		ExportID  string     `json:"export_id"`
		Download  struct {
			Status int    `json:"status"`
			Type   string `json:"type"`
			Bytes  int    `json:"bytes"`
			Box    string `json:"box"`
		} `json:"download"`
	}
	runBrowserJSON(t, "camera.mjs", &res, "--url", n.URL, "--user", f.m.Users[0].User, "--password", f.m.Users[0].Password,
		"--camera", camID, "--shots", filepath.Join(repoRoot(t), "test-output"))
	if d := res.ShownMS - res.TargetMS; d > 3000 || d < -3000 {
		t.Fatalf("scrubbed to %.0f, the frames shown are from %.0f (%.1f s off)", res.TargetMS, res.ShownMS, d/1000)
	}
	if res.Speed < 2.5 || res.Speed > 5.5 {
		t.Fatalf("at 4x the shown time ran %.1fx the wall clock", res.Speed)
	}
	if step := res.Step[1] - res.Step[0]; step <= 0 || step > 0.2 {
		t.Fatalf("a frame step moved %.3f s", step)
	}
	if res.ExportID == "" || res.Download.Status != 200 || res.Download.Type != "video/mp4" || res.Download.Box != "ftyp" || res.Download.Bytes < 10000 {
		t.Fatalf("export from the UI: %q, download %+v", res.ExportID, res.Download)
	}
	t.Logf("camera %s at %s: scrubbed to a recorded minute, frames shown %.1f s from the target (%s); 4x played at %.1fx; one frame step %.3f s; range %s exported as %s and downloaded (%d bytes). Screenshots: test-output/ui-camera-scrubbed.png, ui-camera-export.png",
		camID, n.NodeID, (res.ShownMS-res.TargetMS)/1000, res.Clock, res.Speed, res.Step[1]-res.Step[0], res.Selection, res.ExportID, res.Download.Bytes)
}

// checkSearchUI: clicking the map at a node's kelurahan and searching 1 km
// around it over the last minutes lists that node's cameras, nearest first,
// and no other kelurahan's.
func checkSearchUI(t *testing.T, f *federation) {
	n := f.m.Nodes[0]
	var want []string
	for _, c := range f.m.Cameras {
		if c.Kelurahan == n.Kelurahan {
			want = append(want, c.ID)
		}
	}
	var res struct {
		Picked  string `json:"picked"`
		Summary string `json:"summary"`
		Rows    []struct {
			Camera string `json:"camera"`
			Text   string `json:"text"`
		} `json:"rows"`
	}
	runBrowserJSON(t, "search.mjs", &res, "--url", f.m.Hubs[1].URL, "--user", f.m.Users[0].User, "--password", f.m.Users[0].Password,
		"--camera", "-", "--kelurahan", n.Kelurahan, "--shots", filepath.Join(repoRoot(t), "test-output"))
	var got []string
	for _, r := range res.Rows {
		got = append(got, r.Camera)
		if !strings.Contains(r.Text, " m") {
			t.Fatalf("search row without a distance: %q", r.Text)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("search 1 km around %s's office (picked at %s) found %v; want its cameras %v (%s)", n.Kelurahan, res.Picked, got, want, res.Summary)
	}
	t.Logf("search: a click on the map at %s (%s), 1 km, last 15 min: %s: %v. Screenshot: test-output/ui-search.png", n.Name, res.Picked, res.Summary, got)
}
