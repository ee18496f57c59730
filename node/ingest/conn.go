package ingest

import (
	"bufio"
	"context"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// Receive batching. At 4 Mbit/s a camera's RTP-over-TCP stream arrives as
// ~350 packets a second, and without batching every packet wakes the reader:
// the profile's largest cost was read syscalls and wake-ups, not recording.
// Once a session streams, SO_RCVLOWAT asks the kernel to wake the reader
// only when about a window of the measured bitrate is buffered. While
// someone watches the camera live the window is liveWindow, bounding the
// latency it adds to live view (plus at most one frame interval when a
// frame's tail waits for the next frame); while only the recorder listens it
// is recordWindow, which the recorder does not notice and which cuts the
// wake-ups by four. During the RTSP handshake the default (wake on any byte)
// stays.
const (
	liveWindow   = 30 * time.Millisecond
	recordWindow = 120 * time.Millisecond
	minLowat     = 1 << 10
	maxLowat     = 96 << 10
)

// lowatConn is a camera connection whose receive low-water mark can be set.
// Reads go through a 128 KiB buffer: gortsplib reads 4 KiB at a time, which
// would split each batch the kernel hands over into several syscalls.
type lowatConn struct {
	net.Conn
	r    *bufio.Reader
	cur  atomic.Int64
	bps  atomic.Uint64 // the last measured bitrate (bits/s)
	live atomic.Bool   // someone watches live: the short window
}

func (c *lowatConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// setLive switches between the live and the recording window at once.
func (c *lowatConn) setLive(live bool) {
	if c.live.Swap(live) != live {
		if bps := c.bps.Load(); bps > 0 {
			c.setBitrate(float64(bps))
		}
	}
}

// setBitrate sizes the low-water mark to the window of the bitrate.
func (c *lowatConn) setBitrate(bps float64) {
	c.bps.Store(uint64(bps))
	window := recordWindow
	if c.live.Load() {
		window = liveWindow
	}
	n := int64(bps / 8 * window.Seconds())
	n = max(minLowat, min(maxLowat, n))
	old := c.cur.Load()
	if old != 0 && n > old*3/4 && n < old*5/4 {
		return // within 25 %: not worth a syscall
	}
	tc, ok := c.Conn.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		if syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, int(n)) == nil {
			c.cur.Store(n)
		}
	})
}

// dialer returns a DialContext for gortsplib that remembers the connection.
func dialer(got *atomic.Pointer[lowatConn], live *atomic.Bool) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		lc := &lowatConn{Conn: c, r: bufio.NewReaderSize(c, 128<<10)}
		lc.live.Store(live.Load())
		got.Store(lc)
		return lc, nil
	}
}
