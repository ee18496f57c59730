//go:build e2e

package system_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/demo"
)

// distanceM is the great-circle distance in metres.
func distanceM(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6_371_000
	p1, p2 := lat1*math.Pi/180, lat2*math.Pi/180
	dp, dl := p2-p1, (lon2-lon1)*math.Pi/180
	a := math.Sin(dp/2)*math.Sin(dp/2) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl/2)*math.Sin(dl/2)
	return 2 * r * math.Asin(math.Sqrt(a))
}

// reportClient is the complaint system: its own token, not a person's.
func reportClient(t *testing.T, f *federation) *demo.Client {
	t.Helper()
	c, err := demo.NewClient(f.m.Hubs[0].URL, f.m.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	c.Token = f.m.ReportToken
	return c
}

// postReport posts a citizen report; it returns the status and the body.
func postReport(t *testing.T, f *federation, body any) (int, []byte) {
	t.Helper()
	raw, _ := json.Marshal(body)
	var out []byte
	resp, err := reportClient(t, f).Do(ctx(t), "POST", "/api/v1/reports", bytes.NewReader(raw), "application/json", &out)
	var ae *demo.APIError
	if errors.As(err, &ae) {
		return ae.Status, []byte(ae.Message)
	}
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// checkReportCase: a citizen report near cameras of two nodes, one of them
// offline, becomes a case with holds (the offline node's applied when it
// returns); retention pressure on both nodes deletes nothing held; the
// footage is pulled to the hub (the link broken once mid-transfer, and
// resumed), copied to two members, and bundled; `ronda verify` passes the
// bundle and names an altered byte or a removed audit record.
func checkReportCase(t *testing.T, f *federation) {
	n1, n2 := f.m.Nodes[0], f.m.Nodes[1]
	var cams1, cams2, others []demo.CameraEntry
	for _, c := range f.m.Cameras {
		switch c.Kelurahan {
		case n1.Kelurahan:
			cams1 = append(cams1, c)
		case n2.Kelurahan:
			cams2 = append(cams2, c)
		default:
			others = append(others, c)
		}
	}
	// A flood report (the demo's flood radius is 4 km) halfway between the
	// two kelurahan reaches the cameras of both and no other.
	lat, lon := (cams1[0].Lat+cams2[0].Lat)/2, (cams1[0].Lon+cams2[0].Lon)/2
	var want []string
	for _, c := range append(append([]demo.CameraEntry{}, cams1...), cams2...) {
		if d := distanceM(lat, lon, c.Lat, c.Lon); d > 4000 {
			t.Fatalf("camera %s is %.0f m from the spot: the demo's layout no longer fits this test", c.ID, d)
		}
		want = append(want, c.ID)
	}
	for _, c := range others {
		if d := distanceM(lat, lon, c.Lat, c.Lon); d <= 4000 {
			t.Fatalf("camera %s of another node is %.0f m from the spot", c.ID, d)
		}
	}
	slices.Sort(want)
	hub := liveHub(t, f)
	admin := f.m.Users[0]

	// The incident window: 80 s of footage every camera has.
	poll(t, 120*time.Second, "80 s recorded on every camera of "+n1.NodeID+" and "+n2.NodeID, func() error {
		for _, id := range want {
			rec, err := hub.Recordings(ctx(t), id, time.Now().Add(-100*time.Second), time.Now().Add(-10*time.Second))
			if err != nil {
				return err
			}
			total := 0.0
			for _, sp := range rec.Spans {
				total += sp.End.Sub(sp.Start).Seconds()
			}
			if total < 80 {
				return fmt.Errorf("%s: %.0f s recorded", id, total)
			}
		}
		return nil
	})
	incidentTo := time.Now().Add(-10 * time.Second).UTC().Truncate(time.Second)
	incidentFrom := incidentTo.Add(-80 * time.Second)

	// n2 goes offline.
	if _, err := demo.SetLink(context.Background(), f.dir, n2.NodeID, "down", 0); err != nil {
		t.Fatal(err)
	}
	relinked := false
	defer func() {
		if !relinked {
			demo.SetLink(context.Background(), f.dir, n2.NodeID, "up", 0)
		}
	}()
	poll(t, 60*time.Second, n2.NodeID+" offline at the hub", func() error {
		ns, err := hub.Nodes(ctx(t))
		if err != nil {
			return err
		}
		for _, n := range ns {
			if n.NodeID == n2.NodeID && n.Online {
				return fmt.Errorf("still online")
			}
		}
		return nil
	})

	// The report.
	reportID := "JAKI-E2E-" + time.Now().UTC().Format("150405")
	report := api.ReportRequest{ID: reportID, Category: "flood", Text: "Banjir setinggi lutut, motor mogok di jalan.",
		Location: api.ReportLocation{Lat: lat, Lon: lon}, ReportedAt: time.Now().UTC(), IncidentFrom: incidentFrom, IncidentTo: incidentTo}
	start := time.Now()
	code, raw := postReport(t, f, report)
	took := time.Since(start)
	if code != http.StatusCreated {
		t.Fatalf("POST /api/v1/reports: %d %s", code, raw)
	}
	var st api.ReportStatus
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range st.Cameras {
		got = append(got, c.Camera)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) || st.CaseID == "" || st.Deadline.Sub(report.ReportedAt) != 6*24*time.Hour {
		t.Fatalf("report %s: case %q, cameras %v, deadline %s; want cameras %v and a deadline 6 days after it was reported", reportID, st.CaseID, got, st.Deadline, want)
	}
	t.Logf("report %s (flood, 4 km) at %.5f,%.5f: case %s with the %d cameras of %s and %s in %d ms; status %s", reportID, lat, lon, st.CaseID, len(got), n1.NodeID, n2.NodeID, took.Milliseconds(), st.Status)

	// The same report again: the same case. A malformed one: a clear 400.
	if code, raw := postReport(t, f, report); code != http.StatusOK || !strings.Contains(string(raw), st.CaseID) {
		t.Fatalf("the same report again: %d %s, want 200 with case %s", code, raw, st.CaseID)
	}
	bad := report
	bad.ID, bad.Location = reportID+"-bad", api.ReportLocation{}
	if code, raw := postReport(t, f, bad); code != http.StatusBadRequest || !strings.Contains(string(raw), "location") {
		t.Fatalf("a report without a location: %d %s, want 400 naming the location", code, raw)
	}

	// n1's holds are applied; n2's wait.
	status := func() api.ReportStatus {
		var s api.ReportStatus
		if _, err := reportClient(t, f).Do(ctx(t), "GET", "/api/v1/reports/"+reportID, nil, "", &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	holdsOf := func(s api.ReportStatus, node string) []string {
		var out []string
		for _, c := range s.Cameras {
			if c.NodeID == node {
				out = append(out, c.HoldState)
			}
		}
		return out
	}
	poll(t, 30*time.Second, n1.NodeID+"'s holds applied", func() error {
		s := status()
		for _, h := range holdsOf(s, n1.NodeID) {
			if h != "applied" {
				return fmt.Errorf("%s: %v", n1.NodeID, holdsOf(s, n1.NodeID))
			}
		}
		return nil
	})
	if s := status(); s.Status != api.ReportHoldsPending || slices.ContainsFunc(holdsOf(s, n2.NodeID), func(h string) bool { return h != "pending" }) {
		t.Fatalf("while %s is offline: status %s, its holds %v; want holds_pending and pending", n2.NodeID, s.Status, holdsOf(s, n2.NodeID))
	}

	// Retention pressure at n1 (everything unheld older than 30 s goes).
	purge := func(n demo.NodeEntry) api.RetentionResult {
		c := asUser(t, f, n.URL, demo.UserEntry{User: admin.User, Password: admin.Password})
		var res api.RetentionResult
		if _, err := c.Do(ctx(t), "POST", "/api/v1/retention/run", strings.NewReader(`{"older_than":"30s"}`), "application/json", &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	coverage := func(n demo.NodeEntry, cam string, from, to time.Time) float64 {
		c := asUser(t, f, n.URL, demo.UserEntry{User: admin.User, Password: admin.Password})
		rec, err := c.Recordings(ctx(t), cam, from, to)
		if err != nil {
			t.Fatal(err)
		}
		total := 0.0
		for _, sp := range rec.Spans {
			total += sp.End.Sub(sp.Start).Seconds()
		}
		return total
	}
	time.Sleep(time.Until(incidentTo.Add(35 * time.Second))) // the window is older than the purge's limit
	// Footage well before the window (beyond the 1-minute segment that may
	// straddle its start) is unheld: the pressure must take it.
	unheldFrom, unheldTo := incidentFrom.Add(-15*time.Minute), incidentFrom.Add(-70*time.Second)
	unheld := 0.0
	for _, c := range cams1 {
		unheld += coverage(n1, c.ID, unheldFrom, unheldTo)
	}
	res1 := purge(n1)
	for _, c := range cams1 {
		if held := coverage(n1, c.ID, incidentFrom, incidentTo); held < 75 {
			t.Fatalf("after retention pressure at %s, camera %s has %.0f s of the held 80 s", n1.NodeID, c.ID, held)
		}
		if left := coverage(n1, c.ID, unheldFrom, unheldTo); left > 0 {
			t.Fatalf("retention pressure left %.0f s of unheld footage before the window at %s", left, c.ID)
		}
	}
	if unheld > 0 && res1.Deleted == 0 {
		t.Fatalf("%.0f s of unheld footage before the window, and the pressure deleted no segment", unheld)
	}
	t.Logf("retention pressure at %s: %d segments deleted (%.0f s of unheld footage before the window gone), %d held segments kept; the 80 s held window is whole on every camera",
		n1.NodeID, res1.Deleted, unheld, res1.HeldKept)

	// n2 comes back: its holds are applied, then the same pressure.
	if _, err := demo.SetLink(context.Background(), f.dir, n2.NodeID, "up", 0); err != nil {
		t.Fatal(err)
	}
	relinked = true
	back := time.Now()
	poll(t, 60*time.Second, n2.NodeID+"'s holds applied after it reconnected", func() error {
		if s := status(); s.Status != api.ReportHolding {
			return fmt.Errorf("status %s, %s's holds %v", s.Status, n2.NodeID, holdsOf(s, n2.NodeID))
		}
		return nil
	})
	t.Logf("%s reconnected: its holds applied %.1f s later; report status %s", n2.NodeID, time.Since(back).Seconds(), api.ReportHolding)
	res2 := purge(n2)
	for _, c := range cams2 {
		if held := coverage(n2, c.ID, incidentFrom, incidentTo); held < 75 {
			t.Fatalf("after retention pressure at %s, camera %s has %.0f s of the held 80 s", n2.NodeID, c.ID, held)
		}
	}
	t.Logf("retention pressure at %s: %d segments deleted, %d held segments kept", n2.NodeID, res2.Deleted, res2.HeldKept)

	// Pull, with n1's link broken once while its first item is coming.
	c := asUser(t, f, f.m.Hubs[0].URL, demo.UserEntry{User: admin.User, Password: admin.Password})
	var kase api.Case
	if _, err := c.Do(ctx(t), "POST", "/api/v1/cases/"+st.CaseID+"/pull", nil, "", &kase); err != nil {
		t.Fatal(err)
	}
	getCase := func() api.Case {
		var k api.Case
		if _, err := c.Do(ctx(t), "GET", "/api/v1/cases/"+st.CaseID, nil, "", &k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	var cutItem string
	poll(t, 120*time.Second, "an item of "+n1.NodeID+" being pulled", func() error {
		for _, it := range getCase().Items {
			if it.NodeID == n1.NodeID && it.Pull.State == api.PullPulling && it.Pull.Bytes > 0 && it.Pull.Bytes < it.Pull.Total/2 {
				cutItem = it.ID
				return nil
			}
		}
		return fmt.Errorf("not yet")
	})
	if _, err := demo.SetLink(context.Background(), f.dir, n1.NodeID, "reset", 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if _, err := demo.SetLink(context.Background(), f.dir, n1.NodeID, "up", 0); err != nil {
		t.Fatal(err)
	}
	pullStart := time.Now()
	poll(t, 300*time.Second, "every item pulled, verified and copied to two members", func() error {
		k := getCase()
		for _, it := range k.Items {
			if it.Pull.State != api.PullStored || len(it.Pull.Holders) < 2 {
				return fmt.Errorf("%s %s: %s %d/%d holders %v %s", it.ID, it.Camera, it.Pull.State, it.Pull.Bytes, it.Pull.Total, it.Pull.Holders, it.Pull.Error)
			}
		}
		kase = k
		return nil
	})
	var total int64
	for _, it := range kase.Items {
		total += it.Pull.Total
		if it.ID == cutItem && it.Pull.Attempts < 2 {
			t.Fatalf("item %s was cut mid-transfer but finished in %d attempt(s)", it.ID, it.Pull.Attempts)
		}
	}
	t.Logf("pulled %d items (%d bytes) in %.1f s after the link came back; item %s was cut mid-transfer and resumed; every item on 2+ members", len(kase.Items), total, time.Since(pullStart).Seconds(), cutItem)

	// The case in the UI: every item stored, with its copies; the bundle
	// downloads from the page.
	var ui struct {
		Title    string `json:"title"`
		Listed   []struct{ ID, Text string }
		Items    []struct{ Camera, State, Text string }
		Download struct {
			Name  string `json:"name"`
			Bytes int    `json:"bytes"`
			Magic string `json:"magic"`
		} `json:"download"`
	}
	runBrowserJSON(t, "cases.mjs", &ui, "--url", f.m.Hubs[0].URL, "--user", admin.User, "--password", admin.Password, "--camera", "-",
		"--case", st.CaseID, "--shots", filepath.Join(repoRoot(t), "test-output"))
	if len(ui.Items) != len(want) || !strings.Contains(ui.Title, st.CaseID) || ui.Download.Magic != "PK" || ui.Download.Name != st.CaseID+".zip" {
		t.Fatalf("case view: %q, items %+v, download %+v", ui.Title, ui.Items, ui.Download)
	}
	for _, it := range ui.Items {
		if it.State != api.PullStored || !strings.Contains(it.Text, "salinan di") {
			t.Fatalf("case view: item %s shows %q (%s); want stored, with its copies", it.Camera, it.Text, it.State)
		}
	}
	t.Logf("case view: %s; %d items stored with their copies; the bundle downloaded from the page (%d bytes). Screenshot: test-output/ui-case.png", ui.Title, len(ui.Items), ui.Download.Bytes)

	// The bundle, and ronda verify.
	dir := t.TempDir()
	bundle := filepath.Join(dir, st.CaseID+".zip")
	// Asked of a member holding no copy of the first item, the bundle
	// streams it from one that does.
	from := f.m.Hubs[0]
	for _, h := range f.m.Hubs {
		if !slices.Contains(kase.Items[0].Pull.Holders, h.Name) {
			from = h
			break
		}
	}
	bc := asUser(t, f, from.URL, demo.UserEntry{User: admin.User, Password: admin.Password})
	if _, err := bc.Do(ctx(t), "GET", "/api/v1/cases/"+st.CaseID+"/bundle", nil, "", &raw); err != nil {
		t.Fatalf("bundle from %s (item %s is on %v): %v", from.Name, kase.Items[0].ID, kase.Items[0].Pull.Holders, err)
	}
	t.Logf("bundle downloaded from %s; item %s's copies are on %v", from.Name, kase.Items[0].ID, kase.Items[0].Pull.Holders)
	if err := os.WriteFile(bundle, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	bin := binary(t, repoRoot(t))
	verify := func(path string) (string, error) {
		out, err := exec.Command(bin, "verify", "--ca", f.m.CAFile, path).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(bundle); err != nil || !strings.Contains(out, "VERIFIED") {
		t.Fatalf("ronda verify %s: %v\n%s", bundle, err, out)
	} else {
		t.Logf("bundle %s (%d bytes): %s", filepath.Base(bundle), len(raw), strings.TrimSpace(out))
	}
	// One altered byte in an MP4; one audit record removed.
	altered, removed := filepath.Join(dir, "altered.zip"), filepath.Join(dir, "removed.zip")
	var mp4, auditFile string
	rewriteZip(t, bundle, altered, func(name string, data []byte) []byte {
		if mp4 == "" && strings.HasSuffix(name, ".mp4") {
			mp4 = name
			data = bytes.Clone(data)
			data[len(data)/2] ^= 0x01
		}
		return data
	})
	rewriteZip(t, bundle, removed, func(name string, data []byte) []byte {
		if auditFile == "" && strings.HasPrefix(name, "audit/") {
			auditFile = name
			return nil
		}
		return data
	})
	if out, err := verify(altered); err == nil || !strings.Contains(out, mp4) {
		t.Fatalf("ronda verify of a bundle with one byte of %s altered: %v\n%s", mp4, err, out)
	} else {
		t.Logf("one byte of %s altered: %s", mp4, firstProblem(out))
	}
	if out, err := verify(removed); err == nil || !strings.Contains(out, auditFile) {
		t.Fatalf("ronda verify of a bundle without %s: %v\n%s", auditFile, err, out)
	} else {
		t.Logf("%s removed: %s", auditFile, firstProblem(out))
	}
}

func firstProblem(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "-") {
			return strings.TrimSpace(strings.TrimPrefix(l, "-"))
		}
	}
	return strings.TrimSpace(out)
}

// rewriteZip copies a zip, passing each file through edit (nil drops it).
func rewriteZip(t *testing.T, src, dst string, edit func(name string, data []byte) []byte) {
	t.Helper()
	r, err := zip.OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w := zip.NewWriter(out)
	for _, f := range r.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if data = edit(f.Name, data); data == nil {
			continue
		}
		fw, err := w.CreateHeader(&zip.FileHeader{Name: f.Name, Method: f.Method, Modified: f.Modified})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkReportsim: on the demo, `ronda reportsim` posts a theft report
// near one of Gambir's cameras; within seconds the hub answers with a case
// holding exactly the cameras within the theft radius (300 m), and the
// case lists them.
func checkReportsim(t *testing.T, f *federation) {
	n1 := f.m.Nodes[0]
	var cam demo.CameraEntry
	for _, c := range f.m.Cameras {
		if c.Kelurahan == n1.Kelurahan {
			cam = c
			break
		}
	}
	bin := binary(t, repoRoot(t))
	id := "JAKI-SIM-" + time.Now().UTC().Format("150405")
	start := time.Now()
	out, err := exec.Command(bin, "reportsim", "--demo", f.dir, "--near", cam.ID, "--category", "theft", "--id", id,
		"--ago", "20s", "--window", "60s", "--seed", "7").CombinedOutput()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("ronda reportsim: %v\n%s", err, out)
	}
	var st api.ReportStatus
	if _, err := reportClient(t, f).Do(ctx(t), "GET", "/api/v1/reports/"+id, nil, "", &st); err != nil {
		t.Fatal(err)
	}
	// Every camera within 300 m of the spot reportsim chose (within 40 m of
	// cam) is one of Gambir's; the others are kilometres away.
	var want, got []string
	for _, c := range f.m.Cameras {
		if c.Kelurahan == n1.Kelurahan {
			want = append(want, c.ID)
		}
	}
	for _, c := range st.Cameras {
		got = append(got, c.Camera)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) || st.CaseID == "" || !strings.Contains(string(out), st.CaseID) {
		t.Fatalf("reportsim near %s: case %q with %v, want %v\n%s", cam.ID, st.CaseID, got, want, out)
	}
	admin := f.m.Users[0]
	c := asUser(t, f, f.m.Hubs[1].URL, demo.UserEntry{User: admin.User, Password: admin.Password})
	var k api.Case
	if _, err := c.Do(ctx(t), "GET", "/api/v1/cases/"+st.CaseID, nil, "", &k); err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, it := range k.Items {
		listed = append(listed, it.Camera)
	}
	slices.Sort(listed)
	if !slices.Equal(listed, want) || k.Report != id {
		t.Fatalf("case %s at another member lists %v for report %q", k.ID, listed, k.Report)
	}
	t.Logf("ronda reportsim (%d ms): %s", took.Milliseconds(), strings.TrimSpace(string(out)))
	t.Logf("case %s at %s lists %v; report status %s", k.ID, f.m.Hubs[1].Name, listed, st.Status)

	// A report reported almost 6 days ago (received late): its deadline is
	// an hour away and nobody has looked, so the hub alerts; its callback
	// URL hears each change; once someone opens the case it is "viewed".
	var mu sync.Mutex
	var heard []api.ReportStatus
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s api.ReportStatus
		if json.NewDecoder(r.Body).Decode(&s) == nil {
			mu.Lock()
			heard = append(heard, s)
			mu.Unlock()
		}
	}))
	defer cb.Close()
	late := api.ReportRequest{ID: id + "-LATE", Category: "theft", Text: "Laporan terlambat diteruskan.", Location: api.ReportLocation{Lat: cam.Lat, Lon: cam.Lon},
		ReportedAt: time.Now().Add(-6*24*time.Hour + time.Hour).UTC(), IncidentFrom: time.Now().Add(-80 * time.Second).UTC(), IncidentTo: time.Now().Add(-20 * time.Second).UTC(),
		CallbackURL: cb.URL + "/jaki/callback"}
	if code, raw := postReport(t, f, late); code != http.StatusCreated {
		t.Fatalf("late report: %d %s", code, raw)
	}
	var lst api.ReportStatus
	poll(t, 30*time.Second, "the deadline alert of "+late.ID, func() error {
		if _, err := reportClient(t, f).Do(ctx(t), "GET", "/api/v1/reports/"+late.ID, nil, "", &lst); err != nil {
			return err
		}
		if lst.Alerted == nil {
			return fmt.Errorf("not alerted: %+v", lst)
		}
		return nil
	})
	if _, err := c.Do(ctx(t), "GET", "/api/v1/cases/"+lst.CaseID, nil, "", nil); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "the callback told that "+late.ID+" was alerted and then viewed", func() error {
		mu.Lock()
		defer mu.Unlock()
		alerted, viewed := false, false
		for _, h := range heard {
			alerted = alerted || h.Alerted != nil
			viewed = viewed || (h.Status == api.ReportViewed && h.ViewedBy == admin.User)
		}
		if !alerted || !viewed {
			return fmt.Errorf("heard %d callbacks: alerted %v, viewed %v", len(heard), alerted, viewed)
		}
		return nil
	})
	mu.Lock()
	var statuses []string
	for _, h := range heard {
		statuses = append(statuses, h.Status)
	}
	mu.Unlock()
	t.Logf("late report %s: deadline %s, alerted at %s (nobody had looked); callbacks heard: %v", late.ID, lst.Deadline.Format(time.RFC3339), lst.Alerted.Format(time.RFC3339), statuses)

	// Closing the first case releases its holds after the grace period
	// (20 s on the demo), at the hub and at the node.
	var closed api.Case
	if _, err := c.Do(ctx(t), "POST", "/api/v1/cases/"+st.CaseID+"/close", nil, "", &closed); err != nil {
		t.Fatal(err)
	}
	if closed.Status != "closed" || closed.ReleaseAfter == nil || (closed.ReleaseAfter.Sub(*closed.Closed)-20*time.Second).Abs() > time.Second ||
		slices.ContainsFunc(closed.Items, func(it api.CaseItem) bool { return it.HoldState != "applied" && it.HoldState != "pending" }) {
		t.Fatalf("just closed: %+v; want closed, its holds kept until the 20 s grace period ends", closed)
	}
	waited := poll(t, 90*time.Second, "case "+st.CaseID+"'s holds released after the grace period", func() error {
		var k api.Case
		if _, err := c.Do(ctx(t), "GET", "/api/v1/cases/"+st.CaseID, nil, "", &k); err != nil {
			return err
		}
		for _, it := range k.Items {
			if it.HoldState != "released" {
				return fmt.Errorf("%s: %s", it.Camera, it.HoldState)
			}
		}
		return nil
	})
	t.Logf("case %s closed at %s, holds kept until %s (the demo's 20 s grace); released at the node %.1f s after closing",
		st.CaseID, closed.Closed.Format(time.RFC3339), closed.ReleaseAfter.Format(time.RFC3339), waited.Seconds())
}
