package hub

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"
)

// turnClient allocates a relay on the server at addr with the credentials.
func turnClient(t *testing.T, addr, user, pass string) (*turn.Client, net.PacketConn, error) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: addr, STUNServerAddr: addr, Username: user, Password: pass,
		Realm: "ronda", Conn: conn, RTO: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	return c, relay, err
}

// The embedded TURN server relays for holders of credentials the hub handed
// out, to the allowed peer networks only, and refuses wrong credentials.
func TestTURNRelaysForHandedOutCredentialsOnly(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func(allowed []string) *turnServer {
		c := TURNConfig{Listen: "127.0.0.1:0", RelayPorts: "40000-40100", AllowedPeers: allowed}
		var errs []string
		c.validate(func(f, format string, a ...any) { errs = append(errs, f) })
		if len(errs) > 0 {
			t.Fatalf("config: %v", errs)
		}
		s, err := startTURN(c, []byte("0123456789abcdef0123456789abcdef"), quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.close() })
		return s
	}
	s := start(nil)
	ice, err := s.iceServer("operator")
	if err != nil || len(ice.URLs) != 1 || !strings.HasPrefix(ice.URLs[0], "turn:127.0.0.1:") || !strings.HasSuffix(ice.Username, ":operator") {
		t.Fatalf("ICE server %+v (%v)", ice, err)
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(ice.URLs[0], "turn:"), "?transport=udp")

	// A node's UDP port on loopback (an allowed peer network).
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	_, relay, err := turnClient(t, addr, ice.Username, ice.Credential)
	if err != nil {
		t.Fatalf("allocate with handed-out credentials: %v", err)
	}
	if _, err := relay.WriteTo([]byte("ping"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = peer.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("relayed packet: %q %v", buf[:n], err)
	}
	if p := from.(*net.UDPAddr).Port; p < 40000 || p > 40100 {
		t.Fatalf("relayed from port %d, outside relay_ports 40000-40100", p)
	}

	// Wrong credentials, and expired ones, get no allocation.
	if _, _, err := turnClient(t, addr, ice.Username, "wrong"); err == nil {
		t.Fatal("allocated with a wrong password")
	}
	old := turnServer{secret: s.secret, ttl: -time.Minute}
	expired, _ := old.iceServer("operator")
	if _, _, err := turnClient(t, addr, expired.Username, expired.Credential); err == nil {
		t.Fatal("allocated with expired credentials")
	}

	// A peer outside allowed_peers is refused: no open relay.
	strict := start([]string{"10.0.0.0/8"})
	ice2, _ := strict.iceServer("operator")
	addr2 := strings.TrimSuffix(strings.TrimPrefix(ice2.URLs[0], "turn:"), "?transport=udp")
	_, relay2, err := turnClient(t, addr2, ice2.Username, ice2.Credential)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relay2.WriteTo([]byte("ping"), peer.LocalAddr()); err == nil {
		_ = peer.SetReadDeadline(time.Now().Add(time.Second))
		if n, _, err := peer.ReadFrom(buf); err == nil {
			t.Fatalf("relayed %q to a peer outside allowed_peers", buf[:n])
		}
	}
}

func TestTURNConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  TURNConfig
		want string
	}{
		{TURNConfig{Listen: "3478"}, "turn.listen"},
		{TURNConfig{Listen: "0.0.0.0:3478"}, "turn.relay_ip"},
		{TURNConfig{Listen: "0.0.0.0:3478", RelayIP: "10.1.1.1"}, "turn.public_host"},
		{TURNConfig{Listen: "127.0.0.1:3478", RelayPorts: "9-1"}, "turn.relay_ports"},
		{TURNConfig{Listen: "127.0.0.1:3478", AllowedPeers: []string{"10.0.0.1"}}, "turn.allowed_peers[0]"},
	} {
		var got []string
		c.cfg.validate(func(f, format string, a ...any) { got = append(got, f) })
		if len(got) == 0 || got[0] != c.want {
			t.Fatalf("%+v: errors %v, want %s", c.cfg, got, c.want)
		}
	}
}
