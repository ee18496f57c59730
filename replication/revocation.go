package replication

import (
	"fmt"
	"log/slog"
	"net"
	"sync"

	"google.golang.org/grpc/credentials"

	"github.com/ronda-jakarta/ronda/certs"
)

// RevokedFunc tells whether a certificate identity (its SPIFFE URI) is
// revoked, and why.
type RevokedFunc func(identity string) (reason string, revoked bool)

// GuardedCreds wraps a hub member's server TLS credentials: a peer whose
// certificate identity is revoked is refused right after the handshake, and
// the connections of identities revoked later are closed by CloseRevoked
// (a member calls it every second), so a revoked node is cut off within
// seconds and cannot reconnect.
type GuardedCreds struct {
	credentials.TransportCredentials
	state *guardState
}

type guardState struct {
	revoked RevokedFunc
	log     *slog.Logger
	mu      sync.Mutex
	conns   map[string]map[*guardedConn]struct{} // by identity URI
}

// NewGuardedCreds wraps inner (mutual TLS server credentials).
func NewGuardedCreds(inner credentials.TransportCredentials, revoked RevokedFunc, log *slog.Logger) *GuardedCreds {
	return &GuardedCreds{TransportCredentials: inner, state: &guardState{revoked: revoked, log: log, conns: map[string]map[*guardedConn]struct{}{}}}
}

// ServerHandshake implements credentials.TransportCredentials.
func (g *GuardedCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, ai, err := g.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, err
	}
	ti, ok := ai.(credentials.TLSInfo)
	if !ok {
		return conn, ai, nil
	}
	id, err := certs.PeerIdentity(ti.State)
	if err != nil {
		return conn, ai, nil // the interceptors refuse it with a clear error
	}
	uri := id.URI()
	if reason, revoked := g.state.revoked(uri); revoked {
		g.state.log.Warn("refused a revoked certificate", "identity", uri, "reason", reason, "remote", raw.RemoteAddr().String())
		conn.Close()
		return nil, nil, fmt.Errorf("certificate %s is revoked (%s)", uri, reason)
	}
	gc := &guardedConn{Conn: conn, state: g.state, id: uri}
	g.state.mu.Lock()
	if g.state.conns[uri] == nil {
		g.state.conns[uri] = map[*guardedConn]struct{}{}
	}
	g.state.conns[uri][gc] = struct{}{}
	g.state.mu.Unlock()
	return gc, ai, nil
}

// Clone implements credentials.TransportCredentials (the state is shared).
func (g *GuardedCreds) Clone() credentials.TransportCredentials {
	return &GuardedCreds{TransportCredentials: g.TransportCredentials.Clone(), state: g.state}
}

// CloseRevoked closes every open connection of a revoked identity and
// returns how many it closed.
func (g *GuardedCreds) CloseRevoked() int {
	g.state.mu.Lock()
	var doomed []*guardedConn
	for uri, set := range g.state.conns {
		if reason, revoked := g.state.revoked(uri); revoked {
			g.state.log.Warn("closing the connections of a revoked certificate", "identity", uri, "reason", reason, "connections", len(set))
			for c := range set {
				doomed = append(doomed, c)
			}
		}
	}
	g.state.mu.Unlock()
	for _, c := range doomed {
		c.Close()
	}
	return len(doomed)
}

// Connected lists the identities with open connections.
func (g *GuardedCreds) Connected() []string {
	g.state.mu.Lock()
	defer g.state.mu.Unlock()
	out := make([]string, 0, len(g.state.conns))
	for uri := range g.state.conns {
		out = append(out, uri)
	}
	return out
}

type guardedConn struct {
	net.Conn
	state *guardState
	id    string
	once  sync.Once
}

func (c *guardedConn) Close() error {
	c.once.Do(func() {
		c.state.mu.Lock()
		delete(c.state.conns[c.id], c)
		if len(c.state.conns[c.id]) == 0 {
			delete(c.state.conns, c.id)
		}
		c.state.mu.Unlock()
	})
	return c.Conn.Close()
}
