//go:build e2e

package system_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/demo"
)

// demoUsers waits for demo.json to list the users the demo creates (one of
// each role) and returns them by role.
func demoUsers(t *testing.T, f *federation) map[string]demo.UserEntry {
	t.Helper()
	byRole := map[string]demo.UserEntry{}
	poll(t, 60*time.Second, "demo.json lists one user of each role", func() error {
		raw, err := os.ReadFile(filepath.Join(f.dir, "demo.json"))
		if err != nil {
			return err
		}
		var m demo.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		for _, u := range m.Users {
			byRole[u.Role] = u
		}
		for _, r := range auth.Roles {
			if _, ok := byRole[r]; !ok {
				return fmt.Errorf("no %s yet in %d users", r, len(m.Users))
			}
		}
		return nil
	})
	return byRole
}

func asUser(t *testing.T, f *federation, base string, u demo.UserEntry) *demo.Client {
	t.Helper()
	c, err := demo.NewClient(base, f.m.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx(t), u.User, u.Password); err != nil {
		t.Fatalf("%s logs in at %s: %v", u.User, base, err)
	}
	return c
}

func withToken(t *testing.T, f *federation, base, token string) *demo.Client {
	t.Helper()
	c, err := demo.NewClient(base, f.m.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	c.Token = token
	return c
}

func wantStatus(t *testing.T, what string, err error, status int) {
	t.Helper()
	var ae *demo.APIError
	if status == 200 {
		if err != nil {
			t.Fatalf("%s: %v, want allowed", what, err)
		}
		return
	}
	if !errors.As(err, &ae) || ae.Status != status {
		t.Fatalf("%s: %v, want %d", what, err, status)
	}
}

// deniedIn waits for a refusal of user on camera in an audit log.
func deniedIn(t *testing.T, c *demo.Client, node, user, camera string) api.AuditRecord {
	t.Helper()
	var found api.AuditRecord
	poll(t, 30*time.Second, "the refusal of "+user+" for "+camera+" in the audit log of "+node, func() error {
		evs, err := c.Audit(ctx(t), node, 0)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if e.User == user && e.CameraID == camera && strings.HasPrefix(e.Outcome, "denied") {
				found = e
				return nil
			}
		}
		return fmt.Errorf("not among %d events", len(evs))
	})
	return found
}

// checkRoles: the demo's users of every role; an RT/RW viewer of kelurahan
// A is refused kelurahan B's camera at the hub, at its own node (with the
// hub's token, verified offline, and after an offline login from the
// node's signed user list) and at B's node, and every refusal is in the
// audit log; an auditor must give a reason; logging out at the hub voids
// the viewer's tokens at the node too.
func checkRoles(t *testing.T, f *federation) {
	m := f.m
	users := demoUsers(t, f)
	rtrw := users[auth.RoleViewer]
	var nodeA, nodeB demo.NodeEntry
	for _, n := range m.Nodes {
		if n.Kelurahan == rtrw.Kelurahan {
			nodeA = n
		} else if nodeB.NodeID == "" {
			nodeB = n
		}
	}
	var camB string
	for _, c := range m.Cameras {
		if c.Kelurahan == nodeB.Kelurahan {
			camB = c.ID
			break
		}
	}
	own := rtrw.Scope.Cameras[0]
	t.Logf("viewer %s of %s (%s) may watch %s; the other kelurahan's camera is %s at %s", rtrw.User, nodeA.Name, nodeA.NodeID, own, camB, nodeB.NodeID)

	// `ronda users list` shows every user with role and scope.
	bin := binary(t, repoRoot(t))
	out, err := exec.Command(bin, "users", "list", "--demo", f.dir).CombinedOutput()
	if err != nil {
		t.Fatalf("ronda users list: %v\n%s", err, out)
	}
	for _, u := range users {
		if !strings.Contains(string(out), u.User) || !strings.Contains(string(out), u.Role) {
			t.Fatalf("ronda users list does not show %s (%s):\n%s", u.User, u.Role, out)
		}
	}
	if !strings.Contains(string(out), own) || !strings.Contains(string(out), users[auth.RoleAreaOperator].Scope.Areas[0]) {
		t.Fatalf("ronda users list does not show the scopes:\n%s", out)
	}

	// At the hub.
	hubV := asUser(t, f, m.Hubs[0].URL, rtrw)
	cams, err := hubV.Cameras(ctx(t))
	if err != nil || len(cams) != 1 || cams[0].ID != own {
		t.Fatalf("the viewer's camera list at the hub: %v %+v, want only %s", err, cams, own)
	}
	_, err = hubV.Do(ctx(t), "GET", "/api/v1/cameras/"+camB, nil, "", nil)
	wantStatus(t, "viewer, other kelurahan's camera at the hub", err, 403)
	_, err = hubV.Media(ctx(t), camB, time.Now().Add(-2*time.Minute), time.Now().Add(-time.Minute))
	wantStatus(t, "viewer, other kelurahan's playback at the hub", err, 403)
	_, err = hubV.Do(ctx(t), "GET", "/api/v1/cameras/"+own+"/recordings?from="+url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339))+"&to="+url.QueryEscape(time.Now().Format(time.RFC3339)), nil, "", nil)
	wantStatus(t, "viewer, own camera's timeline at the hub", err, 200)
	_, err = hubV.Do(ctx(t), "GET", "/api/v1/cluster/members", nil, "", nil)
	wantStatus(t, "viewer, cluster members", err, 403)
	admin := liveHub(t, f)
	e := deniedIn(t, admin, "hub", rtrw.User, camB)
	t.Logf("hub audit: #%d %s %s %s %s", e.Seq, e.User, e.Action, e.CameraID, e.Outcome)

	// At the viewer's own node, with the hub's token (verified offline
	// with the hub's key the node learnt over its link).
	nodeAWithHubToken := withToken(t, f, nodeA.URL, hubV.Token)
	poll(t, 30*time.Second, "the hub's token works at "+nodeA.NodeID, func() error {
		_, err := nodeAWithHubToken.Do(ctx(t), "GET", "/api/v1/me", nil, "", nil)
		return err
	})
	_, err = nodeAWithHubToken.Do(ctx(t), "GET", "/api/v1/cameras/"+camB, nil, "", nil)
	wantStatus(t, "viewer (hub token), other kelurahan's camera at the own node", err, 403)
	cams, err = nodeAWithHubToken.Cameras(ctx(t))
	if err != nil || len(cams) != 1 || cams[0].ID != own {
		t.Fatalf("the viewer's cameras at the own node: %v %+v", err, cams)
	}
	// At B's node, where the camera is.
	nodeBWithHubToken := withToken(t, f, nodeB.URL, hubV.Token)
	_, err = nodeBWithHubToken.Do(ctx(t), "GET", "/api/v1/cameras/"+camB, nil, "", nil)
	wantStatus(t, "viewer (hub token), other kelurahan's camera at its node", err, 403)

	// Offline login at the own node from the signed user list.
	var nodeV *demo.Client
	poll(t, 30*time.Second, rtrw.User+" logs in at "+nodeA.NodeID+" from its signed user list", func() error {
		c, err := demo.NewClient(nodeA.URL, m.CAFile)
		if err != nil {
			return err
		}
		if err := c.Login(ctx(t), rtrw.User, rtrw.Password); err != nil {
			return err
		}
		nodeV = c
		return nil
	})
	_, err = nodeV.Media(ctx(t), camB, time.Now().Add(-2*time.Minute), time.Now().Add(-time.Minute))
	wantStatus(t, "viewer (node login), other kelurahan's playback at the own node", err, 403)
	// A city-wide account's password hash is not on the node.
	anon, _ := demo.NewClient(nodeA.URL, m.CAFile)
	wantStatus(t, "the auditor logging in at a node", anon.Login(ctx(t), users[auth.RoleAuditor].User, users[auth.RoleAuditor].Password), 401)

	nodeAAdmin := f.client(t, nodeA.URL)
	e = deniedIn(t, nodeAAdmin, "", rtrw.User, camB)
	t.Logf("%s audit: #%d %s %s %s %s", nodeA.NodeID, e.Seq, e.User, e.Action, e.CameraID, e.Outcome)
	e = deniedIn(t, admin, nodeA.NodeID, rtrw.User, camB)
	t.Logf("hub's copy of %s's audit: #%d %s", nodeA.NodeID, e.Seq, e.Outcome)
	deniedIn(t, f.client(t, nodeB.URL), "", rtrw.User, camB)

	// The auditor: a reason for every playback.
	aud := asUser(t, f, m.Hubs[1].URL, users[auth.RoleAuditor])
	from, to := time.Now().Add(-90*time.Second), time.Now().Add(-30*time.Second)
	_, err = aud.Media(ctx(t), m.Cameras[0].ID, from, to)
	wantStatus(t, "auditor playback without a reason", err, 403)
	// (Run alone, the demo may not have recorded that minute yet.)
	poll(t, 90*time.Second, "the auditor's playback with a reason", func() error {
		from, to = time.Now().Add(-12*time.Second), time.Now().Add(-6*time.Second)
		_, err := aud.Do(ctx(t), "GET", "/api/v1/cameras/"+m.Cameras[0].ID+"/media.mp4?from="+url.QueryEscape(from.Format(time.RFC3339))+
			"&to="+url.QueryEscape(to.Format(time.RFC3339))+"&reason=JAKI-2026-0042", nil, "", nil)
		var ae *demo.APIError
		if errors.As(err, &ae) && ae.Status == 403 {
			t.Fatalf("auditor playback with a reason refused: %v", err)
		}
		return err
	})
	// The area operator: its kecamatan's camera recorded, not B's.
	op := asUser(t, f, m.Hubs[2].URL, users[auth.RoleAreaOperator])
	_, err = op.Media(ctx(t), own, from, to)
	wantStatus(t, "area operator, own kecamatan's playback", err, 200)
	_, err = op.Media(ctx(t), camB, from, to)
	wantStatus(t, "area operator, other kota's playback", err, 403)

	// Logout at the hub voids the viewer's hub token everywhere and its
	// node token with the node's next user list.
	if _, err := hubV.Do(ctx(t), "POST", "/api/v1/logout", nil, "", nil); err != nil {
		t.Fatal(err)
	}
	loggedOut := time.Now()
	_, err = hubV.Do(ctx(t), "GET", "/api/v1/me", nil, "", nil)
	wantStatus(t, "the hub token after logout, at the hub", err, 401)
	took := poll(t, 30*time.Second, "the viewer's tokens refused at "+nodeA.NodeID+" after logout at the hub", func() error {
		for name, c := range map[string]*demo.Client{"hub token": nodeAWithHubToken, "node token": nodeV} {
			_, err := c.Do(ctx(t), "GET", "/api/v1/me", nil, "", nil)
			var ae *demo.APIError
			if !errors.As(err, &ae) || ae.Status != 401 {
				return fmt.Errorf("%s still accepted: %v", name, err)
			}
		}
		return nil
	})
	t.Logf("logout at the hub reached %s in %s (%s after the call)", nodeA.NodeID, took.Round(10*time.Millisecond), time.Since(loggedOut).Round(10*time.Millisecond))
}
