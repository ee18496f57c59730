package faultproxy

import (
	"bufio"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// echo is a line echo server counting the lines it received.
func echo(t *testing.T) (string, *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var got atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					got.Add(1)
					c.Write([]byte(line))
				}
			}()
		}
	}()
	return ln.Addr().String(), &got
}

// roundTrip writes a line and waits up to d for the echo.
func roundTrip(c net.Conn, d time.Duration) error {
	c.SetDeadline(time.Now().Add(d))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	_, err := bufio.NewReader(c).ReadString('\n')
	return err
}

func dial(t *testing.T, p *Proxy) net.Conn {
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestModes(t *testing.T) {
	target, got := echo(t)
	p, err := New("127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	c := dial(t, p)
	if err := roundTrip(c, time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}

	p.Set(State{Mode: Pass, Delay: 150 * time.Millisecond})
	start := time.Now()
	if err := roundTrip(c, 2*time.Second); err != nil || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("delay 150 ms each way: %v after %v", err, time.Since(start))
	}
	p.Set(State{Mode: Pass})

	// Blackhole: nothing arrives, nothing is closed, new connections hang.
	p.Set(State{Mode: Blackhole})
	before := got.Load()
	if err := roundTrip(c, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("blackholed round trip: %v, want a timeout", err)
	}
	c2 := dial(t, p)
	if err := roundTrip(c2, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("new connection while blackholed: %v, want a timeout", err)
	}
	if got.Load() != before {
		t.Fatal("a blackholed line reached the server")
	}
	// Healing resets the connections that lived through it; new ones work.
	p.Set(State{Mode: Pass})
	if err := roundTrip(c, time.Second); err == nil || isTimeout(err) {
		t.Fatalf("old connection after healing: %v, want it reset", err)
	}
	if err := roundTrip(dial(t, p), time.Second); err != nil {
		t.Fatalf("after healing: %v", err)
	}

	// Half-open: the server hears, the client gets nothing back.
	c3 := dial(t, p)
	if err := roundTrip(c3, time.Second); err != nil {
		t.Fatal(err)
	}
	p.Set(State{Mode: HalfOpen})
	before = got.Load()
	if err := roundTrip(c3, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("half-open: %v, want a timeout", err)
	}
	if got.Load() != before+1 {
		t.Fatalf("half-open: server got %d lines, want 1", got.Load()-before)
	}
	p.Set(State{Mode: Pass})

	// Reset: connections are torn down and new ones refused at once.
	c4 := dial(t, p)
	if err := roundTrip(c4, time.Second); err != nil {
		t.Fatal(err)
	}
	p.Set(State{Mode: Reset})
	if err := roundTrip(c4, time.Second); err == nil || isTimeout(err) {
		t.Fatalf("reset: %v, want the connection closed", err)
	}
	// The reset may reach the client while its connect is still completing
	// (the dial fails) or after (the first round trip fails): both are "at once".
	c5, err := net.Dial("tcp", p.Addr())
	if err == nil {
		defer c5.Close()
		err = roundTrip(c5, time.Second)
	}
	if err == nil || isTimeout(err) {
		t.Fatalf("new connection while reset: %v, want it closed at once", err)
	}
	if m, err := ParseMode("down"); err != nil || m != Blackhole {
		t.Fatalf("down: %v %v", m, err)
	}
	if _, err := ParseMode("broken"); err == nil {
		t.Fatal("unknown mode accepted")
	}
}

// BenchmarkCappedLink: 2 MiB through a link capped at 10 Mbit/s, side by
// side with the same link uncapped; reports the achieved Mbit/s.
func BenchmarkCappedLink(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	const size = 2 << 20
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for sent := 0; sent < size; {
					n, err := c.Write(buf[:min(len(buf), size-sent)])
					if err != nil {
						return
					}
					sent += n
				}
			}()
		}
	}()
	for _, capBps := range []int64{0, 10_000_000} {
		name := "uncapped"
		if capBps > 0 {
			name = "10Mbit"
		}
		b.Run(name, func(b *testing.B) {
			p, err := New("127.0.0.1:0", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			p.Set(State{Mode: Pass, RateBitsPerSec: capBps})
			start := time.Now()
			for i := 0; i < b.N; i++ {
				c, err := net.Dial("tcp", p.Addr())
				if err != nil {
					b.Fatal(err)
				}
				buf := make([]byte, 64<<10)
				for got := 0; got < size; {
					n, err := c.Read(buf)
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
				c.Close()
			}
			b.ReportMetric(float64(b.N)*size*8/time.Since(start).Seconds()/1e6, "Mbit/s")
		})
	}
}
