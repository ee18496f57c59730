package replication

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ronda-jakarta/ronda/api"
)

// codeTable maps API sentinel errors to gRPC codes for calls over the
// reverse tunnel, so an error a node returns reaches the hub's caller with
// the same meaning (404 stays 404) and the node's message.
var codeTable = []struct {
	err  error
	code codes.Code
}{
	{api.ErrBadRequest, codes.InvalidArgument},
	{api.ErrUnauthorized, codes.Unauthenticated},
	{api.ErrForbidden, codes.PermissionDenied},
	{api.ErrNotFound, codes.NotFound},
	{api.ErrUnavailable, codes.Unavailable},
	{api.ErrThrottled, codes.ResourceExhausted},
}

// ToStatus turns an API error into a gRPC status error.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, e := range codeTable {
		if errors.Is(err, e.err) {
			return status.Error(e.code, err.Error())
		}
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// FromStatus turns a gRPC error from a node back into an API error.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, e := range codeTable {
		if st.Code() == e.code {
			return fmt.Errorf("%w: %s", e.err, stripPrefix(st.Message(), e.err))
		}
	}
	if st.Code() == codes.DeadlineExceeded {
		return fmt.Errorf("%w: the node did not answer in time", api.ErrUnavailable)
	}
	return fmt.Errorf("node: %s", st.Message())
}

// stripPrefix removes a sentinel's text the node already put in front.
func stripPrefix(msg string, sentinel error) string {
	p := sentinel.Error() + ": "
	if len(msg) > len(p) && msg[:len(p)] == p {
		return msg[len(p):]
	}
	return msg
}
