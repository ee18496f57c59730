package hub

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"

	"github.com/ronda-jakarta/ronda/api"
)

// TURNConfig configures the member's embedded TURN server (pion/turn): a
// browser that cannot reach a node's UDP port directly (the node is behind
// NAT, or the browser's network allows only the hub) relays live view
// through it. Credentials are short-lived (TURN REST style), handed out to
// logged-in users with the WHEP answer and GET /api/v1/live/ice-servers.
type TURNConfig struct {
	// Listen is the UDP address of the TURN server; empty: no TURN server.
	Listen string `yaml:"listen"`
	// PublicHost is the host put in the turn: URL browsers use; default
	// Listen's host.
	PublicHost string `yaml:"public_host"`
	// RelayIP is the address relayed traffic leaves from and nodes see;
	// default Listen's host.
	RelayIP string `yaml:"relay_ip"`
	// RelayPorts bounds the relay ports, "min-max"; default 49152-65535.
	RelayPorts string `yaml:"relay_ports"`
	// CredentialTTL: how long handed-out credentials work; default 1h.
	CredentialTTL time.Duration `yaml:"credential_ttl"`
	// AllowedPeers: the networks the relay may send to (the nodes'); default
	// the private, shared and loopback ranges. The relay refuses any other
	// peer, so it is not an open relay into the Internet.
	AllowedPeers []string `yaml:"allowed_peers"`
}

var defaultTURNPeers = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "fc00::/7", "::1/128"}

// turnServer is a running embedded TURN server.
type turnServer struct {
	srv    *turn.Server
	url    string
	secret string
	ttl    time.Duration
}

// turnSecret derives the TURN credential secret from the token secret all
// members share, so credentials from one member work on any member.
func turnSecret(tokenSecret []byte) string {
	m := hmac.New(sha256.New, tokenSecret)
	m.Write([]byte("ronda turn credentials v1"))
	return hex.EncodeToString(m.Sum(nil))
}

func (c *TURNConfig) validate(bad func(field, format string, a ...any)) {
	if c.Listen == "" {
		return
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		bad("turn.listen", "%q is not host:port: %v", c.Listen, err)
		return
	}
	if c.RelayIP == "" {
		c.RelayIP = host
	}
	if ip := net.ParseIP(c.RelayIP); ip == nil || ip.IsUnspecified() {
		bad("turn.relay_ip", "%q must be the IP address nodes see relayed traffic from (set it when turn.listen is 0.0.0.0)", c.RelayIP)
	}
	if c.PublicHost == "" {
		c.PublicHost = host
	}
	if c.PublicHost == "" || c.PublicHost == "0.0.0.0" || c.PublicHost == "::" {
		bad("turn.public_host", "required when turn.listen has no specific host: the address browsers reach the TURN server at")
	}
	if _, _, err := parsePortRange(c.RelayPorts); err != nil {
		bad("turn.relay_ports", "%v", err)
	}
	if c.CredentialTTL == 0 {
		c.CredentialTTL = time.Hour
	}
	if len(c.AllowedPeers) == 0 {
		c.AllowedPeers = defaultTURNPeers
	}
	for i, p := range c.AllowedPeers {
		if _, _, err := net.ParseCIDR(p); err != nil {
			bad(fmt.Sprintf("turn.allowed_peers[%d]", i), "%q is not a CIDR network (e.g. 10.0.0.0/8)", p)
		}
	}
}

func parsePortRange(s string) (uint16, uint16, error) {
	if s == "" {
		return 49152, 65535, nil
	}
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	hi, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
	if !ok || err1 != nil || err2 != nil || lo == 0 || lo > hi {
		return 0, 0, fmt.Errorf("%q is not a port range like 49152-65535", s)
	}
	return uint16(lo), uint16(hi), nil
}

func startTURN(c TURNConfig, tokenSecret []byte, log *slog.Logger) (*turnServer, error) {
	conn, err := net.ListenPacket("udp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("turn.listen %s: %w", c.Listen, err)
	}
	lo, hi, _ := parsePortRange(c.RelayPorts)
	var nets []*net.IPNet
	for _, p := range c.AllowedPeers {
		_, n, _ := net.ParseCIDR(p)
		nets = append(nets, n)
	}
	lf := slogFactory{log}
	secret := turnSecret(tokenSecret)
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:         "ronda",
		LoggerFactory: lf,
		AuthHandler:   turn.LongTermTURNRESTAuthHandler(secret, lf.NewLogger("auth")),
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn: conn,
			RelayAddressGenerator: &turn.RelayAddressGeneratorPortRange{
				RelayAddress: net.ParseIP(c.RelayIP), Address: c.RelayIP, MinPort: lo, MaxPort: hi},
			PermissionHandler: func(client net.Addr, peer net.IP) bool {
				for _, n := range nets {
					if n.Contains(peer) {
						return true
					}
				}
				log.Warn("TURN relay to a peer outside turn.allowed_peers refused", "client", client.String(), "peer", peer.String())
				return false
			},
		}},
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("turn server: %w", err)
	}
	_, port, _ := net.SplitHostPort(conn.LocalAddr().String())
	t := &turnServer{srv: srv, secret: secret, ttl: c.CredentialTTL,
		url: "turn:" + net.JoinHostPort(c.PublicHost, port) + "?transport=udp"}
	log.Info("TURN server started", "listen", conn.LocalAddr().String(), "url", t.url, "relay_ip", c.RelayIP)
	return t, nil
}

// iceServer hands out this member's TURN server with fresh credentials.
func (t *turnServer) iceServer(user string) (api.ICEServer, error) {
	name, pass, err := turn.GenerateLongTermTURNRESTCredentials(t.secret, strings.ReplaceAll(user, ":", "_"), t.ttl)
	if err != nil {
		return api.ICEServer{}, err
	}
	return api.ICEServer{URLs: []string{t.url}, Username: name, Credential: pass}, nil
}

func (t *turnServer) close() error { return t.srv.Close() }

// ICEServers implements api.ICEServerProvider.
func (b *backend) ICEServers(ctx context.Context, user string) []api.ICEServer {
	t := b.h.turn
	if t == nil {
		return nil
	}
	s, err := t.iceServer(user)
	if err != nil {
		b.h.log.Warn("TURN credentials", "err", err)
		return nil
	}
	return []api.ICEServer{s}
}

// slogFactory routes pion's logs to slog (debug and trace dropped).
type slogFactory struct{ log *slog.Logger }

func (f slogFactory) NewLogger(scope string) logging.LeveledLogger {
	return slogLogger{f.log.With("part", "turn", "scope", scope)}
}

type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Trace(string)              {}
func (s slogLogger) Tracef(string, ...any)     {}
func (s slogLogger) Debug(string)              {}
func (s slogLogger) Debugf(string, ...any)     {}
func (s slogLogger) Info(m string)             { s.l.Info(m) }
func (s slogLogger) Infof(f string, a ...any)  { s.l.Info(fmt.Sprintf(f, a...)) }
func (s slogLogger) Warn(m string)             { s.l.Warn(m) }
func (s slogLogger) Warnf(f string, a ...any)  { s.l.Warn(fmt.Sprintf(f, a...)) }
func (s slogLogger) Error(m string)            { s.l.Warn(m) }
func (s slogLogger) Errorf(f string, a ...any) { s.l.Warn(fmt.Sprintf(f, a...)) }
