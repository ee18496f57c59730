package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustIssue(t *testing.T, ca *CA, dir string, id Identity) *Bundle {
	t.Helper()
	if err := ca.Issue(dir, IssueOptions{Identity: id}); err != nil {
		t.Fatal(err)
	}
	b, err := LoadBundle(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile), filepath.Join(dir, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIssueAndIdentity(t *testing.T) {
	dir := t.TempDir()
	if err := InitCA(filepath.Join(dir, "ca"), "jakarta"); err != nil {
		t.Fatal(err)
	}
	if err := InitCA(filepath.Join(dir, "ca"), "jakarta"); !errors.Is(err, ErrCAExists) {
		t.Fatalf("second init: got %v, want ErrCAExists", err)
	}
	ca, err := LoadCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	hub := mustIssue(t, ca, filepath.Join(dir, "h1"), Identity{Kind: KindHub, Member: "h1"})
	if got := hub.Identity.URI(); got != "spiffe://jakarta/hub/h1" {
		t.Fatalf("hub identity %s", got)
	}
	node := mustIssue(t, ca, filepath.Join(dir, "n1"), Identity{Kind: KindNode, Kelurahan: "31.71.01.1001", NodeID: "n1"})
	if got := node.Identity.URI(); got != "spiffe://jakarta/kelurahan/31.71.01.1001/node/n1" {
		t.Fatalf("node identity %s", got)
	}
	if err := ca.Issue(filepath.Join(dir, "bad"), IssueOptions{Identity: Identity{Kind: KindNode, Kelurahan: "3171", NodeID: "n1"}}); !errors.Is(err, ErrBadName) {
		t.Fatalf("bad kelurahan: got %v", err)
	}
}

// handshake runs a TLS handshake between server and client configs over a pipe.
func handshake(server, client *tls.Config) (serverErr, clientErr error, peer Identity) {
	a, b := net.Pipe()
	done := make(chan error, 1)
	var id Identity
	go func() {
		s := tls.Server(a, server)
		err := s.Handshake()
		if err == nil {
			id, err = PeerIdentity(s.ConnectionState())
		}
		a.Close()
		done <- err
	}()
	c := tls.Client(b, client)
	clientErr = c.Handshake()
	b.Close()
	serverErr = <-done
	return serverErr, clientErr, id
}

func TestMutualTLSKinds(t *testing.T) {
	dir := t.TempDir()
	if err := InitCA(filepath.Join(dir, "ca"), "jakarta"); err != nil {
		t.Fatal(err)
	}
	ca, _ := LoadCA(filepath.Join(dir, "ca"))
	hub := mustIssue(t, ca, filepath.Join(dir, "h1"), Identity{Kind: KindHub, Member: "h1"})
	hub2 := mustIssue(t, ca, filepath.Join(dir, "h2"), Identity{Kind: KindHub, Member: "h2"})
	node := mustIssue(t, ca, filepath.Join(dir, "n1"), Identity{Kind: KindNode, Kelurahan: "31.71.01.1001", NodeID: "n1"})

	// A node dials a hub that accepts nodes: works, and the hub sees the node's identity.
	se, ce, id := handshake(hub.ServerTLS(KindNode), node.ClientTLS(KindHub))
	if se != nil || ce != nil {
		t.Fatalf("node->hub: server %v client %v", se, ce)
	}
	if id.Kind != KindNode || id.Kelurahan != "31.71.01.1001" || id.NodeID != "n1" {
		t.Fatalf("peer identity %+v", id)
	}
	// A node certificate presented as a hub member to the Raft/peer link is refused.
	se, _, _ = handshake(hub.ServerTLS(KindHub), node.ClientTLS(KindHub))
	if se == nil || !strings.Contains(se.Error(), "wrong kind") {
		t.Fatalf("node as hub peer: server err %v, want wrong kind", se)
	}
	// A node serving (pretending to be a hub) is refused by a node-side client.
	_, ce, _ = handshake(node.ServerTLS(KindNode), node.ClientTLS(KindHub))
	if ce == nil {
		t.Fatal("node posing as hub was accepted by the client")
	}
	// Hub to hub works.
	se, ce, _ = handshake(hub.ServerTLS(KindHub), hub2.ClientTLS(KindHub))
	if se != nil || ce != nil {
		t.Fatalf("hub->hub: %v %v", se, ce)
	}
	// A certificate from another CA is refused.
	if err := InitCA(filepath.Join(dir, "evil"), "jakarta"); err != nil {
		t.Fatal(err)
	}
	evil, _ := LoadCA(filepath.Join(dir, "evil"))
	rogue := mustIssue(t, evil, filepath.Join(dir, "rogue"), Identity{Kind: KindNode, Kelurahan: "31.71.01.1001", NodeID: "n1"})
	se, _, _ = handshake(hub.ServerTLS(KindNode), rogue.ClientTLS(KindHub))
	if se == nil {
		t.Fatal("certificate of a foreign CA accepted")
	}
}

// Enrollment: the node's key never leaves it; the CA decides the identity,
// whatever the request asks for; a tampered request is refused.
func TestEnrollmentSignsTheNodesOwnKey(t *testing.T) {
	dir := t.TempDir()
	if err := InitCA(filepath.Join(dir, "ca"), "jakarta"); err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	node := filepath.Join(dir, "node")
	csr, err := NewKeyAndCSR(node)
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{Kind: KindNode, Kelurahan: "31.71.01.1001", NodeID: "n9"}
	certPEM, err := ca.SignCSR(csr, IssueOptions{Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	b, err := WriteEnrolled(node, certPEM, pemOf(ca))
	if err != nil {
		t.Fatalf("the signed certificate does not go with the node's key: %v", err)
	}
	if b.Identity.URI() != "spiffe://jakarta/kelurahan/31.71.01.1001/node/n9" {
		t.Fatalf("identity %s", b.Identity)
	}
	// A request whose signature does not verify (tampered) is refused.
	bad := []byte(strings.Replace(string(csr), string(csr[len(csr)-40:len(csr)-30]), "AAAAAAAAAA", 1))
	if _, err := ca.SignCSR(bad, IssueOptions{Identity: id}); err == nil {
		t.Fatal("a tampered certificate request was signed")
	}
	if _, err := ca.SignCSR([]byte("hello"), IssueOptions{Identity: id}); !errors.Is(err, ErrBadName) {
		t.Fatalf("not a CSR: %v", err)
	}
	// A malformed identity is refused.
	if _, err := ca.SignCSR(csr, IssueOptions{Identity: Identity{Kind: KindNode, Kelurahan: "x", NodeID: "n9"}}); !errors.Is(err, ErrBadName) {
		t.Fatalf("bad kelurahan: %v", err)
	}
}

func pemOf(ca *CA) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// The root stays offline: leaves are issued by the online intermediate, and
// a CA directory without the root's key still issues; peers verify the
// chain up to the root alone.
func TestLeavesComeFromTheOnlineIntermediate(t *testing.T) {
	dir := t.TempDir()
	if err := InitCA(filepath.Join(dir, "ca"), "jakarta"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "ca", CAKeyFile)); err != nil { // taken offline
		t.Fatal(err)
	}
	ca, err := LoadCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatalf("issuing without the root key: %v", err)
	}
	b := mustIssue(t, ca, filepath.Join(dir, "n1"), Identity{Kind: KindNode, Kelurahan: "31.71.01.1001", NodeID: "n1"})
	if len(b.Current().Certificate) != 2 {
		t.Fatalf("cert.pem holds %d certificates, want the leaf and the intermediate", len(b.Current().Certificate))
	}
	issuer, err := x509.ParseCertificate(b.Current().Certificate[1])
	if err != nil || issuer.Subject.CommonName != "Ronda online issuing CA jakarta" || !issuer.IsCA || !issuer.MaxPathLenZero {
		t.Fatalf("issuer %v (%v): want the online intermediate, unable to make further CAs", issuer.Subject, err)
	}
	if b.Current().Leaf.Issuer.CommonName != issuer.Subject.CommonName {
		t.Fatalf("leaf issued by %q", b.Current().Leaf.Issuer.CommonName)
	}
}
