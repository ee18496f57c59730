// Package peer carries hub-member-to-member traffic over gRPC: the HubPeer
// service (Server) through which followers hand commands to the leader, and
// the client side of it (Forwarder, a store.Forwarder).
//
// Errors cross the wire as gRPC status codes:
//
//	FailedPrecondition  the callee is not the leader (store.ErrNotLeader); retry
//	Unavailable         the callee is shutting down (store.ErrLeaderUnreachable); retry
//	Unimplemented       unknown command type (store.ErrUnknownCommand)
//	InvalidArgument     malformed command (store.ErrBadCommand)
//	DeadlineExceeded/Canceled  the caller's context
//
// FetchBlob (blobs.go) streams an evidence blob this member holds to
// another member copying it: NotFound (not stored here), OutOfRange (offset
// past its end), InvalidArgument (not a SHA-256).
package peer

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ronda-jakarta/ronda/hub/store"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
)

// Server implements rpcv1.HubPeerServer on top of a store. The caller
// registers it: rpcv1.RegisterHubPeerServer(grpcServer, srv).
type Server struct {
	rpcv1.UnimplementedHubPeerServer
	store *store.Store
	log   *slog.Logger
	links func(*rondav1.LinksReport) *rondav1.LinksView
	blobs BlobSource // FetchBlob's evidence store (blobs.go); nil: none
}

var _ rpcv1.HubPeerServer = (*Server)(nil)

// NewServer returns a HubPeer server for s. Logging goes to slog.Default();
// use WithLogger to change it.
func NewServer(s *store.Store) *Server {
	return &Server{store: s, log: slog.Default()}
}

// WithLogger sets the logger and returns srv.
func (srv *Server) WithLogger(l *slog.Logger) *Server {
	if l != nil {
		srv.log = l
	}
	return srv
}

// Apply commits a forwarded command if this member is the leader. It never
// forwards again: a follower answers FailedPrecondition naming the leader it
// knows of, and the calling member retries there.
func (srv *Server) Apply(ctx context.Context, req *rondav1.ApplyRequest) (*rondav1.ApplyResponse, error) {
	index, result, err := srv.store.ApplyLeader(ctx, req.GetCommand())
	if err != nil {
		st := statusFromStoreError(ctx, err)
		srv.log.Debug("HubPeer.Apply failed", "code", st.Code(), "error", err)
		return nil, st.Err()
	}
	return &rondav1.ApplyResponse{Index: index, Result: result}, nil
}

// ReadIndex answers a follower's read: the index it must have applied. Only
// the leader answers (FailedPrecondition otherwise, naming the leader).
func (srv *Server) ReadIndex(ctx context.Context, req *rondav1.ReadIndexRequest) (*rondav1.ReadIndexResponse, error) {
	index, err := srv.store.ReadIndexLeader(ctx, req.GetLinearizable())
	if err != nil {
		st := statusFromStoreError(ctx, err)
		srv.log.Debug("HubPeer.ReadIndex failed", "code", st.Code(), "error", err)
		return nil, st.Err()
	}
	return &rondav1.ReadIndexResponse{Index: index}, nil
}

// WithLinks sets what the leader does with a member's links report (keep it
// and answer with every member's) and returns srv.
func (srv *Server) WithLinks(fn func(*rondav1.LinksReport) *rondav1.LinksView) *Server {
	srv.links = fn
	return srv
}

// ReportLinks takes a member's heartbeat; only the leader answers.
func (srv *Server) ReportLinks(ctx context.Context, req *rondav1.ReportLinksRequest) (*rondav1.ReportLinksResponse, error) {
	if !srv.store.IsLeader() {
		return nil, status.New(codes.FailedPrecondition, store.ErrNotLeader.Error()).Err()
	}
	if srv.links == nil || req.GetReport() == nil {
		return nil, status.Error(codes.Unimplemented, "this member keeps no links book")
	}
	return &rondav1.ReportLinksResponse{View: srv.links(req.GetReport())}, nil
}

// MemberStats returns this member's own raft state.
func (srv *Server) MemberStats(ctx context.Context, _ *rondav1.MemberStatsRequest) (*rondav1.MemberStatsResponse, error) {
	return srv.store.LocalStats(), nil
}

// TransferLeadership hands leadership over; a follower forwards it to the
// leader (Store.TransferLeadership).
func (srv *Server) TransferLeadership(ctx context.Context, req *rondav1.TransferLeadershipRequest) (*rondav1.TransferLeadershipResponse, error) {
	if !srv.store.IsLeader() {
		return nil, status.New(codes.FailedPrecondition, store.ErrNotLeader.Error()).Err()
	}
	to, err := srv.store.TransferLeadership(ctx, req.GetTo())
	if err != nil {
		if errors.Is(err, store.ErrMembership) {
			return nil, status.New(codes.InvalidArgument, err.Error()).Err()
		}
		return nil, statusFromStoreError(ctx, err).Err()
	}
	return &rondav1.TransferLeadershipResponse{NewLeader: to}, nil
}

func statusFromStoreError(ctx context.Context, err error) *status.Status {
	switch {
	case errors.Is(err, store.ErrNotLeader):
		return status.New(codes.FailedPrecondition, err.Error())
	case errors.Is(err, store.ErrUnknownCommand):
		return status.New(codes.Unimplemented, err.Error())
	case errors.Is(err, store.ErrBadCommand):
		return status.New(codes.InvalidArgument, err.Error())
	case errors.Is(err, store.ErrClosed):
		return status.New(codes.Unavailable, "hub member is shutting down: "+err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err())
		}
		return status.FromContextError(err)
	default:
		return status.New(codes.Internal, err.Error())
	}
}
