//go:build e2e

package system_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/api"
)

// checkRevocation revokes a node's certificate at one hub member: every
// member cuts the node off within 10 s and refuses it while it retries;
// lifting the revocation lets it back.
func checkRevocation(t *testing.T, f *federation) {
	n := f.m.Nodes[1]
	hub := liveHub(t, f)
	nc := f.client(t, n.URL)
	body, _ := json.Marshal(api.RevocationRequest{NodeID: n.NodeID, Reason: "e2e: the node's disk was stolen"})
	var rev api.Revocation
	if _, err := hub.Do(ctx(t), "POST", "/api/v1/revocations", bytes.NewReader(body), "application/json", &rev); err != nil {
		t.Fatalf("revoke %s: %v", n.NodeID, err)
	}
	want := "spiffe://jakarta/kelurahan/" + n.Kelurahan + "/node/" + n.NodeID
	if rev.Identity != want || rev.By != f.m.Users[0].User {
		t.Fatalf("revocation %+v, want identity %s by %s", rev, want, f.m.Users[0].User)
	}
	revoked := time.Now()
	// Every member shows it cut off, and the node itself has no hub link.
	cutOff := func() error {
		for _, h := range f.m.Hubs {
			c := loginHub(f, h)
			if c == nil {
				return fmt.Errorf("member %s does not answer", h.Name)
			}
			nodes, err := c.Nodes(ctx(t))
			if err != nil {
				return err
			}
			for _, hn := range nodes {
				if hn.NodeID == n.NodeID && (hn.Online || hn.Status != "revoked" || len(hn.LinkedMembers) > 0) {
					return fmt.Errorf("%s shows %s %s (online %v, linked %v)", h.Name, n.NodeID, hn.Status, hn.Online, hn.LinkedMembers)
				}
			}
		}
		var cl struct {
			HubLinks []struct {
				Connected bool   `json:"connected"`
				LastError string `json:"last_error"`
			} `json:"hub_links"`
		}
		if _, err := nc.Do(ctx(t), "GET", "/api/v1/cluster", nil, "", &cl); err != nil {
			return err
		}
		for _, l := range cl.HubLinks {
			if l.Connected {
				return fmt.Errorf("node %s still has a hub link", n.NodeID)
			}
		}
		return nil
	}
	poll(t, 10*time.Second, n.NodeID+" cut off by every member within 10 s", cutOff)
	t.Logf("%s revoked: cut off by every member %.1f s after the revocation", n.NodeID, time.Since(revoked).Seconds())
	// It keeps trying (reconnect backoff) and keeps being refused.
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		if err := cutOff(); err != nil {
			t.Fatalf("%.0f s after the revocation: %v", time.Since(revoked).Seconds(), err)
		}
	}
	// The node says why it cannot connect, and what to do.
	var cl struct {
		HubLinks []struct {
			LastError string `json:"last_error"`
		} `json:"hub_links"`
	}
	if _, err := nc.Do(ctx(t), "GET", "/api/v1/cluster", nil, "", &cl); err != nil {
		t.Fatal(err)
	}
	explained := false
	for _, l := range cl.HubLinks {
		explained = explained || strings.Contains(l.LastError, "the hub refused this node's certificate")
	}
	if !explained {
		t.Fatalf("the node's hub links %+v do not say that its certificate was refused", cl.HubLinks)
	}
	// The deny-list lists it.
	var list struct {
		Revocations []api.Revocation `json:"revocations"`
	}
	if _, err := hub.Do(ctx(t), "GET", "/api/v1/revocations", nil, "", &list); err != nil || len(list.Revocations) != 1 || list.Revocations[0].Identity != want {
		t.Fatalf("revocations %+v (%v)", list, err)
	}
	// Lifted, the node comes back on its own.
	lift, _ := json.Marshal(api.RevocationRequest{NodeID: n.NodeID})
	if _, err := hub.Do(ctx(t), "DELETE", "/api/v1/revocations", bytes.NewReader(lift), "application/json", nil); err != nil {
		t.Fatalf("lift: %v", err)
	}
	back := poll(t, 60*time.Second, n.NodeID+" online again", func() error {
		nodes, err := hub.Nodes(ctx(t))
		if err != nil {
			return err
		}
		for _, hn := range nodes {
			if hn.NodeID == n.NodeID && hn.Online {
				return nil
			}
		}
		return fmt.Errorf("%s not online yet", n.NodeID)
	})
	t.Logf("revocation lifted: %s online again after %.1f s", n.NodeID, back.Seconds())
}
