package certs

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A renewed certificate is stored, swapped in while a mutually
// authenticated connection made with the old one keeps working, and used
// by the next handshake.
func TestRenewalSwapsWithoutDroppingConnections(t *testing.T) {
	dir := t.TempDir()
	if err := InitCA(filepath.Join(dir, "ca"), "jakarta"); err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	hub := mustIssue(t, ca, filepath.Join(dir, "h1"), Identity{Kind: KindHub, Member: "h1"})
	nodeID := Identity{Kind: KindNode, Kelurahan: "31.71.01.1001", NodeID: "n1"}
	ndir := filepath.Join(dir, "n1")
	if err := ca.Issue(ndir, IssueOptions{Identity: nodeID, Validity: 3 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(ndir, CertFile), filepath.Join(ndir, KeyFile)
	node, err := LoadBundle(certFile, keyFile, filepath.Join(ndir, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	old := node.Current().Leaf
	if RenewDue(old, 0, time.Now()) || !RenewDue(old, 0, time.Now().Add(2*time.Minute+10*time.Second)) {
		t.Fatal("a 3-minute certificate is due for renewal in its last minute, not before")
	}

	// A server that echoes and says which client serial it saw.
	lis, err := tls.Listen("tcp", "127.0.0.1:0", hub.ServerTLS(KindNode))
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	serials := make(chan string, 4)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				tc := c.(*tls.Conn)
				if tc.Handshake() == nil {
					serials <- tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
				}
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	dial := func() *tls.Conn {
		c, err := tls.Dial("tcp", lis.Addr().String(), node.ClientTLS(KindHub))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	echo := func(c net.Conn) {
		t.Helper()
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo: %v %q", err, buf)
		}
	}
	c1 := dial()
	defer c1.Close()
	echo(c1)
	if s := <-serials; s != old.SerialNumber.String() {
		t.Fatalf("first connection presented %s", s)
	}

	key, csr, err := NewKeyCSR()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignCSR(csr, IssueOptions{Identity: nodeID, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := WriteRenewed(certFile, keyFile, certPEM, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Swap(pair); err != nil {
		t.Fatal(err)
	}
	echo(c1) // the open connection keeps going
	c2 := dial()
	defer c2.Close()
	echo(c2)
	newSerial := node.Current().Leaf.SerialNumber.String()
	if s := <-serials; s != newSerial || s == old.SerialNumber.String() {
		t.Fatalf("second connection presented %s, want the renewed %s", s, newSerial)
	}
	// The files hold the new pair (a restart uses it).
	again, err := LoadBundle(certFile, keyFile, filepath.Join(ndir, CAFile))
	if err != nil || again.Current().Leaf.SerialNumber.String() != newSerial {
		t.Fatalf("reloaded: %v", err)
	}
	// Another identity's certificate is never swapped in.
	other := mustIssue(t, ca, filepath.Join(dir, "n2"), Identity{Kind: KindNode, Kelurahan: "31.71.01.1001", NodeID: "n2"})
	if err := node.Swap(*other.Current()); err == nil {
		t.Fatal("swapped in another node's certificate")
	}
}

// A crash between the two renames leaves a new key with the old
// certificate; RecoverRenewal finishes the renewal.
func TestRecoverRenewal(t *testing.T) {
	dir := t.TempDir()
	_ = InitCA(filepath.Join(dir, "ca"), "jakarta")
	ca, _ := LoadCA(filepath.Join(dir, "ca"))
	id := Identity{Kind: KindNode, Kelurahan: "31.71.01.1001", NodeID: "n1"}
	ndir := filepath.Join(dir, "n1")
	_ = ca.Issue(ndir, IssueOptions{Identity: id})
	certFile, keyFile, caFile := filepath.Join(ndir, CertFile), filepath.Join(ndir, KeyFile), filepath.Join(ndir, CAFile)
	key, csr, _ := NewKeyCSR()
	certPEM, _ := ca.SignCSR(csr, IssueOptions{Identity: id})
	// Write as WriteRenewed does, then "crash" after renaming the key.
	if _, err := WriteRenewed(certFile+".x", keyFile+".x", certPEM, key); err != nil {
		t.Fatal(err)
	}
	_ = os.Rename(keyFile+".x", keyFile)
	_ = os.Rename(certFile+".x", certFile+".new")
	if _, err := LoadBundle(certFile, keyFile, caFile); err == nil {
		t.Fatal("the half-renewed pair loaded")
	}
	if err := RecoverRenewal(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBundle(certFile, keyFile, caFile); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}
