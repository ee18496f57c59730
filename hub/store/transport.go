package store

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// raftAddr advertises the configured address verbatim, so it matches the
// address other members have in their raft configuration.
type raftAddr string

func (a raftAddr) Network() string { return "tcp" }
func (a raftAddr) String() string  { return string(a) }

// streamLayer is raft's StreamLayer over TCP, optionally with mutual TLS.
type streamLayer struct {
	net.Listener
	advertise raftAddr
	dialTLS   *tls.Config // nil: plain TCP
}

var _ raft.StreamLayer = (*streamLayer)(nil)

// listenRaft binds addr. With cfg non-nil, accepted connections must present a
// client certificate that verifies against cfg.ClientCAs, and dialled
// connections present cfg.Certificates and verify the server against cfg.RootCAs.
func listenRaft(addr string, cfg *tls.Config) (*streamLayer, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: RaftAddr %q: %v", ErrConfig, addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return nil, fmt.Errorf("%w: RaftAddr %q must name a concrete host: it is advertised to the other members", ErrConfig, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", addr, err)
	}
	sl := &streamLayer{Listener: ln, advertise: raftAddr(addr)}
	if cfg != nil {
		server := cfg.Clone()
		server.ClientAuth = tls.RequireAndVerifyClientCert
		if server.ClientCAs == nil {
			server.ClientCAs = cfg.RootCAs
		}
		sl.Listener = tls.NewListener(ln, server)
		sl.dialTLS = cfg.Clone()
	}
	return sl, nil
}

// Addr returns the advertised address.
func (s *streamLayer) Addr() net.Addr { return s.advertise }

// Dial implements raft.StreamLayer.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	d := &net.Dialer{Timeout: timeout}
	if s.dialTLS == nil {
		return d.Dial("tcp", string(address))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	td := &tls.Dialer{NetDialer: d, Config: s.dialTLS}
	conn, err := td.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("raft TLS dial %s: %w", address, err)
	}
	return conn, nil
}
