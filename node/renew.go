package node

import (
	"context"
	"sync"
	"time"

	"github.com/ronda-jakarta/ronda/certs"
)

// renewCheckEvery is how often the node looks at its certificate's expiry.
const renewCheckEvery = 5 * time.Second

// certStatus is what the node tells about its certificate.
type certStatus struct {
	mu        sync.Mutex
	renewals  int
	renewedAt time.Time
	lastError string
}

// renewCerts renews the node's certificate over its hub link when it is
// due (tls.renew_before, default a third of its lifetime): a new key, the
// hub signs it for the same identity, the files are replaced and the pair
// is swapped into every TLS configuration — the hub links, the HTTPS API
// and the RTSPS re-stream keep their open connections; new ones use it.
func (n *Node) renewCerts(ctx context.Context) {
	t := time.NewTicker(renewCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		leaf := n.bundle.Current().Leaf
		if !certs.RenewDue(leaf, n.cfg.TLS.RenewBefore, time.Now()) {
			continue
		}
		err := n.renewOnce(ctx)
		n.certs.mu.Lock()
		if err != nil {
			n.certs.lastError = err.Error()
		} else {
			n.certs.lastError, n.certs.renewals, n.certs.renewedAt = "", n.certs.renewals+1, time.Now()
		}
		n.certs.mu.Unlock()
		if err != nil {
			level := n.log.Warn
			if time.Until(leaf.NotAfter) < 0 {
				level = n.log.Error
			}
			level("certificate renewal failed; retrying", "not_after", leaf.NotAfter, "err", err)
		}
	}
}

func (n *Node) renewOnce(ctx context.Context) error {
	key, csr, err := certs.NewKeyCSR()
	if err != nil {
		return err
	}
	certPEM, member, err := n.client.Renew(ctx, csr)
	if err != nil {
		return err
	}
	pair, err := certs.WriteRenewed(n.cfg.TLS.Cert, n.cfg.TLS.Key, certPEM, key)
	if err != nil {
		return err
	}
	if err := n.bundle.Swap(pair); err != nil {
		return err
	}
	n.log.Info("certificate renewed over the hub link", "member", member, "serial", pair.Leaf.SerialNumber.Text(16), "not_after", pair.Leaf.NotAfter)
	return nil
}

// certInfo is the certificate's state for GET /api/v1/cluster.
func (n *Node) certInfo() map[string]any {
	leaf := n.bundle.Current().Leaf
	n.certs.mu.Lock()
	defer n.certs.mu.Unlock()
	out := map[string]any{"identity": n.bundle.Identity.URI(), "serial": leaf.SerialNumber.Text(16),
		"not_before": leaf.NotBefore.UTC(), "not_after": leaf.NotAfter.UTC(), "renewals": n.certs.renewals}
	if !n.certs.renewedAt.IsZero() {
		out["renewed_at"] = n.certs.renewedAt.UTC()
	}
	if n.certs.lastError != "" {
		out["renewal_error"] = n.certs.lastError
	}
	return out
}
