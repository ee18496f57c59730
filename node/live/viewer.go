package live

import (
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// defaultQueue bounds a viewer's backlog (frames, 6 s at 15 fps). A viewer
// that falls this far behind skips to its next keyframe.
const defaultQueue = 90

// replayStep spaces replayed GOP-cache frames 1 ms (90 ticks) apart, so the
// browser decodes the cached GOP at once and reaches the live edge.
const replayStep = 90

// viewer is one WHEP session: a peer connection with one video track, its
// own bounded queue and its own writer goroutine.
type viewer struct {
	id     string
	cam    *camera
	pc     *webrtc.PeerConnection
	sender *webrtc.RTPSender
	write  func(*rtp.Packet) error
	log    *slog.Logger

	queue    chan *frame
	skipping bool // guarded by cam.mu: set when the queue overflowed, cleared at a keyframe

	drops   atomic.Int64 // frames not sent (queue full or waiting for a keyframe)
	plis    atomic.Int64 // PLI/FIR received (noted only: an RTSP camera cannot be asked for a keyframe)
	packets atomic.Int64 // RTP packets written

	offered   time.Time
	up        chan struct{}
	upOnce    sync.Once
	done      chan struct{}
	closeOnce sync.Once

	// writer goroutine only
	seq    uint16
	tmp    rtp.Packet
	sent   bool   // a frame has been sent (lastTS is valid)
	lastTS uint32 // the last timestamp sent
	tsOff  uint32 // added to camera timestamps after a discontinuity
}

// maxTSJump: a timestamp step beyond this (or backwards) is a discontinuity
// of the camera's clock (a new RTSP session), not elapsed time.
const maxTSJump = 10 * 90000

// frameStep is the timestamp step used to bridge a discontinuity (1/30 s).
const frameStep = 3000

func newViewer(id string, cam *camera, pc *webrtc.PeerConnection, sender *webrtc.RTPSender,
	write func(*rtp.Packet) error, queue int, log *slog.Logger) *viewer {
	return &viewer{id: id, cam: cam, pc: pc, sender: sender, write: write, log: log.With("session", id),
		seq: uint16(rand.Uint32()), offered: time.Now(), queue: make(chan *frame, queue), up: make(chan struct{}), done: make(chan struct{})}
}

func (v *viewer) connected() {
	v.upOnce.Do(func() {
		v.log.Info("live session connected", "connect_ms", time.Since(v.offered).Milliseconds())
		close(v.up)
	})
}

// offer queues a frame without blocking. A full queue starts skipping: the
// viewer gets nothing more until the next keyframe (a delta frame whose
// reference was dropped would only show corruption). Called with cam.mu held.
func (v *viewer) offer(f *frame) {
	if v.skipping {
		if !f.key {
			v.drops.Add(1)
			return
		}
		v.skipping = false
	}
	select {
	case v.queue <- f:
	default:
		if v.drops.Add(1) == 1 {
			v.log.Info("live viewer too slow; skipping to the next keyframe")
		}
		v.skipping = true
	}
}

// run is the writer: it waits for the connection, joins the camera (taking
// the GOP cache), replays the cache with compressed timestamps, then sends
// live frames until the session ends.
func (v *viewer) run(connectTimeout time.Duration, onTimeout func()) {
	timer := time.NewTimer(connectTimeout)
	select {
	case <-v.up:
		timer.Stop()
	case <-v.done:
		timer.Stop()
		return
	case <-timer.C:
		v.log.Info("live session never connected; dropping it")
		onTimeout()
		return
	}
	cache := v.cam.join(v)
	defer v.cam.leave(v)
	if n := len(cache); n > 0 {
		last := cache[n-1].ts
		for i, f := range cache {
			if !v.send(f, last-uint32(n-1-i)*replayStep) {
				return
			}
		}
		v.log.Debug("live session started from the GOP cache", "frames", n, "packets", v.packets.Load())
	}
	for {
		select {
		case <-v.done:
			return
		case f := <-v.queue:
			if !v.send(f, f.ts) {
				return
			}
		}
	}
}

// send writes a frame's packets with this viewer's own sequence numbers
// (skipped frames leave no holes that would trigger NACKs) and the given
// timestamp. tmp is reused: no allocation per packet. It reports false when
// the session has ended.
func (v *viewer) send(f *frame, ts uint32) bool {
	ts = v.continuous(ts)
	for _, p := range f.pkts {
		v.tmp.Header = p.Header
		v.tmp.Payload = p.Payload
		v.tmp.SequenceNumber = v.seq
		v.tmp.Timestamp = ts
		v.seq++
		if err := v.write(&v.tmp); err != nil {
			select {
			case <-v.done:
				return false
			default:
			}
			v.log.Debug("live write", "err", err)
			return true // transient: the frame is lost, the session goes on
		}
		v.packets.Add(1)
	}
	return true
}

// continuous maps a camera timestamp to the one sent, keeping this viewer's
// timeline monotonic across camera reconnects: a backwards step or a jump of
// more than 10 s continues one frame after the last timestamp sent.
func (v *viewer) continuous(ts uint32) uint32 {
	out := ts + v.tsOff
	if v.sent {
		if d := int32(out - v.lastTS); d <= 0 || d > maxTSJump {
			v.tsOff += v.lastTS + frameStep - out
			out = v.lastTS + frameStep
		}
	}
	v.sent, v.lastTS = true, out
	return out
}

// readRTCP drains RTCP from the browser (pion's interceptors act on it only
// when it is read). PLI/FIR are noted: an RTSP camera cannot be asked for a
// keyframe, so the viewer recovers at the next one (≤ 1 GOP).
func (v *viewer) readRTCP() {
	buf := make([]byte, 1500)
	for {
		n, _, err := v.sender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if v.plis.Add(1) == 1 {
					v.log.Debug("browser asked for a keyframe; it will get the camera's next one")
				}
			}
		}
	}
}

func (v *viewer) close() {
	v.closeOnce.Do(func() {
		close(v.done)
		_ = v.pc.Close()
		v.log.Info("live session ended", "packets", v.packets.Load(), "dropped_frames", v.drops.Load(), "pli", v.plis.Load())
	})
}
