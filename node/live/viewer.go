package live

import (
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
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
	plis    atomic.Int64 // PLI/FIR received
	replays atomic.Int64 // GOP-cache replays answering them
	packets atomic.Int64 // RTP packets written
	bytes   atomic.Int64 // RTP payload bytes written

	useCache bool                               // start from the GOP cache (false: at the next keyframe)
	onFirst  func(d time.Duration, from string) // the first frame was sent, d after the offer
	wantKey  atomic.Bool                        // a PLI/FIR is waiting for an answer
	kick     chan struct{}                      // wakes the writer for a PLI/FIR

	mu          sync.Mutex // guards the fields below (read by Info)
	connectedAt time.Time
	firstFrame  time.Duration     // from the offer to the first frame sent; 0 = none yet
	startedFrom string            // "gop_cache" or "keyframe"
	candidates  map[string]string // the browser's signalled candidates: "ip:port" -> type

	offered   time.Time
	up        chan struct{}
	upOnce    sync.Once
	done      chan struct{}
	closeOnce sync.Once

	// writer goroutine only
	seq    uint16
	tmp    rtp.Packet
	sent   bool      // a frame has been sent (lastTS is valid)
	lastTS uint32    // the last timestamp sent
	tsOff  uint32    // added to camera timestamps after a discontinuity
	replay time.Time // the last PLI answered from the cache
}

// minReplayInterval: browsers repeat a PLI until a keyframe arrives; one
// replay per interval answers them all.
const minReplayInterval = time.Second

// maxTSJump: a timestamp step beyond this (or backwards) is a discontinuity
// of the camera's clock (a new RTSP session), not elapsed time.
const maxTSJump = 10 * 90000

// frameStep is the timestamp step used to bridge a discontinuity (1/30 s).
const frameStep = 3000

func newViewer(id string, cam *camera, pc *webrtc.PeerConnection, sender *webrtc.RTPSender,
	write func(*rtp.Packet) error, queue int, log *slog.Logger) *viewer {
	return &viewer{id: id, cam: cam, pc: pc, sender: sender, write: write, log: log.With("session", id), useCache: true,
		seq: uint16(rand.Uint32()), offered: time.Now(), queue: make(chan *frame, queue), up: make(chan struct{}), done: make(chan struct{}),
		kick: make(chan struct{}, 1), candidates: map[string]string{}}
}

func (v *viewer) connected() {
	v.upOnce.Do(func() {
		now := time.Now()
		v.mu.Lock()
		v.connectedAt = now
		v.mu.Unlock()
		v.log.Info("live session connected", "connect_ms", now.Sub(v.offered).Milliseconds(), "path", v.path())
		close(v.up)
	})
}

// addCandidates notes the browser's candidates (from the offer or a
// trickle PATCH): an ICE-lite answerer sees a TURN-relayed check as coming
// from a peer-reflexive address unless it knows the relay candidate.
func (v *viewer) addCandidates(sdpText string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, line := range strings.Split(sdpText, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "a="))
		if !strings.HasPrefix(line, "candidate:") {
			continue
		}
		c, err := ice.UnmarshalCandidate(line)
		if err != nil {
			continue
		}
		v.candidates[net.JoinHostPort(c.Address(), strconv.Itoa(c.Port()))] = c.Type().String()
	}
}

// path says how the session's media flows: "turn" when either side of the
// selected candidate pair is a TURN relay (the browser's, or the node's own
// allocation), "direct" otherwise, "" before ICE has selected a pair.
func (v *viewer) path() string {
	if v.sender == nil {
		return ""
	}
	tr := v.sender.Transport()
	if tr == nil {
		return ""
	}
	pair, err := tr.ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Remote == nil {
		return ""
	}
	typ := pair.Remote.Typ.String()
	if pair.Remote.Typ == webrtc.ICECandidateTypePrflx {
		v.mu.Lock()
		if t, ok := v.candidates[net.JoinHostPort(pair.Remote.Address, strconv.Itoa(int(pair.Remote.Port)))]; ok {
			typ = t
		}
		v.mu.Unlock()
	}
	if typ == "relay" || (pair.Local != nil && pair.Local.Typ == webrtc.ICECandidateTypeRelay) {
		return "turn"
	}
	return "direct"
}

// offer queues a frame without blocking. A full queue starts skipping: the
// viewer gets nothing more until the next keyframe (a delta frame whose
// reference was dropped would only show corruption). Called with cam.mu held.
func (v *viewer) offer(f *frame) {
	if v.skipping {
		if !f.key {
			v.drops.Add(1)
			v.cam.dropped.Add(1)
			return
		}
		v.skipping = false
	}
	select {
	case v.queue <- f:
	default:
		v.cam.dropped.Add(1)
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
	cache := v.cam.join(v, v.useCache)
	defer v.cam.leave(v)
	if len(cache) > 0 {
		if !v.replayCache(cache, "gop_cache") {
			return
		}
		v.log.Debug("live session started from the GOP cache", "frames", len(cache), "packets", v.packets.Load())
	}
	for {
		select {
		case <-v.done:
			return
		case <-v.kick:
		case f := <-v.queue:
			if !v.sendFirst(f, f.ts, "keyframe") {
				return
			}
		}
		if v.wantKey.Swap(false) && time.Since(v.replay) >= minReplayInterval {
			v.replay = time.Now()
			if cache := v.cam.resync(v); len(cache) > 0 {
				v.replays.Add(1)
				v.cam.gopReplays.Add(1)
				if !v.replayCache(cache, "gop_cache") {
					return
				}
			}
		}
	}
}

// replayCache sends cached frames with timestamps compressed to 1 ms apart,
// ending at the newest frame's timestamp, or — mid-session (a PLI answer) —
// continuing 1 ms after the last timestamp sent, so the timeline never runs
// backwards; live frames then continue from the replay's end.
func (v *viewer) replayCache(cache []*frame, from string) bool {
	n := len(cache)
	last := cache[n-1].ts
	if v.sent {
		v.tsOff = v.lastTS + uint32(n)*replayStep - last
	}
	for i, f := range cache {
		if !v.sendFirst(f, last-uint32(n-1-i)*replayStep, from) {
			return false
		}
	}
	return true
}

// sendFirst is send, noting the session's first frame (time to first frame).
func (v *viewer) sendFirst(f *frame, ts uint32, from string) bool {
	first := !v.sent
	ok := v.send(f, ts)
	if first && v.sent {
		d := time.Since(v.offered)
		v.mu.Lock()
		v.firstFrame, v.startedFrom = d, from
		v.mu.Unlock()
		if v.onFirst != nil {
			v.onFirst(d, from)
		}
	}
	return ok
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
		v.bytes.Add(int64(len(p.Payload)))
		v.cam.bytesOut.Add(int64(len(p.Payload)))
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
// when it is read). An RTSP camera cannot be asked for a keyframe, so a
// PLI/FIR is answered from the GOP cache: the writer replays the newest
// keyframe and the frames since (at most once a second).
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
				v.cam.plis.Add(1)
				v.wantKey.Store(true)
				select {
				case v.kick <- struct{}{}:
				default:
				}
			}
		}
	}
}

func (v *viewer) close() {
	v.closeOnce.Do(func() {
		close(v.done)
		_ = v.pc.Close()
		v.log.Info("live session ended", "packets", v.packets.Load(), "dropped_frames", v.drops.Load(), "pli", v.plis.Load(), "gop_replays", v.replays.Load())
	})
}
