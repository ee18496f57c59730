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

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/demo"
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

// checkViewsUI: the camera page, evidence, audit and admin views in
// Chromium at the hub and at a node (test/browser/views.mjs).
func checkViewsUI(t *testing.T, f *federation) {
	users := demoUsers(t, f)
	admin, viewer, nodeAdmin := f.m.Users[0], users[auth.RoleViewer], users[auth.RoleNodeAdmin]
	n := f.m.Nodes[0]
	if nodeAdmin.Kelurahan != n.Kelurahan {
		t.Fatalf("the demo's node admin %s is for %s, not %s's %s", nodeAdmin.User, nodeAdmin.Kelurahan, n.NodeID, n.Kelurahan)
	}
	var camID, otherCam string
	for _, c := range f.m.Cameras {
		switch {
		case c.Kelurahan == n.Kelurahan && camID == "":
			camID = c.ID
		case c.Kelurahan != n.Kelurahan && otherCam == "":
			otherCam = c.ID
		}
	}
	stamp := time.Now().UTC().Format("150405")
	exportReason, holdReason := "UI-EXPORT-"+stamp, "UI-HOLD-"+stamp
	hub := liveHub(t, f)
	atNode := asUser(t, f, n.URL, demo.UserEntry{User: admin.User, Password: admin.Password})

	// An export at the node of 10 recorded seconds, in the hub's signed
	// audit log.
	now := time.Now().UTC()
	var e api.Export
	poll(t, 90*time.Second, "10 s recorded at "+camID+" to export", func() error {
		rec, err := atNode.Recordings(ctx(t), camID, now.Add(-10*time.Minute), time.Now())
		if err != nil {
			return err
		}
		for _, sp := range rec.Spans {
			if sp.End.Sub(sp.Start) >= 12*time.Second {
				body, _ := json.Marshal(map[string]any{"camera": camID, "from": sp.Start.Add(time.Second), "to": sp.Start.Add(11 * time.Second), "reason": exportReason})
				_, err := atNode.Do(ctx(t), "POST", "/api/v1/exports", strings.NewReader(string(body)), "application/json", &e)
				return err
			}
		}
		return fmt.Errorf("spans %+v", rec.Spans)
	})
	poll(t, 60*time.Second, "export "+e.ID+" in the hub's signed audit log", func() error {
		_, err := hub.Do(ctx(t), "GET", "/api/v1/audit/proof/export?node="+n.NodeID+"&export="+e.ID, nil, "", nil)
		return err
	})
	// A hold placed at the hub, applied at the node.
	body, _ := json.Marshal(map[string]any{"from": now.Add(-10 * time.Minute), "to": now.Add(-5 * time.Minute), "reason": holdReason})
	var h api.Hold
	if _, err := hub.Do(ctx(t), "POST", "/api/v1/cameras/"+camID+"/holds", strings.NewReader(string(body)), "application/json", &h); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "hold "+h.ID+" applied at "+n.NodeID, func() error {
		var list struct{ Holds []api.Hold }
		if _, err := hub.Do(ctx(t), "GET", "/api/v1/cameras/"+camID+"/holds", nil, "", &list); err != nil {
			return err
		}
		for _, x := range list.Holds {
			if x.ID == h.ID && x.State == "applied" {
				return nil
			}
		}
		return fmt.Errorf("not applied yet: %+v", list.Holds)
	})
	// A refusal at the hub, for the audit view's "denied" filter.
	if _, err := asUser(t, f, f.m.Hubs[0].URL, viewer).Do(ctx(t), "GET", "/api/v1/cameras/"+otherCam, nil, "", nil); err == nil {
		t.Fatalf("the viewer %s was let see %s", viewer.User, otherCam)
	}
	// A kelurahan without a node, for a join token.
	var areas api.Areas
	if _, err := hub.Do(ctx(t), "GET", "/api/v1/areas?level=kelurahan", nil, "", &areas); err != nil {
		t.Fatal(err)
	}
	tokenKel := ""
	for _, a := range areas.Areas {
		if a.Nodes == 0 {
			tokenKel = a.Code
			break
		}
	}
	newUser := "ui-viewer-" + stamp

	var res struct {
		Camera struct {
			Title           string  `json:"title"`
			State           string  `json:"state"`
			StateClass      string  `json:"state_class"`
			LiveFrames      int     `json:"live_frames"`
			LiveFramesAfter int     `json:"live_frames_after"`
			Spans           int     `json:"spans"`
			BothShown       bool    `json:"both_shown"`
			ClickedMS       float64 `json:"clicked_ms"`
			ClockMS         float64 `json:"clock_ms"`
			PlaybackFrames  int     `json:"playback_frames"`
		} `json:"camera"`
		Evidence struct {
			ExportRow string `json:"export_row"`
			Verdict   struct {
				Text, Cls, Checks string
			} `json:"verdict"`
			Holds []struct {
				Key, Text string
			} `json:"holds"`
			Summary         string `json:"summary"`
			FilteredExports int    `json:"filtered_exports"`
			FilteredHolds   int    `json:"filtered_holds"`
		} `json:"evidence"`
		Audit struct {
			VerifyOK string     `json:"verify_ok"`
			Verdict  string     `json:"verdict"`
			Rows     int        `json:"rows"`
			Logins   [][]string `json:"logins"`
			Denied   [][]string `json:"denied"`
		} `json:"audit"`
		Admin struct {
			Summary      string `json:"summary"`
			SummaryClass string `json:"summary_class"`
			Members      []struct {
				Key, Text string
			} `json:"members"`
			Nodes           []string `json:"nodes"`
			TokenLen        int      `json:"token_len"`
			TokenText       string   `json:"token_text"`
			UserRow         string   `json:"user_row"`
			UserRowDisabled string   `json:"user_row_disabled"`
		} `json:"admin"`
		Node struct {
			ExportRow string `json:"export_row"`
			Download  struct {
				Name  string `json:"name"`
				Bytes int    `json:"bytes"`
				Box   string `json:"box"`
			} `json:"download"`
			Verdict struct {
				Text, Cls, Checks string
			} `json:"verdict"`
			AuditOK      string `json:"audit_ok"`
			AuditVerdict string `json:"audit_verdict"`
			AuditRows    int    `json:"audit_rows"`
		} `json:"node"`
	}
	runBrowserJSON(t, "views.mjs", &res, "--url", f.m.Hubs[0].URL, "--user", admin.User, "--password", admin.Password,
		"--camera", camID, "--export", e.ID, "--node", n.NodeID, "--hold-reason", holdReason, "--token-kel", tokenKel,
		"--new-user", newUser, "--new-password", "ui-test-password-"+stamp,
		"--node-url", n.URL, "--node-user", nodeAdmin.User, "--node-password", nodeAdmin.Password,
		"--shots", filepath.Join(repoRoot(t), "test-output"))

	c := res.Camera
	if !c.BothShown || c.LiveFrames < 10 || c.Spans < 1 || c.PlaybackFrames < 10 || c.LiveFramesAfter < 5 {
		t.Fatalf("camera page: live and timeline shown %v, %d live frames (%d while playing back), %d recorded spans, %d playback frames", c.BothShown, c.LiveFrames, c.LiveFramesAfter, c.Spans, c.PlaybackFrames)
	}
	if d := c.ClockMS - c.ClickedMS; d > 3000 || d < -3000 {
		t.Fatalf("camera page: clicked the timeline at %.0f, the playback shows %.0f (%.1f s off)", c.ClickedMS, c.ClockMS, d/1000)
	}
	if c.StateClass != "ok" || !strings.Contains(c.State, "mengalir") || !strings.Contains(c.Title, camID) {
		t.Fatalf("camera page heading %q, state %q (%s)", c.Title, c.State, c.StateClass)
	}
	ev := res.Evidence
	if !strings.Contains(ev.ExportRow, exportReason) || !strings.Contains(ev.ExportRow, "tersimpan di node "+n.NodeID) {
		t.Fatalf("hub evidence: export row %q: want its reason %s and 'tersimpan di node %s'", ev.ExportRow, exportReason, n.NodeID)
	}
	if ev.Verdict.Cls != "ok" || !strings.Contains(ev.Verdict.Text, "Terverifikasi") {
		t.Fatalf("hub evidence: export %s verification %+v", e.ID, ev.Verdict)
	}
	if len(ev.Holds) != 1 || ev.Holds[0].Key != h.ID || !strings.Contains(ev.Holds[0].Text, "diterapkan di node "+n.NodeID) {
		t.Fatalf("hub evidence: holds with reason %s: %+v; want %s applied at %s", holdReason, ev.Holds, h.ID, n.NodeID)
	}
	if ev.FilteredHolds != 1 || ev.FilteredExports != 0 {
		t.Fatalf("hub evidence filtered by %s: %d holds, %d exports; want 1 and 0", holdReason, ev.FilteredHolds, ev.FilteredExports)
	}
	au := res.Audit
	if au.VerifyOK != "1" || !strings.Contains(au.Verdict, "Log utuh") || au.Rows == 0 {
		t.Fatalf("hub audit: verification %q (ok=%s), %d rows", au.Verdict, au.VerifyOK, au.Rows)
	}
	if len(au.Logins) == 0 {
		t.Fatalf("hub audit filtered by user %s and action login: no rows", admin.User)
	}
	for _, r := range au.Logins {
		if r[2] != admin.User || r[3] != "login" {
			t.Fatalf("hub audit filtered by user %s and action login shows %v", admin.User, r)
		}
	}
	sawViewer := false
	for _, r := range au.Denied {
		if !strings.HasPrefix(r[6], "denied") {
			t.Fatalf("hub audit filtered by outcome denied shows %v", r)
		}
		sawViewer = sawViewer || (r[2] == viewer.User && r[4] == otherCam)
	}
	if !sawViewer {
		t.Fatalf("hub audit filtered by outcome denied does not show %s refused %s: %v", viewer.User, otherCam, au.Denied)
	}
	ad := res.Admin
	leaders := 0
	for _, m := range ad.Members {
		if strings.Contains(m.Text, "pemimpin") {
			leaders++
		}
	}
	if ad.SummaryClass != "ok" || len(ad.Members) != 3 || leaders != 1 || !strings.Contains(ad.Summary, "3 dari 3 anggota sehat") {
		t.Fatalf("admin: cluster %q (%s), members %+v", ad.Summary, ad.SummaryClass, ad.Members)
	}
	for _, nn := range f.m.Nodes {
		if !slices.Contains(ad.Nodes, nn.NodeID) {
			t.Fatalf("admin: node list %v lacks %s", ad.Nodes, nn.NodeID)
		}
	}
	if ad.TokenLen < 20 || !strings.Contains(ad.TokenText, tokenKel) {
		t.Fatalf("admin: join token for %s: %q", tokenKel, ad.TokenText)
	}
	if !strings.Contains(ad.UserRow, "pemantau RT/RW") || !strings.Contains(ad.UserRow, camID) || !strings.Contains(ad.UserRow, "24 jam") || !strings.Contains(ad.UserRowDisabled, "nonaktif") {
		t.Fatalf("admin: new user row %q, after disabling %q", ad.UserRow, ad.UserRowDisabled)
	}
	var u api.UserInfo
	if _, err := hub.Do(ctx(t), "GET", "/api/v1/users/"+newUser, nil, "", &u); err != nil {
		t.Fatal(err)
	}
	if u.Role != auth.RoleViewer || !u.Disabled || !slices.Equal(u.Scope.Cameras, []string{camID}) || u.Scope.PlaybackHours != 24 {
		t.Fatalf("the user made in the admin view is %+v", u)
	}
	if _, err := hub.Do(ctx(t), "DELETE", "/api/v1/users/"+newUser, nil, "", nil); err != nil {
		t.Fatal(err)
	}
	nd := res.Node
	if !strings.Contains(nd.ExportRow, exportReason) || nd.Download.Box != "ftyp" || nd.Download.Bytes < 10000 || nd.Download.Name != e.ID+".mp4" {
		t.Fatalf("node evidence: export row %q, download %+v", nd.ExportRow, nd.Download)
	}
	if nd.Verdict.Cls != "ok" || !strings.Contains(nd.Verdict.Text, "Terverifikasi") {
		t.Fatalf("node evidence: export %s verification %+v", e.ID, nd.Verdict)
	}
	if nd.AuditOK != "1" || nd.AuditRows == 0 {
		t.Fatalf("node audit: %q (ok=%s), %d rows", nd.AuditVerdict, nd.AuditOK, nd.AuditRows)
	}
	t.Logf("camera page %s: %d live frames in 2 s, %d recorded spans, timeline click played %.1f s from the click (%d frames in 2 s) while live went on (%d frames in 1 s)",
		camID, c.LiveFrames, c.Spans, (c.ClockMS-c.ClickedMS)/1000, c.PlaybackFrames, c.LiveFramesAfter)
	t.Logf("hub evidence: export %s %q; %s; hold %s %q", e.ID, ev.Verdict.Text, strings.ReplaceAll(ev.Verdict.Checks, "\n", "; "), h.ID, ev.Holds[0].Text)
	t.Logf("hub audit: %s; %d rows; %d logins of %s; %d refusals", au.Verdict, au.Rows, len(au.Logins), admin.User, len(au.Denied))
	t.Logf("admin: %s; join token for %s; user %s made, disabled and deleted", ad.Summary, tokenKel, newUser)
	t.Logf("node %s as %s: export downloaded (%d bytes, %s), %q; node audit: %s",
		n.NodeID, nodeAdmin.User, nd.Download.Bytes, nd.Download.Box, nd.Verdict.Text, nd.AuditVerdict)
	t.Logf("screenshots: test-output/ui-camera-page.png, ui-evidence.png, ui-audit.png, ui-admin.png, ui-evidence-node.png")
}

// checkA11y: menus follow the role, and axe-core finds no serious or
// critical WCAG 2.1 A/AA violation on any view (test/browser/a11y.mjs).
func checkA11y(t *testing.T, f *federation) {
	users := demoUsers(t, f)
	admin := f.m.Users[0]
	n := f.m.Nodes[0]
	camID := ""
	for _, c := range f.m.Cameras {
		if c.Kelurahan == n.Kelurahan {
			camID = c.ID
			break
		}
	}
	type who struct {
		User     string `json:"user"`
		Password string `json:"password"`
		Role     string `json:"role"`
		At       string `json:"at"`
	}
	var list []who
	for _, r := range []string{auth.RoleOperator, auth.RoleAreaOperator, auth.RoleViewer, auth.RoleAuditor} {
		u := users[r]
		list = append(list, who{u.User, u.Password, r, "hub"})
	}
	na := users[auth.RoleNodeAdmin]
	list = append(list, who{na.User, na.Password, auth.RoleNodeAdmin, "node"})
	raw, _ := json.Marshal(list)
	var res struct {
		Views        map[string][]any    `json:"views"`
		Menus        map[string][]string `json:"menus"`
		FirstTab     string              `json:"first_tab"`
		AfterSkip    string              `json:"after_skip"`
		TabReached   []string            `json:"tab_reached"`
		HTMLLang     string              `json:"html_lang"`
		ViewerCamera struct {
			ExportShown   bool `json:"export_shown"`
			HoldShown     bool `json:"hold_shown"`
			LiveShown     bool `json:"live_shown"`
			PlaybackShown bool `json:"playback_shown"`
		} `json:"viewer_camera"`
	}
	runBrowserJSON(t, "a11y.mjs", &res, "--url", f.m.Hubs[0].URL, "--user", admin.User, "--password", admin.Password,
		"--camera", camID, "--users", string(raw), "--node-url", n.URL, "--shots", filepath.Join(repoRoot(t), "test-output"))
	want := map[string][]string{
		admin.User:                        {"overview", "wall", "search", "nodes", "cameras", "evidence", "cases", "audit", "admin"},
		users[auth.RoleOperator].User:     {"overview", "wall", "search", "nodes", "cameras", "evidence", "cases", "admin"},
		users[auth.RoleAreaOperator].User: {"overview", "wall", "search", "nodes", "cameras", "evidence", "cases"},
		users[auth.RoleViewer].User:       {"overview", "wall", "search", "nodes", "cameras"},
		users[auth.RoleAuditor].User:      {"overview", "search", "nodes", "cameras", "evidence", "cases", "audit"},
		na.User:                           {"overview", "wall", "nodes", "cameras", "evidence", "audit"},
	}
	for u, w := range want {
		if !slices.Equal(res.Menus[u], w) {
			t.Errorf("menu of %s: %v, want %v", u, res.Menus[u], w)
		}
	}
	vc := res.ViewerCamera
	if vc.ExportShown || vc.HoldShown || !vc.LiveShown || !vc.PlaybackShown {
		t.Errorf("the RT/RW viewer's camera page: %+v; want live and playback, no export or hold", vc)
	}
	if len(res.Views) < 14 {
		t.Errorf("axe ran on %d views: %v", len(res.Views), res.Views)
	}
	var names []string
	for v, violations := range res.Views {
		names = append(names, v)
		if len(violations) > 0 {
			j, _ := json.MarshalIndent(violations, "", "  ")
			t.Errorf("view %s: %d accessibility violations:\n%s", v, len(violations), j)
		}
	}
	slices.Sort(names)
	if !strings.Contains(res.FirstTab, "skip") || res.AfterSkip != "main" {
		t.Errorf("keyboard: the first Tab reaches %q and Enter moves focus to %q; want the skip link, then main", res.FirstTab, res.AfterSkip)
	}
	for _, id := range []string{"nav-overview", "nav-wall", "nav-search", "nav-nodes", "nav-cameras", "nav-evidence", "nav-cases", "nav-audit", "nav-admin", "logout", "lang-toggle"} {
		if !slices.Contains(res.TabReached, id) {
			t.Errorf("keyboard: Tab does not reach #%s (reached %v)", id, res.TabReached)
		}
	}
	if res.HTMLLang != "en" {
		t.Errorf("after the language switch <html lang> is %q", res.HTMLLang)
	}
	t.Logf("menus by role: %v", res.Menus)
	t.Logf("axe-core 4.14.1 (WCAG 2.1 A/AA, serious and critical): no violations on %d views: %s; keyboard: skip link first, Tab reaches the whole menu", len(names), strings.Join(names, ", "))
}
