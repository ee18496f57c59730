package ingest

import (
	"net"
	"sync/atomic"
	"syscall"
	"testing"
)

// rcvlowat reads the socket's SO_RCVLOWAT as the kernel holds it.
func rcvlowat(t *testing.T, c net.Conn) int {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// A camera's receive batching follows whether anyone watches it live: a
// short window (low latency) while watched, a long one (fewer wake-ups)
// while only the recorder listens, switched at once in both directions.
func TestReceiveBatchingFollowsLiveViewers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			var b [1]byte
			_, _ = c.Read(b[:])
		}
	}()
	var got atomic.Pointer[lowatConn]
	var live atomic.Bool
	conn, err := dialer(&got, &live)(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	lc := got.Load()
	if lc == nil || lc != conn {
		t.Fatal("dialer did not remember its connection")
	}

	const bps = 4e6 // a 4 Mbit/s camera: 500 kB/s
	lc.setBitrate(bps)
	want := int(bps / 8 * recordWindow.Seconds())
	if v := rcvlowat(t, lc.Conn); v != want {
		t.Fatalf("recording only: SO_RCVLOWAT %d, want %d (%v of the bitrate)", v, want, recordWindow)
	}
	lc.setLive(true)
	want = int(bps / 8 * liveWindow.Seconds())
	if v := rcvlowat(t, lc.Conn); v != want {
		t.Fatalf("watched live: SO_RCVLOWAT %d, want %d (%v of the bitrate)", v, want, liveWindow)
	}
	lc.setLive(false)
	want = int(bps / 8 * recordWindow.Seconds())
	if v := rcvlowat(t, lc.Conn); v != want {
		t.Fatalf("viewer gone: SO_RCVLOWAT %d, want %d", v, want)
	}
	// A very fast camera is capped so one batch never waits for more than
	// the buffer holds.
	lc.setBitrate(100e6)
	if v := rcvlowat(t, lc.Conn); v != maxLowat {
		t.Fatalf("100 Mbit/s: SO_RCVLOWAT %d, want the cap %d", v, maxLowat)
	}

	// A session that starts while someone already watches starts live.
	live.Store(true)
	conn2, err := dialer(&got, &live)(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	got.Load().setBitrate(bps)
	if v, want := rcvlowat(t, got.Load().Conn), int(bps/8*liveWindow.Seconds()); v != want {
		t.Fatalf("reconnected while watched: SO_RCVLOWAT %d, want %d", v, want)
	}
}
