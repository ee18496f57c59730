package replication

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ronda-jakarta/ronda/certs"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
)

// A revoked node certificate is cut off (its open connection closed) and
// cannot connect again; lifting the revocation lets it back.
func TestRevokedCertificateIsDisconnectedAndRefused(t *testing.T) {
	p := newPKI(t)
	hubB := p.hub("h1")
	nodeB := p.node("n1", "31.71.01.1001")
	other := p.node("n2", "31.71.01.1002")
	var mu sync.Mutex
	deny := map[string]string{}
	revoked := func(id string) (string, bool) { mu.Lock(); defer mu.Unlock(); r, ok := deny[id]; return r, ok }
	guard := NewGuardedCreds(credentials.NewTLS(hubB.ServerTLS(certs.KindNode, certs.KindHub)), revoked, slogDiscard())
	hs := NewHubServer(newFakeHub(), slogDiscard(), nil)
	g := grpc.NewServer(append(GRPCServerOptions(0), grpc.Creds(guard))...)
	hs.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	t.Cleanup(g.Stop)

	dial := func(b *certs.Bundle) rpcv1.ReplicationClient {
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(b.ClientTLS(certs.KindHub))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return rpcv1.NewReplicationClient(conn)
	}
	kel := map[string]string{"n1": "31.71.01.1001", "n2": "31.71.01.1002"}
	hello := func(c rpcv1.ReplicationClient, node string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.Hello(ctx, &rondav1.HelloRequest{Capability: CapabilityVersion, Node: &rondav1.NodeInfo{NodeId: node, KelurahanCode: kel[node]}})
		return err
	}
	n1, n2 := dial(nodeB), dial(other)
	if err := hello(n1, "n1"); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	if err := hello(n2, "n2"); err != nil {
		t.Fatalf("the other node: %v", err)
	}
	mu.Lock()
	deny[nodeB.Identity.URI()] = "stolen from the kelurahan office"
	mu.Unlock()
	if n := guard.CloseRevoked(); n != 1 {
		t.Fatalf("closed %d connections of the revoked node, want its 1", n)
	}
	if err := hello(n1, "n1"); err == nil {
		t.Fatal("the revoked node's call went through after its connection was closed")
	}
	if err := hello(dial(nodeB), "n1"); err == nil {
		t.Fatal("the revoked node connected again")
	}
	if err := hello(n2, "n2"); err != nil {
		t.Fatalf("the other node was disturbed: %v", err)
	}
	for _, id := range guard.Connected() {
		if id == nodeB.Identity.URI() {
			t.Fatal("the revoked node still has a connection")
		}
	}
	mu.Lock()
	delete(deny, nodeB.Identity.URI())
	mu.Unlock()
	if err := hello(dial(nodeB), "n1"); err != nil {
		t.Fatalf("after lifting the revocation: %v", err)
	}
}
