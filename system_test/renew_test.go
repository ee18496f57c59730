//go:build e2e

package system_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

type nodeCluster struct {
	Certificate struct {
		Identity  string    `json:"identity"`
		Serial    string    `json:"serial"`
		NotAfter  time.Time `json:"not_after"`
		Renewals  int       `json:"renewals"`
		RenewedAt time.Time `json:"renewed_at"`
	} `json:"certificate"`
	HubLinks []struct {
		Address        string    `json:"address"`
		Connected      bool      `json:"connected"`
		ConnectedSince time.Time `json:"connected_since"`
	} `json:"hub_links"`
}

// checkRenewal: a node's short-lived certificate (the demo's last 10 min)
// is renewed over its live links, which stay up; new handshakes present the
// renewed certificate, and the hub audited the renewal.
func checkRenewal(t *testing.T, f *federation) {
	n := f.m.Nodes[len(f.m.Nodes)-1]
	nc := f.client(t, n.URL)
	var before nodeCluster
	if _, err := nc.Do(ctx(t), "GET", "/api/v1/cluster", nil, "", &before); err != nil {
		t.Fatal(err)
	}
	links := map[string]time.Time{}
	for _, l := range before.HubLinks {
		if l.Connected {
			links[l.Address] = l.ConnectedSince
		}
	}
	if len(links) == 0 {
		t.Fatalf("%s has no hub link up: %+v", n.NodeID, before.HubLinks)
	}
	start := time.Now()
	var after nodeCluster
	took := poll(t, 3*time.Minute, n.NodeID+" renews its certificate", func() error {
		if _, err := nc.Do(ctx(t), "GET", "/api/v1/cluster", nil, "", &after); err != nil {
			return err
		}
		if after.Certificate.Renewals <= before.Certificate.Renewals || !after.Certificate.RenewedAt.After(start) {
			return fmt.Errorf("renewals %d, last at %s", after.Certificate.Renewals, after.Certificate.RenewedAt)
		}
		return nil
	})
	c := after.Certificate
	if c.Serial == before.Certificate.Serial || time.Until(c.NotAfter) > 10*time.Minute || time.Until(c.NotAfter) < 8*time.Minute {
		t.Fatalf("renewed certificate: serial %s (was %s), valid until %s", c.Serial, before.Certificate.Serial, c.NotAfter)
	}
	for _, l := range after.HubLinks {
		if since, ok := links[l.Address]; ok && (!l.Connected || !l.ConnectedSince.Equal(since)) {
			t.Fatalf("the link to %s dropped during the renewal: up since %s, now connected=%v since %s", l.Address, since, l.Connected, l.ConnectedSince)
		}
	}
	// A new handshake with the node presents the renewed certificate.
	pem, _ := os.ReadFile(f.m.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	u, _ := url.Parse(n.URL)
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	presented := conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
	conn.Close()
	if presented != c.Serial {
		var now nodeCluster
		_, _ = nc.Do(ctx(t), "GET", "/api/v1/cluster", nil, "", &now)
		if presented != now.Certificate.Serial { // (it may have renewed again meanwhile)
			t.Fatalf("the node's HTTPS API presents %s, not the renewed %s", presented, now.Certificate.Serial)
		}
	}
	// The hub audited the renewal.
	hub := liveHub(t, f)
	poll(t, 30*time.Second, "the renewal in the hub's audit log", func() error {
		evs, err := hub.Audit(ctx(t), "hub", 0)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if strings.HasPrefix(e.Action, "cert-renew ") && strings.HasSuffix(e.Action, "/node/"+n.NodeID) && e.Outcome == "ok" {
				return nil
			}
		}
		return fmt.Errorf("no cert-renew of %s among %d events", n.NodeID, len(evs))
	})
	t.Logf("%s renewed its certificate over its live links %.1f s into the check (%d renewals so far; serial %s valid until %s); %d hub links stayed up throughout",
		n.NodeID, took.Seconds(), c.Renewals, c.Serial, c.NotAfter.Format(time.RFC3339), len(links))
}
