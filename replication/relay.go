package replication

import (
	"context"
	"errors"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	_ "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc" // registers the NodeControl descriptors
)

// RelayNodeHeader is the metadata key naming the node a relayed NodeControl
// call is for.
const RelayNodeHeader = "ronda-relay-node"

const nodeControlService = "ronda.v1.rpc.NodeControl"

// RelayConn returns a connection to another hub member on which NodeControl
// calls are relayed by that member over its own tunnel to nodeID: a member
// without the node's tunnel reaches the node through one that has it.
func RelayConn(member grpc.ClientConnInterface, nodeID string) grpc.ClientConnInterface {
	return relayConn{cc: member, node: nodeID}
}

type relayConn struct {
	cc   grpc.ClientConnInterface
	node string
}

func (r relayConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return r.cc.Invoke(metadata.AppendToOutgoingContext(ctx, RelayNodeHeader, r.node), method, args, reply, opts...)
}

func (r relayConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return r.cc.NewStream(metadata.AppendToOutgoingContext(ctx, RelayNodeHeader, r.node), desc, method, opts...)
}

// RelayHandler serves, as the gRPC server's unknown-service handler, the
// NodeControl calls other members relay through this one: each goes over
// this member's tunnel to the node named in RelayNodeHeader, message by
// message, whatever the method (the messages are decoded with the service's
// registered descriptors, so a method added to NodeControl is relayed
// without changes here). The server's interceptor admits only hub members.
func (s *HubServer) RelayHandler() grpc.StreamHandler {
	return func(_ any, ss grpc.ServerStream) error {
		full, _ := grpc.MethodFromServerStream(ss)
		svc, name, _ := strings.Cut(strings.TrimPrefix(full, "/"), "/")
		if svc != nodeControlService {
			return status.Errorf(codes.Unimplemented, "unknown method %s", full)
		}
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
		if err != nil {
			return status.Errorf(codes.Internal, "no descriptor for %s: %v", svc, err)
		}
		md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(name))
		if md == nil {
			return status.Errorf(codes.Unimplemented, "unknown method %s", full)
		}
		var node string
		if v := metadata.ValueFromIncomingContext(ss.Context(), RelayNodeHeader); len(v) == 1 {
			node = v[0]
		}
		if node == "" {
			return status.Errorf(codes.InvalidArgument, "relayed %s without the %s header naming the node", full, RelayNodeHeader)
		}
		if !s.Link(node).Connected {
			return status.Errorf(codes.Unavailable, "node %s has no tunnel to hub member %s (any more); ask another member", node, s.end.MemberID())
		}
		ctx, cancel := context.WithCancel(ss.Context())
		defer cancel()
		cs, err := s.tunnels.KeyAsChannel(node).NewStream(ctx, &grpc.StreamDesc{ServerStreams: md.IsStreamingServer(), ClientStreams: md.IsStreamingClient()}, full)
		if err != nil {
			return err
		}
		in, out := dynamicpb.NewMessageType(md.Input()), dynamicpb.NewMessageType(md.Output())
		for {
			m := in.New().Interface()
			if err := ss.RecvMsg(m); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return err
			}
			if err := cs.SendMsg(m); err != nil {
				break // the node ended the call; RecvMsg below says how
			}
		}
		if err := cs.CloseSend(); err != nil {
			return err
		}
		for {
			m := out.New().Interface()
			if err := cs.RecvMsg(m); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return err
			}
			if err := ss.SendMsg(m); err != nil {
				return err
			}
		}
	}
}
