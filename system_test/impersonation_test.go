//go:build e2e

package system_test

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/ronda-jakarta/ronda/certs"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
)

// checkNodePosingAsHub: a node's certificate (say, from a stolen node)
// presented to a hub member as if it were a member is refused on the Raft
// port (TLS handshake) and on the member-to-member gRPC service.
func checkNodePosingAsHub(t *testing.T, f *federation) {
	n := f.m.Nodes[0]
	dir := filepath.Join(f.dir, n.NodeID, "tls")
	b, err := certs.LoadBundle(filepath.Join(dir, certs.CertFile), filepath.Join(dir, certs.KeyFile), filepath.Join(dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	h := f.m.Hubs[0]
	// Raft: the member's TLS refuses the handshake.
	cfg := b.ClientTLS(certs.KindHub)
	cfg.ServerName = "127.0.0.1"
	cfg.NextProtos = nil
	conn, err := tls.Dial("tcp", h.Raft, cfg)
	if err == nil {
		// TLS 1.3: the server's verdict on our certificate arrives with the first read.
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("a node certificate on %s's Raft port: %v, want the handshake refused", h.Name, err)
	}
	t.Logf("Raft port of %s refused node %s's certificate: %v", h.Name, n.NodeID, err)
	// The member-to-member gRPC service: PermissionDenied.
	gc, err := grpc.NewClient(h.GRPC, grpc.WithTransportCredentials(credentials.NewTLS(b.ClientTLS(certs.KindHub))))
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = rpcv1.NewHubPeerClient(gc).MemberStats(ctx, &rondav1.MemberStatsRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("HubPeer.MemberStats with a node certificate: %v, want PermissionDenied", err)
	}
	t.Logf("HubPeer service refused node %s: %v", n.NodeID, status.Convert(err).Message())
}
