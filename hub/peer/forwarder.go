package peer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ronda-jakarta/ronda/hub/store"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
)

// ErrForwarderClosed is returned by Forward after Close.
var ErrForwarderClosed = errors.New("hub/peer: forwarder is closed")

// Forwarder implements store.Forwarder over the HubPeer gRPC service. It keeps
// one client connection per leader gRPC address, created on first use.
type Forwarder struct {
	resolve func(memberID string) (grpcAddr string, ok bool)
	creds   credentials.TransportCredentials

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

var (
	_ store.Forwarder     = (*Forwarder)(nil)
	_ store.ReadForwarder = (*Forwarder)(nil)
)

// NewForwarder returns a Forwarder. resolve maps a raft member ID to the
// address of that member's gRPC server (raft and gRPC listen on different
// ports). creds secures the connections; nil means plaintext (tests only).
func NewForwarder(resolve func(memberID string) (grpcAddr string, ok bool), creds credentials.TransportCredentials) *Forwarder {
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	return &Forwarder{resolve: resolve, creds: creds, conns: make(map[string]*grpc.ClientConn)}
}

// Forward calls HubPeer.Apply on the leader. Errors wrap store.ErrNotLeader
// (the callee is not the leader), store.ErrLeaderUnreachable (no connection,
// callee shutting down), store.ErrUnknownCommand, store.ErrBadCommand, or the
// context's error.
func (f *Forwarder) Forward(ctx context.Context, leaderID, leaderRaftAddr string, command []byte) (index, result uint64, err error) {
	addr, ok := f.resolve(leaderID)
	if !ok {
		return 0, 0, fmt.Errorf("%w: no gRPC address configured for hub member %q (raft %s); check the hub member list",
			store.ErrLeaderUnreachable, leaderID, leaderRaftAddr)
	}
	conn, err := f.conn(addr)
	if err != nil {
		return 0, 0, err
	}
	resp, err := rpcv1.NewHubPeerClient(conn).Apply(ctx, &rondav1.ApplyRequest{Command: command})
	if err != nil {
		return 0, 0, mapError(ctx, leaderID, addr, err)
	}
	return resp.GetIndex(), resp.GetResult(), nil
}

// ReadIndex calls HubPeer.ReadIndex on the leader (store.ReadForwarder).
func (f *Forwarder) ReadIndex(ctx context.Context, leaderID, leaderRaftAddr string, linearizable bool) (uint64, error) {
	addr, ok := f.resolve(leaderID)
	if !ok {
		return 0, fmt.Errorf("%w: no gRPC address configured for hub member %q (raft %s); check the hub member list",
			store.ErrLeaderUnreachable, leaderID, leaderRaftAddr)
	}
	conn, err := f.conn(addr)
	if err != nil {
		return 0, err
	}
	resp, err := rpcv1.NewHubPeerClient(conn).ReadIndex(ctx, &rondav1.ReadIndexRequest{Linearizable: linearizable})
	if err != nil {
		return 0, mapError(ctx, leaderID, addr, err)
	}
	return resp.GetIndex(), nil
}

// MemberStats calls HubPeer.MemberStats on a member (store.MemberForwarder).
func (f *Forwarder) MemberStats(ctx context.Context, memberID, raftAddr string) (*rondav1.MemberStatsResponse, error) {
	addr, ok := f.resolve(memberID)
	if !ok {
		return nil, fmt.Errorf("no gRPC address known for hub member %q (raft %s)", memberID, raftAddr)
	}
	conn, err := f.conn(addr)
	if err != nil {
		return nil, err
	}
	resp, err := rpcv1.NewHubPeerClient(conn).MemberStats(ctx, &rondav1.MemberStatsRequest{})
	if err != nil {
		st, _ := status.FromError(err)
		return nil, fmt.Errorf("%s (%s): %s", memberID, addr, st.Message())
	}
	return resp, nil
}

// TransferLeadership calls HubPeer.TransferLeadership on the leader.
func (f *Forwarder) TransferLeadership(ctx context.Context, leaderID, leaderRaftAddr, to string) (string, error) {
	addr, ok := f.resolve(leaderID)
	if !ok {
		return "", fmt.Errorf("%w: no gRPC address known for hub member %q (raft %s)", store.ErrLeaderUnreachable, leaderID, leaderRaftAddr)
	}
	conn, err := f.conn(addr)
	if err != nil {
		return "", err
	}
	resp, err := rpcv1.NewHubPeerClient(conn).TransferLeadership(ctx, &rondav1.TransferLeadershipRequest{To: to})
	if err != nil {
		if st, _ := status.FromError(err); st.Code() == codes.InvalidArgument {
			return "", fmt.Errorf("%w: %s", store.ErrMembership, detail(st.Message(), store.ErrMembership))
		}
		return "", mapError(ctx, leaderID, addr, err)
	}
	return resp.GetNewLeader(), nil
}

// ReportLinks sends this member's links report to the leader and returns the
// leader's view of all members' links.
func (f *Forwarder) ReportLinks(ctx context.Context, leaderID string, r *rondav1.LinksReport) (*rondav1.LinksView, error) {
	conn, err := f.Member(leaderID)
	if err != nil {
		return nil, err
	}
	resp, err := rpcv1.NewHubPeerClient(conn).ReportLinks(ctx, &rondav1.ReportLinksRequest{Report: r})
	if err != nil {
		return nil, mapError(ctx, leaderID, "", err)
	}
	return resp.GetView(), nil
}

// Member returns the (shared) connection to a member's gRPC server.
func (f *Forwarder) Member(memberID string) (*grpc.ClientConn, error) {
	addr, ok := f.resolve(memberID)
	if !ok {
		return nil, fmt.Errorf("%w: no gRPC address known for hub member %q", store.ErrLeaderUnreachable, memberID)
	}
	return f.conn(addr)
}

func (f *Forwarder) conn(addr string) (*grpc.ClientConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrForwarderClosed
	}
	if c, ok := f.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(f.creds),
		// Hub members restart and regain leadership within seconds; gRPC's
		// default reconnect backoff (up to 120 s) would keep a returning
		// leader unreachable for far longer than the election took.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		}))
	if err != nil {
		return nil, fmt.Errorf("%w: gRPC client for %s: %v", store.ErrLeaderUnreachable, addr, err)
	}
	f.conns[addr] = c
	return c, nil
}

func mapError(ctx context.Context, id, addr string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("HubPeer.Apply on %s (%s): %w", id, addr, ctxErr)
	}
	st, _ := status.FromError(err)
	msg := st.Message()
	switch st.Code() {
	case codes.FailedPrecondition:
		return fmt.Errorf("%w: %s (%s) says: %s", store.ErrNotLeader, id, addr, detail(msg, store.ErrNotLeader))
	case codes.Unavailable, codes.Aborted, codes.ResourceExhausted:
		return fmt.Errorf("%w: %s (%s): %s", store.ErrLeaderUnreachable, id, addr, msg)
	case codes.DeadlineExceeded, codes.Canceled:
		// Not our context: the callee or the connection gave up.
		return fmt.Errorf("%w: %s (%s): %s", store.ErrLeaderUnreachable, id, addr, msg)
	case codes.Unimplemented:
		return fmt.Errorf("%w: leader %s (%s) rejected the command: %s", store.ErrUnknownCommand, id, addr, detail(msg, store.ErrUnknownCommand))
	case codes.InvalidArgument:
		return fmt.Errorf("%w: leader %s (%s) rejected the command: %s", store.ErrBadCommand, id, addr, detail(msg, store.ErrBadCommand))
	default:
		return fmt.Errorf("HubPeer.Apply on %s (%s) failed: %s: %s", id, addr, st.Code(), msg)
	}
}

// detail strips the sentinel's own text from a status message built by Server,
// since the returned error wraps the sentinel again.
func detail(msg string, sentinel error) string {
	d := strings.TrimPrefix(msg, sentinel.Error())
	d = strings.TrimLeft(d, ":; ")
	if d == "" {
		return msg
	}
	return d
}

// Close closes all connections. Forward fails with ErrForwarderClosed afterwards.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	var errs []error
	for addr, c := range f.conns {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection to %s: %w", addr, err))
		}
	}
	clear(f.conns)
	return errors.Join(errs...)
}
