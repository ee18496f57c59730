package main

// ronda reportsim: posts realistic citizen reports, as the city's
// complaint system (JAKI) would, to a hub's POST /api/v1/reports.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/demo"
)

// reportKinds: what citizens report, in the words they use.
var reportKinds = []struct{ category, text string }{
	{"theft", "Motor saya hilang di depan warung, sekitar jam yang tertera. Mohon dicek CCTV."},
	{"theft", "Ada yang mengambil tas dari mobil yang diparkir di pinggir jalan."},
	{"vandalism", "Fasilitas taman dicoret-coret dan lampu jalan dipecahkan."},
	{"violence", "Terjadi perkelahian antar pemuda di dekat persimpangan."},
	{"traffic", "Tabrakan motor dengan mobil, pengendara motor luka ringan."},
	{"flood", "Genangan air tinggi, beberapa kendaraan mogok di jalan."},
	{"garbage", "Orang membuang sampah sembarangan di saluran air malam hari."},
}

func runReportsim(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("reportsim", flag.ExitOnError)
	demoDir := fs.String("demo", "", "a demo directory (ronda-demo): its hub, CA and report client token")
	hubURL := fs.String("hub", "", "a hub member's API URL (without --demo)")
	caFile := fs.String("ca", "", "the city CA certificate (without --demo)")
	token := fs.String("token", os.Getenv("RONDA_REPORT_TOKEN"), "the complaint system's token (without --demo; or $RONDA_REPORT_TOKEN)")
	n := fs.Int("n", 1, "how many reports")
	near := fs.String("near", "", "a camera id or kelurahan code of the demo: report a spot near it (default: a random demo camera)")
	lat := fs.Float64("lat", 0, "the reported spot (instead of --near)")
	lon := fs.Float64("lon", 0, "the reported spot (instead of --near)")
	category := fs.String("category", "", "theft, vandalism, violence, traffic, flood, garbage (default: random)")
	id := fs.String("id", "", "the report id (default: JAKI-<date>-<random>); posting the same id again is answered with the same case")
	ago := fs.Duration("ago", 5*time.Minute, "the incident ended this long ago")
	window := fs.Duration("window", 4*time.Minute, "the incident window's length")
	callback := fs.String("callback", "", "an https URL the hub tells of each change")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random seed")
	fs.Parse(args)
	rng := rand.New(rand.NewPCG(*seed, 7))

	var m *demo.Manifest
	if *demoDir != "" {
		raw, err := os.ReadFile(filepath.Join(*demoDir, "demo.json"))
		if err != nil {
			return fmt.Errorf("reportsim: %w (is the demo running? 'make demo')", err)
		}
		m = new(demo.Manifest)
		if err := json.Unmarshal(raw, m); err != nil {
			return fmt.Errorf("reportsim: %s: %w", filepath.Join(*demoDir, "demo.json"), err)
		}
		if *hubURL == "" && len(m.Hubs) > 0 {
			*hubURL = m.Hubs[0].URL
		}
		if *caFile == "" {
			*caFile = m.CAFile
		}
		if *token == "" {
			*token = m.ReportToken
		}
	}
	if *hubURL == "" || *caFile == "" || *token == "" {
		return errors.New("reportsim: give --demo DIR, or --hub URL --ca CA.pem --token TOKEN")
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("reportsim: %s holds no certificate", *caFile)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}

	for i := 0; i < *n; i++ {
		spotLat, spotLon := *lat, *lon
		if spotLat == 0 && spotLon == 0 {
			if m == nil || len(m.Cameras) == 0 {
				return errors.New("reportsim: give --lat and --lon (or --demo with cameras)")
			}
			var cams []demo.CameraEntry
			for _, c := range m.Cameras {
				if *near == "" || c.ID == *near || c.Kelurahan == *near {
					cams = append(cams, c)
				}
			}
			if len(cams) == 0 {
				return fmt.Errorf("reportsim: no demo camera or kelurahan %q", *near)
			}
			c := cams[rng.IntN(len(cams))]
			// Within ~40 m of the camera: a citizen's phone GPS.
			d, a := 40*rng.Float64(), 2*math.Pi*rng.Float64()
			spotLat = c.Lat + d*math.Cos(a)/111_320
			spotLon = c.Lon + d*math.Sin(a)/(111_320*math.Cos(c.Lat*math.Pi/180))
		}
		kind := reportKinds[rng.IntN(len(reportKinds))]
		if *category != "" {
			kind.category = *category
			for _, k := range reportKinds {
				if k.category == *category {
					kind.text = k.text
				}
			}
		}
		now := time.Now().UTC()
		rid := *id
		if rid == "" || *n > 1 {
			rid = fmt.Sprintf("JAKI-%s-%06d", now.Format("20060102"), rng.IntN(1_000_000))
		}
		req := api.ReportRequest{ID: rid, Category: kind.category, Text: kind.text, Location: api.ReportLocation{Lat: spotLat, Lon: spotLon},
			ReportedAt: now, IncidentFrom: now.Add(-*ago - *window).Truncate(time.Second), IncidentTo: now.Add(-*ago).Truncate(time.Second), CallbackURL: *callback}
		body, _ := json.Marshal(req)
		hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*hubURL, "/")+"/api/v1/reports", bytes.NewReader(body))
		if err != nil {
			return err
		}
		hreq.Header.Set("Authorization", "Bearer "+*token)
		hreq.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(hreq)
		if err != nil {
			return err
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("reportsim: report %s: %s: %s", rid, resp.Status, strings.TrimSpace(string(raw)))
		}
		var st api.ReportStatus
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("reportsim: report %s: %w", rid, err)
		}
		var cams []string
		for _, c := range st.Cameras {
			cams = append(cams, fmt.Sprintf("%s (%s, %.0f m, hold %s)", c.Camera, c.NodeID, c.DistanceM, c.HoldState))
		}
		fmt.Printf("report %s (%s) at %.6f,%.6f, %s to %s: %s, case %s, deadline %s; %d cameras: %s\n", st.ID, st.Category, spotLat, spotLon,
			req.IncidentFrom.Format(time.RFC3339), req.IncidentTo.Format(time.RFC3339), st.Status, st.CaseID, st.Deadline.Format(time.RFC3339),
			len(st.Cameras), strings.Join(cams, ", "))
	}
	return nil
}
