package replication

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/ronda-jakarta/ronda/certs"
)

type identityKey struct{}

// IdentityFrom returns the verified peer identity the interceptors stored.
func IdentityFrom(ctx context.Context) (certs.Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(certs.Identity)
	return id, ok
}

// kindFor says which identity kind may call a full gRPC method on a hub member.
func kindFor(fullMethod string) string {
	switch {
	case strings.HasPrefix(fullMethod, "/ronda.v1.rpc.HubPeer/"),
		strings.HasPrefix(fullMethod, "/ronda.v1.rpc.NodeControl/"): // relayed to a node by another member
		return certs.KindHub
	case strings.HasPrefix(fullMethod, "/ronda.v1.rpc.Replication/"),
		strings.HasPrefix(fullMethod, "/grpctunnel.v1.TunnelService/"):
		return certs.KindNode
	}
	return ""
}

func authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "connection is not mutual TLS; configure the city CA certificates")
	}
	id, err := certs.PeerIdentity(ti.State)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	want := kindFor(fullMethod)
	if want == "" || id.Kind != want {
		return nil, status.Error(codes.PermissionDenied, fmt.Sprintf("%s may not call %s", id, fullMethod))
	}
	return context.WithValue(ctx, identityKey{}, id), nil
}

// ServerOptions returns the interceptors a hub member's gRPC server uses to
// authorise every call by the caller's certificate identity: nodes may call
// Replication and open tunnels, hub members may call HubPeer, nobody else
// anything.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ctx, err := authorize(ctx, info.FullMethod)
			if err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ctx, err := authorize(ss.Context(), info.FullMethod)
			if err != nil {
				return err
			}
			return h(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
		}),
	}
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }
