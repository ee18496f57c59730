// Package faultproxy is a TCP proxy that breaks a link on command, the way
// kelurahan WAN links break: it can pass traffic, blackhole it (the cable
// is cut: nothing arrives, nobody is told), reset it (connections are torn
// down and refused), delay it, or let it through in one direction only
// (half-open). The demo puts one between every node and every hub member,
// and the fault tests drive it.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Mode is what the proxy does with traffic.
type Mode string

const (
	Pass      Mode = "up"        // forward both ways
	Blackhole Mode = "blackhole" // forward nothing, close nothing; new connections hang
	Reset     Mode = "reset"     // close every connection; refuse new ones at once
	HalfOpen  Mode = "half-open" // forward client -> server only; answers are lost
)

// ParseMode reads a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Pass, Blackhole, Reset, HalfOpen:
		return m, nil
	case "down":
		return Blackhole, nil
	}
	return "", fmt.Errorf("faultproxy: unknown mode %q (up, down|blackhole, reset, half-open)", s)
}

// State is a proxy's mode and added one-way latency.
type State struct {
	Mode  Mode          `json:"mode"`
	Delay time.Duration `json:"delay"`
	// RateBitsPerSec caps the link like a WAN line of that speed: each
	// direction carries at most this many bits per second, shared by all
	// its connections (0: no cap).
	RateBitsPerSec int64 `json:"rate_bps,omitempty"`
}

// Proxy forwards connections from its listener to one target.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	state  State
	conns  map[*link]struct{}
	closed bool
	wg     sync.WaitGroup
	// One token bucket per direction (toServer, toClient) when capped.
	up, down *rate.Limiter
}

type link struct {
	client, server net.Conn // server is nil until dialled
}

func (l *link) close() {
	if tc, ok := l.client.(*net.TCPConn); ok {
		tc.SetLinger(0) // RST, like a router dropping the flow
	}
	l.client.Close()
	if l.server != nil {
		l.server.Close()
	}
}

// New listens on listen (e.g. 127.0.0.1:0) and forwards to target.
func New(listen, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, state: State{Mode: Pass}, conns: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is where traffic goes.
func (p *Proxy) Target() string { return p.target }

// State returns the current state.
func (p *Proxy) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Set changes the state. Leaving Blackhole or HalfOpen resets the
// connections that lived through it (their peers' TCP state is stale, as
// after a long real outage); entering Reset closes every connection.
func (p *Proxy) Set(s State) {
	p.mu.Lock()
	prev := p.state.Mode
	p.state = s
	p.up, p.down = nil, nil
	if s.RateBitsPerSec > 0 {
		// A burst of 16 KiB: a line's serialisation, not a free second's worth.
		bps := rate.Limit(float64(s.RateBitsPerSec) / 8)
		p.up, p.down = rate.NewLimiter(bps, 16<<10), rate.NewLimiter(bps, 16<<10)
	}
	var drop []*link
	if s.Mode == Reset || (prev != s.Mode && (prev == Blackhole || prev == HalfOpen)) {
		for l := range p.conns {
			drop = append(drop, l)
			delete(p.conns, l)
		}
	}
	p.mu.Unlock()
	for _, l := range drop {
		l.close()
	}
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = map[*link]struct{}{}
	p.mu.Unlock()
	err := p.ln.Close()
	for l := range conns {
		l.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		l := &link{client: c}
		p.mu.Lock()
		if p.closed || p.state.Mode == Reset {
			p.mu.Unlock()
			l.close()
			continue
		}
		p.conns[l] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(l)
	}
}

func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, l)
		p.mu.Unlock()
		l.close()
	}()
	// A blackholed link does not even reach the target: wait until the
	// mode changes (Set then closes this connection) or the client leaves.
	for p.State().Mode == Blackhole {
		if !p.waitWhileBlackholed(l) {
			return
		}
	}
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	if _, ok := p.conns[l]; !ok {
		p.mu.Unlock()
		s.Close()
		return
	}
	l.server = s
	p.mu.Unlock()
	done := make(chan bool, 2)
	go func() { done <- p.pipe(s, l.client, true) }()  // client -> server
	go func() { done <- p.pipe(l.client, s, false) }() // server -> client
	if <-done {
		<-done // a clean half-close: the other direction may still carry data
	}
}

// waitWhileBlackholed reads and drops what the client sends until the mode
// changes; false when the client went away or the link was closed.
func (p *Proxy) waitWhileBlackholed(l *link) bool {
	buf := make([]byte, 4096)
	for p.State().Mode == Blackhole {
		l.client.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := l.client.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return false
		}
	}
	l.client.SetReadDeadline(time.Time{})
	p.mu.Lock()
	_, ok := p.conns[l]
	p.mu.Unlock()
	return ok
}

// pipe copies src to dst. toServer tells the direction (half-open drops
// the other one). Blackholed bytes are read and dropped; a delay holds each
// chunk before it is written. One buffer per direction. It reports
// whether src ended cleanly (EOF, passed on as a half-close).
func (p *Proxy) pipe(dst, src net.Conn, toServer bool) bool {
	buf := make([]byte, 16<<10) // at most one burst of the rate cap
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			st, lim := p.state, p.down
			if toServer {
				lim = p.up
			}
			p.mu.Unlock()
			forward := st.Mode == Pass || (st.Mode == HalfOpen && toServer)
			if forward {
				if st.Delay > 0 {
					time.Sleep(st.Delay)
				}
				if lim != nil {
					_ = lim.WaitN(context.Background(), n)
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return false
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return false
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return true
		}
	}
}
