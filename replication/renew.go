package replication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ronda-jakarta/ronda/certs"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// CertRenewer is implemented by a hub member that signs node certificates
// (one with the issuing intermediate: hub.yaml enrollment.ca_dir).
type CertRenewer interface {
	RenewNode(ctx context.Context, id certs.Identity, csrPEM []byte) (certPEM []byte, notAfter time.Time, err error)
}

// Renew implements rpcv1.ReplicationServer: the identity is the caller's
// certificate's, whatever the request says.
func (s *HubServer) Renew(ctx context.Context, req *rondav1.RenewRequest) (*rondav1.RenewResponse, error) {
	id, ok := IdentityFrom(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no verified identity")
	}
	r, ok := s.end.(CertRenewer)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this hub member does not sign certificates; ask another member")
	}
	pemBytes, notAfter, err := r.RenewNode(ctx, id, req.GetCsrPem())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &rondav1.RenewResponse{CertPem: pemBytes, NotAfterUnix: notAfter.Unix()}, nil
}

// Renew asks the connected hub members in turn for a certificate for the
// new key's request, over the links already up.
func (c *NodeClient) Renew(ctx context.Context, csrPEM []byte) ([]byte, string, error) {
	c.mu.Lock()
	var addrs []string
	for a, m := range c.members {
		if m.client != nil {
			addrs = append(addrs, a)
		}
	}
	c.mu.Unlock()
	if len(addrs) == 0 {
		return nil, "", errors.New("no hub member connected; renewing when one is")
	}
	var errs []error
	for _, a := range addrs {
		c.mu.Lock()
		m := c.members[a]
		c.mu.Unlock()
		if m == nil || m.client == nil {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := m.client.Renew(rctx, &rondav1.RenewRequest{CsrPem: csrPEM})
		cancel()
		if err == nil {
			return resp.GetCertPem(), a, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", a, err))
	}
	return nil, "", errors.Join(errs...)
}
