package peer_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ronda-jakarta/ronda/hub/peer"
	"github.com/ronda-jakarta/ronda/hub/store"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// openMember starts a store and a gRPC server with the HubPeer service and
// returns the store and the gRPC address.
func openMember(t *testing.T, id string, peers func(self store.Peer) []store.Peer) (*store.Store, string) {
	t.Helper()
	self := store.Peer{ID: id, RaftAddr: freeAddr(t)}
	st, err := store.Open(store.Config{
		ID:                 id,
		RaftAddr:           self.RaftAddr,
		DataDir:            filepath.Join(t.TempDir(), id),
		Peers:              peers(self),
		Logger:             slog.New(slog.DiscardHandler),
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	rpcv1.RegisterHubPeerServer(gs, peer.NewServer(st))
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st, lis.Addr().String()
}

func TestForwarderAndServer(t *testing.T) {
	leader, leaderAddr := openMember(t, "solo", func(self store.Peer) []store.Peer { return []store.Peer{self} })
	// A member of a two-member cluster whose partner never starts: never a leader.
	_, lonelyAddr := openMember(t, "lonely", func(self store.Peer) []store.Peer {
		return []store.Peer{self, {ID: "ghost", RaftAddr: freeAddr(t)}}
	})
	deadAddr := freeAddr(t)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := leader.LeaderWait(ctx); err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{"solo": leaderAddr, "lonely": lonelyAddr, "dead": deadAddr}
	fwd := peer.NewForwarder(func(id string) (string, bool) { a, ok := addrs[id]; return a, ok }, nil)
	defer fwd.Close()

	cmd, err := store.EncodeNodeRecords(&rondav1.NodeRecords{NodeId: "n1", Records: []*rondav1.Record{
		{Seq: 7, Body: &rondav1.Record_Registration{Registration: &rondav1.NodeInfo{KelurahanCode: "K"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	eventuallyLeader(t, leader)
	index, result, err := fwd.Forward(ctx, "solo", "", cmd)
	if err != nil || index == 0 || result != 7 {
		t.Fatalf("Forward to leader: index %d result %d err %v", index, result, err)
	}
	if got := leader.AckedSeq("n1"); got != 7 {
		t.Fatalf("leader acked seq %d, want 7", got)
	}

	tests := []struct {
		name   string
		target string
		ctx    context.Context
		cmd    []byte
		want   error
	}{
		{"unknown command", "solo", ctx, []byte{0x55, 1}, store.ErrUnknownCommand},
		{"malformed command", "solo", ctx, []byte{byte(store.CommandNodeRecords), 0xff}, store.ErrBadCommand},
		{"not leader", "lonely", ctx, cmd, store.ErrNotLeader},
		{"unknown member", "nobody", ctx, cmd, store.ErrLeaderUnreachable},
		{"connection refused", "dead", ctx, cmd, store.ErrLeaderUnreachable},
		{"canceled", "solo", canceled(), cmd, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := fwd.Forward(tt.ctx, tt.target, "", tt.cmd)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Forward: %v, want %v", err, tt.want)
			}
			t.Logf("error reads: %v", err)
		})
	}

	// The server's own status codes, as seen by any gRPC client.
	conn, err := grpc.NewClient(lonelyAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = rpcv1.NewHubPeerClient(conn).Apply(ctx, &rondav1.ApplyRequest{Command: cmd})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("follower answered %v, want FailedPrecondition", err)
	}

	if err := fwd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fwd.Forward(ctx, "solo", "", cmd); !errors.Is(err, peer.ErrForwarderClosed) {
		t.Fatalf("Forward after Close: %v", err)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func eventuallyLeader(t *testing.T, st *store.Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !st.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("single member did not become leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
