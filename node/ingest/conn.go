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
// only when about batchWindow of the measured bitrate is buffered, bounding
// the latency it adds to live view by batchWindow (plus at most one frame
// interval when a frame's tail waits for the next frame). During the RTSP
// handshake the default (wake on any byte) stays.
const (
	batchWindow = 30 * time.Millisecond
	minLowat    = 1 << 10
	maxLowat    = 32 << 10
)

// lowatConn is a camera connection whose receive low-water mark can be set.
// Reads go through a 64 KiB buffer: gortsplib reads 4 KiB at a time, which
// would split each batch the kernel hands over into several syscalls.
type lowatConn struct {
	net.Conn
	r   *bufio.Reader
	cur atomic.Int64
}

func (c *lowatConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// setBitrate sizes the low-water mark to batchWindow of the bitrate.
func (c *lowatConn) setBitrate(bps float64) {
	n := int64(bps / 8 * batchWindow.Seconds())
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
func dialer(got *atomic.Pointer[lowatConn]) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		lc := &lowatConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10)}
		got.Store(lc)
		return lc, nil
	}
}
