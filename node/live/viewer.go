package live

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// viewerQueue bounds a viewer's backlog (frames). A viewer that falls this
// far behind skips to its next keyframe.
const viewerQueue = 90

// replayStep spaces replayed GOP-cache frames 1 ms apart, so the browser
// decodes the cached GOP at once and reaches the live edge.
const replayStep = 90

type viewer struct {
	id     string
	cam    *camera
	pc     *webrtc.PeerConnection
	track  *webrtc.TrackLocalStaticRTP
	sender *webrtc.RTPSender
	log    *slog.Logger

	queue     chan *frame
	skipping  atomic.Bool
	drops     atomic.Int64
	plis      atomic.Int64
	up        chan struct{}
	upOnce    sync.Once
	done      chan struct{}
	closeOnce sync.Once

	// writer goroutine only
	seq uint16
	tmp rtp.Packet
}

func newViewer(id string, cam *camera, pc *webrtc.PeerConnection, track *webrtc.TrackLocalStaticRTP, sender *webrtc.RTPSender, log *slog.Logger) *viewer {
	return &viewer{id: id, cam: cam, pc: pc, track: track, sender: sender, log: log.With("session", id),
		queue: make(chan *frame, viewerQueue), up: make(chan struct{}), done: make(chan struct{})}
}

func (v *viewer) connected() { v.upOnce.Do(func() { close(v.up) }) }

// offer queues a frame without blocking; a full queue starts skipping.
func (v *viewer) offer(f *frame) {
	if v.skipping.Load() {
		if !f.key {
			v.drops.Add(1)
			return
		}
		v.skipping.Store(false)
	}
	select {
	case v.queue <- f:
	default:
		v.skipping.Store(true)
		v.drops.Add(1)
	}
}

// start runs the RTCP reader and the writer. The writer waits for the
// connection, joins the camera (taking the GOP cache), replays the cache
// with compressed timestamps, then sends live frames.
func (v *viewer) start(connectTimeout time.Duration, onTimeout func()) {
	go v.readRTCP()
	go func() {
		select {
		case <-v.up:
		case <-v.done:
			return
		case <-time.After(connectTimeout):
			v.log.Info("live session never connected; dropping it")
			onTimeout()
			return
		}
		cache := v.cam.join(v)
		defer v.cam.leave(v)
		if n := len(cache); n > 0 {
			last := cache[n-1].ts
			for i, f := range cache {
				v.send(f, last-uint32(n-1-i)*replayStep)
			}
		} else {
			v.skipping.Store(true) // no cache: start at the next keyframe
		}
		for {
			select {
			case <-v.done:
				return
			case f := <-v.queue:
				v.send(f, f.ts)
			}
		}
	}()
}

// send writes a frame's packets with this viewer's own sequence numbers
// (skipped frames leave no holes) and the given timestamp. tmp is reused:
// no allocation per packet.
func (v *viewer) send(f *frame, ts uint32) {
	for _, p := range f.pkts {
		v.tmp = *p
		v.tmp.SequenceNumber = v.seq
		v.tmp.Timestamp = ts
		v.seq++
		if err := v.track.WriteRTP(&v.tmp); err != nil {
			v.log.Debug("live write", "err", err)
			return
		}
	}
}

// readRTCP drains RTCP from the browser (needed for pion's interceptors).
// PLI/FIR are counted: an RTSP camera cannot be asked for a keyframe; the
// viewer recovers at the next one.
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
				v.plis.Add(1)
			}
		}
	}
}

func (v *viewer) close() {
	v.closeOnce.Do(func() {
		close(v.done)
		_ = v.pc.Close()
	})
}
