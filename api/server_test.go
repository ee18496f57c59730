package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/auth"
)

type fakeBackend struct{ audits []AuditEvent }

func (fakeBackend) Identity() (string, string) { return "node", "Kelurahan Gambir" }
func (fakeBackend) Nodes(context.Context) ([]Node, error) {
	return []Node{{NodeID: "n1", KelurahanCode: "31.71.01.1001", Online: true}}, nil
}
func (fakeBackend) Cameras(context.Context) ([]Camera, error) {
	return []Camera{{ID: "3171011001-cam1", State: "streaming"}}, nil
}
func (fakeBackend) Recordings(_ context.Context, id string, from, to time.Time) (Recordings, error) {
	if id != "3171011001-cam1" {
		return Recordings{}, fmt.Errorf("%w: no camera %q", ErrNotFound, id)
	}
	return Recordings{CameraID: id, Spans: []Span{{Start: from, End: to}}}, nil
}
func (fakeBackend) Playback(_ context.Context, w io.Writer, id string, from, to time.Time, _ string) error {
	if id == "empty" {
		return fmt.Errorf("%w: no footage", ErrNotFound)
	}
	_, err := w.Write([]byte("ftypmp4"))
	return err
}
func (fakeBackend) Whep(_ context.Context, o WhepOffer) (WhepAnswer, error) {
	switch o.CameraID {
	case "offline":
		return WhepAnswer{}, fmt.Errorf("%w: node offline", ErrUnavailable)
	case "nocache":
		if !o.NoGOPCache {
			return WhepAnswer{}, fmt.Errorf("%w: gop_cache=0 was not passed on", ErrBadRequest)
		}
	case "bframes":
		return WhepAnswer{SDP: "v=0 answer", Session: "s2", Warning: "the camera sends B-frames"}, nil
	}
	if o.Stream == "sub" {
		return WhepAnswer{SDP: "v=0 answer", Session: "s3", Stream: "sub"}, nil
	}
	return WhepAnswer{SDP: "v=0 answer", Session: "s1"}, nil
}
func (fakeBackend) WhepPatch(_ context.Context, session, frag string) error {
	if session != "s1" {
		return fmt.Errorf("%w: no such live session", ErrNotFound)
	}
	if !strings.Contains(frag, "a=candidate:") {
		return fmt.Errorf("%w: no candidate", ErrBadRequest)
	}
	return nil
}
func (fakeBackend) WhepSession(_ context.Context, session string) (LiveSession, error) {
	if session != "s1" {
		return LiveSession{}, fmt.Errorf("%w: no such live session", ErrNotFound)
	}
	return LiveSession{Session: "s1", CameraID: "3171011001-cam1", State: "connected", Path: "turn"}, nil
}
func (fakeBackend) WhepDelete(context.Context, string) error { return nil }
func (fakeBackend) Revoke(_ context.Context, req RevocationRequest, user string) (Revocation, error) {
	return Revocation{Identity: "spiffe://jakarta/kelurahan/31.71.01.1001/node/" + req.NodeID, Reason: req.Reason, By: user}, nil
}
func (fakeBackend) LiftRevocation(_ context.Context, req RevocationRequest, _ string) (string, error) {
	return "spiffe://jakarta/kelurahan/31.71.01.1001/node/" + req.NodeID, nil
}
func (fakeBackend) Revocations(context.Context) ([]Revocation, error) { return []Revocation{}, nil }
func (fakeBackend) ICEServers(_ context.Context, user string) []ICEServer {
	return []ICEServer{{URLs: []string{"turn:127.0.0.1:3478?transport=udp"}, Username: "123:" + user, Credential: "c"}}
}
func (fakeBackend) Cluster(context.Context) (any, error) {
	return nil, fmt.Errorf("%w: a node has no cluster", ErrNotFound)
}

func (fakeBackend) CreateExport(_ context.Context, req ExportRequest, user string) (Export, error) {
	return Export{ID: "e1", Camera: req.Camera, Reason: req.Reason, RequestedBy: user, Status: "done"}, nil
}
func (fakeBackend) Exports(context.Context) ([]Export, error) { return []Export{{ID: "e1"}}, nil }
func (fakeBackend) OpenExport(_ context.Context, id, part string) (io.ReadSeekCloser, string, time.Time, error) {
	if id != "e1" {
		return nil, "", time.Time{}, fmt.Errorf("%w: no export %q", ErrNotFound, id)
	}
	return nopCloser{strings.NewReader("0123456789")}, "e1.mp4", time.Unix(0, 0), nil
}

func (fakeBackend) PutHold(_ context.Context, id string, req HoldRequest, user string) (Hold, error) {
	return Hold{ID: "7", CameraID: id, From: req.From, To: req.To, Reason: req.Reason, CreatedBy: user, Active: true}, nil
}
func (fakeBackend) Holds(_ context.Context, id string) ([]Hold, error) {
	return []Hold{{ID: "7", CameraID: id, Reason: "JAKI-7", Active: true}}, nil
}
func (fakeBackend) DeleteHold(_ context.Context, id, hold string) error {
	if hold != "7" {
		return fmt.Errorf("%w: no hold %s", ErrNotFound, hold)
	}
	return nil
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

func newTestServer(t *testing.T) (*httptest.Server, string, *[]AuditEvent) {
	t.Helper()
	hash, _ := auth.HashPassword("pw")
	users, _ := auth.NewStaticUsers([]auth.User{{Name: "op", PasswordHash: hash, Role: "admin"}})
	a, err := auth.New(auth.Options{Issuer: "node:n1", Secret: []byte(strings.Repeat("s", 32)), Users: users, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var audits []AuditEvent
	srv := httptest.NewServer(New(Options{Backend: fakeBackend{}, Auth: a, Audit: func(e AuditEvent) { audits = append(audits, e) }}))
	t.Cleanup(srv.Close)
	resp, err := http.Post(srv.URL+"/api/v1/login", "application/json", strings.NewReader(`{"user":"op","password":"pw"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		t.Fatalf("login: %v %+v", err, out)
	}
	return srv, out.Token, &audits
}

func TestAPI(t *testing.T) {
	srv, token, audits := newTestServer(t)
	const cam = "/api/v1/cameras/3171011001-cam1"
	rng := "?from=2026-11-22T10:00:00Z&to=2026-11-22T10:01:00Z"
	cases := []struct {
		name, method, path, body, ctype string
		token                           string
		status                          int
		contains                        string
	}{
		{"no token", "GET", "/api/v1/cameras", "", "", "", 401, "log in first"},
		{"bad token", "GET", "/api/v1/cameras", "", "", "nope", 401, "invalid or expired token"},
		{"wrong password", "POST", "/api/v1/login", `{"user":"op","password":"x"}`, "application/json", "", 401, "wrong user name or password"},
		{"malformed login", "POST", "/api/v1/login", `{`, "application/json", "", 400, "send JSON"},
		{"me", "GET", "/api/v1/me", "", "", token, 200, `"served_by": "node"`},
		{"nodes", "GET", "/api/v1/nodes", "", "", token, 200, `"kelurahan_code": "31.71.01.1001"`},
		{"cameras", "GET", "/api/v1/cameras", "", "", token, 200, `"id": "3171011001-cam1"`},
		{"camera", "GET", cam, "", "", token, 200, `"state": "streaming"`},
		{"unknown camera", "GET", "/api/v1/cameras/x", "", "", token, 404, "GET /api/v1/cameras lists them"},
		{"recordings", "GET", cam + "/recordings" + rng, "", "", token, 200, `"spans"`},
		{"recordings bad from", "GET", cam + "/recordings?from=yesterday&to=2026-11-22T10:01:00Z", "", "", token, 400, "RFC 3339"},
		{"recordings to before from", "GET", cam + "/recordings?from=2026-11-22T10:01:00Z&to=2026-11-22T10:00:00Z", "", "", token, 400, "must be after"},
		{"media", "GET", cam + "/media.mp4" + rng, "", "", token, 200, "ftyp"},
		{"media too long", "GET", cam + "/media.mp4?from=2026-11-20T10:00:00Z&to=2026-11-22T10:00:00Z", "", "", token, 400, "use an export"},
		{"media nothing", "GET", "/api/v1/cameras/empty/media.mp4" + rng, "", "", token, 404, "no footage"},
		{"whep", "POST", cam + "/whep", "v=0 offer", "application/sdp", token, 201, "answer"},
		{"whep wrong type", "POST", cam + "/whep", "v=0", "text/plain", token, 400, "application/sdp"},
		{"whep node offline", "POST", "/api/v1/cameras/offline/whep", "v=0", "application/sdp", token, 503, "node offline"},
		{"whep without the GOP cache", "POST", "/api/v1/cameras/nocache/whep?gop_cache=0", "v=0", "application/sdp", token, 201, "answer"},
		{"whep sub stream", "POST", cam + "/whep?stream=sub", "v=0", "application/sdp", token, 201, "answer"},
		{"whep bad stream", "POST", cam + "/whep?stream=hd", "v=0", "application/sdp", token, 400, "stream must be main or sub"},
		{"whep bad gop_cache", "POST", cam + "/whep?gop_cache=maybe", "v=0", "application/sdp", token, 400, "gop_cache must be 0 or 1"},
		{"whep b-frames warning", "POST", "/api/v1/cameras/bframes/whep", "v=0", "application/sdp", token, 201, "answer"},
		{"whep trickle", "PATCH", "/api/v1/whep/s1", "a=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n", "application/trickle-ice-sdpfrag", token, 204, ""},
		{"whep trickle wrong type", "PATCH", "/api/v1/whep/s1", "a=candidate:x", "application/sdp", token, 415, "trickle-ice-sdpfrag"},
		{"whep trickle unknown session", "PATCH", "/api/v1/whep/zz", "a=candidate:x", "application/trickle-ice-sdpfrag", token, 404, "no such live session"},
		{"whep session", "GET", "/api/v1/whep/s1", "", "", token, 200, `"path": "turn"`},
		{"ice servers", "GET", "/api/v1/live/ice-servers", "", "", token, 200, `"username": "123:op"`},
		{"whep delete", "DELETE", "/api/v1/whep/s1", "", "", token, 200, ""},
		{"enroll at a node", "POST", "/api/v1/enroll", `{"token":"rjt_x","node_id":"n9","csr":"x"}`, "application/json", "", 404, "enroll at a hub member"},
		{"revoke", "POST", "/api/v1/revocations", `{"node_id":"n1","reason":"stolen"}`, "application/json", token, 201, `"by": "op"`},
		{"revoke without reason", "POST", "/api/v1/revocations", `{"node_id":"n1"}`, "application/json", token, 400, "'reason' is required"},
		{"revoke two names", "POST", "/api/v1/revocations", `{"node_id":"n1","member":"h1","reason":"x"}`, "application/json", token, 400, "exactly one"},
		{"revocations", "GET", "/api/v1/revocations", "", "", token, 200, `"revocations"`},
		{"lift revocation", "DELETE", "/api/v1/revocations", `{"node_id":"n1"}`, "application/json", token, 200, `"lifted"`},
		{"cluster on node", "GET", "/api/v1/cluster", "", "", token, 404, "no cluster"},
		{"unknown path", "GET", "/api/v1/nope", "", "", token, 404, "no API call"},
		{"export", "POST", "/api/v1/exports", `{"camera":"3171011001-cam1","from":"2026-11-22T10:00:00Z","to":"2026-11-22T10:01:00Z","reason":"JAKI-1"}`, "application/json", token, 201, `"requested_by": "op"`},
		{"export without reason", "POST", "/api/v1/exports", `{"camera":"c","from":"2026-11-22T10:00:00Z","to":"2026-11-22T10:01:00Z"}`, "application/json", token, 400, "'reason' is required"},
		{"export too long", "POST", "/api/v1/exports", `{"camera":"c","from":"2026-11-20T10:00:00Z","to":"2026-11-22T10:01:00Z","reason":"x"}`, "application/json", token, 400, "at most"},
		{"export malformed", "POST", "/api/v1/exports", `{"camera":`, "application/json", token, 400, "send JSON"},
		{"exports", "GET", "/api/v1/exports", "", "", token, 200, `"id": "e1"`},
		{"export file", "GET", "/api/v1/exports/e1/file.mp4", "", "", token, 200, "0123456789"},
		{"export unknown", "GET", "/api/v1/exports/nope/manifest.json", "", "", token, 404, "no export"},
		{"hold", "POST", cam + "/holds", `{"from":"2026-11-22T10:00:00Z","to":"2026-11-22T10:30:00Z","reason":"JAKI-7"}`, "application/json", token, 201, `"created_by": "op"`},
		{"hold without reason", "POST", cam + "/holds", `{"from":"2026-11-22T10:00:00Z","to":"2026-11-22T10:30:00Z"}`, "application/json", token, 400, "'reason' is required"},
		{"hold already expired", "POST", cam + "/holds", `{"from":"2026-11-22T10:00:00Z","to":"2026-11-22T10:30:00Z","reason":"x","expires":"2001-01-01T00:00:00Z"}`, "application/json", token, 400, "already past"},
		{"hold backwards", "POST", cam + "/holds", `{"from":"2026-11-22T11:00:00Z","to":"2026-11-22T10:30:00Z","reason":"x"}`, "application/json", token, 400, "to after from"},
		{"hold malformed", "POST", cam + "/holds", `{"from":`, "application/json", token, 400, "send JSON"},
		{"holds", "GET", cam + "/holds", "", "", token, 200, `"reason": "JAKI-7"`},
		{"release hold", "DELETE", cam + "/holds/7", "", "", token, 204, ""},
		{"release unknown hold", "DELETE", cam + "/holds/8", "", "", token, 404, "no hold"},
		{"completeness", "GET", cam + "/completeness?from=2026-11-22T10:00:00Z&to=2026-11-22T12:00:00Z", "", "", token, 200, `"ratio"`},
		{"healthz", "GET", "/healthz", "", "", "", 200, "ok"},
		{"metrics", "GET", "/metrics", "", "", "", 200, "ronda_api_requests_total"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status || !strings.Contains(string(body), c.contains) {
				t.Fatalf("%s %s: %d %q, want %d containing %q", c.method, c.path, resp.StatusCode, body, c.status, c.contains)
			}
			if c.status >= 400 && resp.Header.Get("Content-Type") != "application/json" && c.path != "/metrics" {
				t.Fatalf("error answered as %q, want application/json", resp.Header.Get("Content-Type"))
			}
			if c.name == "whep" {
				// RFC 9725: the session's URL, trickle accepted, ICE servers as Link headers.
				if resp.Header.Get("Location") != "/api/v1/whep/s1" || resp.Header.Get("Accept-Patch") != "application/trickle-ice-sdpfrag" {
					t.Fatalf("WHEP Location %q, Accept-Patch %q", resp.Header.Get("Location"), resp.Header.Get("Accept-Patch"))
				}
				if l := resp.Header.Get("Link"); l != `<turn:127.0.0.1:3478?transport=udp>; rel="ice-server"; username="123:op"; credential="c"; credential-type="password"` {
					t.Fatalf("WHEP Link header %q", l)
				}
			}
			if c.name == "whep sub stream" && resp.Header.Get("Ronda-Stream") != "sub" {
				t.Fatalf("Ronda-Stream %q for a sub-stream session", resp.Header.Get("Ronda-Stream"))
			}
			if c.name == "whep b-frames warning" && !strings.Contains(resp.Header.Get("Ronda-Warning"), "B-frames") {
				t.Fatalf("no Ronda-Warning header for a camera with B-frames: %v", resp.Header)
			}
		})
	}
	actions := map[string]int{}
	for _, a := range *audits {
		actions[a.Action]++
	}
	if actions["login"] < 2 || actions["playback"] < 2 || actions["live"] < 2 || actions["export"] < 3 || actions["download-file"] < 1 || actions["hold"] < 5 || actions["release-hold 7"] != 1 {
		t.Fatalf("audit events %v: want logins, playbacks and live views recorded", actions)
	}
}

func TestHourly(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 11, 22, h, m, 0, 0, time.UTC) }
	spans := []Span{{Start: at(10, 0), End: at(10, 30)}, {Start: at(10, 45), End: at(11, 15)}}
	got := hourly(spans, at(10, 0), at(11, 30))
	if len(got) != 2 {
		t.Fatalf("%d hours", len(got))
	}
	if got[0].RecordedSeconds != 45*60 || got[0].ExpectedSeconds != 3600 || got[0].Ratio != 0.75 {
		t.Fatalf("hour 10: %+v", got[0])
	}
	if got[1].RecordedSeconds != 15*60 || got[1].ExpectedSeconds != 30*60 || got[1].Ratio != 0.5 {
		t.Fatalf("hour 11 (half inside the query): %+v", got[1])
	}
}
