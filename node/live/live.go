// Package live serves live view over WebRTC (WHEP). Each camera's stream is
// packetized into RTP once and shared by all of its viewers; each viewer has
// its own bounded queue and writer, so a slow viewer skips to its next
// keyframe and never slows the others. A cache of the camera's last GOP lets
// a new viewer start at once instead of waiting for the next keyframe.
package live

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ronda-jakarta/ronda/node/media"
)

// Sentinel errors.
var (
	ErrUnknownCamera  = errors.New("live: no such camera on this node")
	ErrNoVideo        = errors.New("live: camera has not delivered video yet; retry in a few seconds")
	ErrUnknownSession = errors.New("live: no such live session (it ended or never existed)")
	ErrNoH264         = errors.New("live: the offer has no H.264 video with packetization-mode=1; use a browser that decodes H.264 over WebRTC")
	ErrNoH265         = errors.New("live: this camera sends H.265 and the browser did not offer H.265 over WebRTC (Chrome and Edge from version 136 with hardware decoding, Safari from 18 do); use such a browser, the camera's H.264 sub-stream, or playback")
	ErrBadFragment    = errors.New("live: the trickle ICE fragment is malformed (want application/trickle-ice-sdpfrag, RFC 8840)")
	ErrICERestart     = errors.New("live: ICE restarts are not supported; end this session (DELETE) and start a new one")
	ErrClosed         = errors.New("live: the live-view engine is shut down")
)

// BFramesWarning is what the API and the log say of a camera that sends
// B-frames: WebRTC carries no decode order, so browsers show such video
// jerky or not at all.
const BFramesWarning = "the camera sends B-frames (frames out of presentation order); browsers play them jerky or not at all over WebRTC; set the camera's encoder to a profile or GOP structure without B-frames (e.g. Baseline, or IP-only)"

// OfferOptions tune one session.
type OfferOptions struct {
	// NoGOPCache starts the session at the camera's next keyframe instead
	// of replaying the cached GOP (for comparison in benchmarks).
	NoGOPCache bool
	// Stream is StreamMain (default) or StreamSub; a camera without a sub
	// stream serves its main one (SessionInfo.Stream says which).
	Stream string
	// ICEServers (the hub's TURN server): the node allocates a relay
	// candidate of its own there, for a node behind NAT that browsers and
	// the hub cannot reach by UDP. The session then runs full ICE (not
	// lite) and the answer waits for the allocation (one round trip to the
	// hub). Empty: ICE-lite, host candidates only, no waiting.
	ICEServers []webrtc.ICEServer
	// RelayOnly makes the node offer its relay candidate only (tests).
	RelayOnly bool
}

// SessionInfo describes a live session (GET /api/v1/whep/{session}).
type SessionInfo struct {
	ID          string    `json:"session"`
	CameraID    string    `json:"camera_id"`
	Stream      string    `json:"stream"`         // main or sub
	State       string    `json:"state"`          // connecting, connected
	Path        string    `json:"path,omitempty"` // direct (browser <-> node) or turn (through a TURN relay)
	Offered     time.Time `json:"offered"`
	ConnectMS   int64     `json:"connect_ms,omitempty"`     // offer to ICE+DTLS connected
	FirstFrame  int64     `json:"first_frame_ms,omitempty"` // offer to the first frame sent
	StartedFrom string    `json:"started_from,omitempty"`   // gop_cache or keyframe
	Packets     int64     `json:"packets"`
	Bytes       int64     `json:"bytes"`
	Dropped     int64     `json:"dropped_frames"`
	PLIs        int64     `json:"pli"`
	GOPReplays  int64     `json:"gop_replays"`
	// NodeCandidates: the kinds of candidate the node offered (host, relay).
	NodeCandidates []string `json:"node_candidates"`
}

// Options configure the engine.
type Options struct {
	UDPAddr     string   // the single UDP port for all sessions (ICE UDP mux), e.g. "127.0.0.1:8189"
	AnnounceIPs []string // addresses put in ICE candidates (NAT 1:1); empty = the listener's
	Logger      *slog.Logger
	// ConnectTimeout: a session that does not connect within it is dropped
	// (default 20 s).
	ConnectTimeout time.Duration
}

// Engine is the node's live-view server.
type Engine struct {
	opts Options
	log  *slog.Logger
	conn net.PacketConn
	mux  ice.UDPMux
	wg   sync.WaitGroup // every viewer goroutine

	// for tests: the viewer queue length and a wrapper around each viewer's
	// packet writer; set before the first Offer.
	queueLen  int
	wrapWrite func(sessionID string, write func(*rtp.Packet) error) func(*rtp.Packet) error

	ttff *prometheus.HistogramVec // offer to the first frame sent, by where it started

	mu       sync.Mutex
	closed   bool
	cameras  map[string]*camera
	sessions map[string]*viewer
}

// New listens on the UDP port and returns an engine.
func New(opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 20 * time.Second
	}
	conn, err := net.ListenPacket("udp4", opts.UDPAddr)
	if err != nil {
		return nil, fmt.Errorf("live: listen udp %s: %w", opts.UDPAddr, err)
	}
	e := &Engine{opts: opts, log: opts.Logger, conn: conn, queueLen: defaultQueue,
		cameras: map[string]*camera{}, sessions: map[string]*viewer{},
		ttff: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ronda_live_first_frame_seconds",
			Help:    "Time from a WHEP offer to its first video frame sent, by where it started (gop_cache: the cached GOP; keyframe: the camera's next keyframe).",
			Buckets: []float64{0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5}}, []string{"started_from"})}
	e.mux = webrtc.NewICEUDPMux(nil, conn)
	return e, nil
}

// UDPAddr is the UDP port's real address.
func (e *Engine) UDPAddr() string { return e.conn.LocalAddr().String() }

// Streams of a camera.
const (
	StreamMain = "main"
	StreamSub  = "sub" // the camera's lower-resolution stream, for grids
)

func streamKey(cameraID, stream string) string {
	if stream == "" || stream == StreamMain {
		return cameraID
	}
	return cameraID + "#" + stream
}

// AddCamera subscribes the engine to a camera's main stream. The
// subscription is made at once and kept (not made lazily at the first
// viewer): packetizing one camera costs little next to its RTSP session,
// and it keeps the GOP cache warm, so the first viewer starts at once too.
// Adding a camera ID again replaces the old source and ends its viewers.
func (e *Engine) AddCamera(cameraID string, src *media.Fanout) {
	e.AddStream(cameraID, StreamMain, src)
}

// AddStream subscribes the engine to one of a camera's streams (StreamMain
// or StreamSub).
func (e *Engine) AddStream(cameraID, stream string, src *media.Fanout) {
	if stream == "" {
		stream = StreamMain
	}
	key := streamKey(cameraID, stream)
	c := newCamera(cameraID, src, e.log.With("camera", cameraID, "stream", stream))
	c.stream = stream
	e.mu.Lock()
	old := e.cameras[key]
	e.cameras[key] = c
	var stale []string
	for id, v := range e.sessions {
		if v.cam == old {
			stale = append(stale, id)
		}
	}
	e.mu.Unlock()
	if old != nil {
		old.src.Remove(old)
		for _, id := range stale {
			e.remove(id)
		}
	}
	src.Add(c)
}

// Viewers returns the number of live sessions of a camera (connected or
// still connecting).
func (e *Engine) Viewers(cameraID string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, v := range e.sessions {
		if v.cam.id == cameraID {
			n++
		}
	}
	return n
}

// api builds a pion API for one session: exactly the codec chosen from the
// offer, NACK responder and RTCP reports (no TWCC or stats: nothing here
// would act on them), the shared UDP mux, host candidates only.
func (e *Engine) api(codec webrtc.RTPCodecParameters, lite bool) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(codec, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(me, ir); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetICEUDPMux(e.mux)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetLite(lite)
	if len(e.opts.AnnounceIPs) > 0 {
		se.SetNAT1To1IPs(e.opts.AnnounceIPs, webrtc.ICECandidateTypeHost)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// Offer answers a WHEP offer for a camera. It does not wait on STUN: the
// only candidates are the engine's own host address(es), so gathering
// completes at once. The session's media starts when ICE/DTLS connect.
func (e *Engine) Offer(ctx context.Context, cameraID, offerSDP string, opt OfferOptions) (answerSDP, sessionID string, err error) {
	e.mu.Lock()
	cam, closed := e.cameras[streamKey(cameraID, opt.Stream)], e.closed
	if cam == nil {
		cam = e.cameras[cameraID] // no such stream: the main one
	}
	e.mu.Unlock()
	if closed {
		return "", "", ErrClosed
	}
	if cam == nil {
		return "", "", fmt.Errorf("%w: %q", ErrUnknownCamera, cameraID)
	}
	track, ok := cam.currentTrack()
	if !ok {
		return "", "", ErrNoVideo
	}
	codec, err := chooseCodec(offerSDP, track)
	if err != nil {
		return "", "", err
	}
	relay := len(opt.ICEServers) > 0
	api, err := e.api(codec, !relay)
	if err != nil {
		return "", "", err
	}
	pcfg := webrtc.Configuration{}
	if relay {
		pcfg.ICEServers = opt.ICEServers
		if opt.RelayOnly {
			pcfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
		}
	}
	pc, err := api.NewPeerConnection(pcfg)
	if err != nil {
		return "", "", err
	}
	fail := func(err error) (string, string, error) { _ = pc.Close(); return "", "", err }
	lt, err := webrtc.NewTrackLocalStaticRTP(codec.RTPCodecCapability, "video", "ronda-"+cameraID)
	if err != nil {
		return fail(err)
	}
	id := newID()
	write := lt.WriteRTP
	if e.wrapWrite != nil {
		write = e.wrapWrite(id, write)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		return fail(fmt.Errorf("live: the SDP offer is not usable: %w", err))
	}
	sender, err := pc.AddTrack(lt)
	if err != nil {
		return fail(err)
	}
	v := newViewer(id, cam, pc, sender, write, e.queueLen, e.log.With("camera", cameraID))
	v.useCache = !opt.NoGOPCache
	v.onFirst = func(d time.Duration, from string) { e.ttff.WithLabelValues(from).Observe(d.Seconds()) }
	v.addCandidates(offerSDP)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			v.connected()
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			e.remove(v.id)
		}
	})
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(fmt.Errorf("live: cannot answer the offer: %w", err))
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail(err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return fail(ErrClosed)
	}
	e.sessions[id] = v
	e.wg.Add(2)
	e.mu.Unlock()
	go func() { defer e.wg.Done(); v.readRTCP() }()
	go func() { defer e.wg.Done(); v.run(e.opts.ConnectTimeout, func() { e.remove(id) }) }()
	if relay && !strings.Contains(pc.LocalDescription().SDP, "typ relay") {
		v.log.Warn("no relay candidate from the hub's TURN server; browsers that cannot reach this node directly will not connect", "ice_servers", opt.ICEServers[0].URLs)
	}
	v.log.Info("live session offered", "codec", codec.MimeType, "payload_type", codec.PayloadType, "fmtp", codec.SDPFmtpLine, "gop_cache", v.useCache, "relay", relay)
	return pc.LocalDescription().SDP, id, nil
}

// Patch applies a trickle ICE fragment (RFC 8840, as WHEP's PATCH carries
// it) to a session: the browser's candidates gathered after its offer.
// An ICE restart (new ufrag) is refused with ErrICERestart.
func (e *Engine) Patch(sessionID, frag string) error {
	e.mu.Lock()
	v, ok := e.sessions[sessionID]
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownSession, sessionID)
	}
	var ufrag, mid string
	var cands []string
	for _, line := range strings.Split(frag, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=mid:"):
			mid = strings.TrimPrefix(line, "a=mid:")
		case strings.HasPrefix(line, "a=candidate:"):
			cands = append(cands, strings.TrimPrefix(line, "a="))
		case strings.HasPrefix(line, "a=") || strings.HasPrefix(line, "m="):
			// ice-pwd, end-of-candidates, ice-options, the m= line: nothing to do
		default:
			return fmt.Errorf("%w: unexpected line %q", ErrBadFragment, line)
		}
	}
	if rd := v.pc.RemoteDescription(); ufrag != "" && rd != nil && !strings.Contains(rd.SDP, "a=ice-ufrag:"+ufrag+"\r\n") && !strings.Contains(rd.SDP, "a=ice-ufrag:"+ufrag+"\n") {
		return ErrICERestart
	}
	for _, c := range cands {
		if _, err := ice.UnmarshalCandidate(c); err != nil {
			return fmt.Errorf("%w: candidate %q: %v", ErrBadFragment, c, err)
		}
		init := webrtc.ICECandidateInit{Candidate: c}
		if mid != "" {
			init.SDPMid = &mid
		}
		if err := v.pc.AddICECandidate(init); err != nil {
			return fmt.Errorf("%w: candidate %q: %v", ErrBadFragment, c, err)
		}
	}
	v.addCandidates(frag)
	return nil
}

// Info describes a session.
func (e *Engine) Info(sessionID string) (SessionInfo, error) {
	e.mu.Lock()
	v, ok := e.sessions[sessionID]
	e.mu.Unlock()
	if !ok {
		return SessionInfo{}, fmt.Errorf("%w: %q", ErrUnknownSession, sessionID)
	}
	v.mu.Lock()
	in := SessionInfo{ID: v.id, CameraID: v.cam.id, Stream: v.cam.stream, State: "connecting", Offered: v.offered,
		FirstFrame: v.firstFrame.Milliseconds(), StartedFrom: v.startedFrom}
	if !v.connectedAt.IsZero() {
		in.State, in.ConnectMS = "connected", v.connectedAt.Sub(v.offered).Milliseconds()
	}
	v.mu.Unlock()
	in.Path = v.path()
	in.Packets, in.Bytes, in.Dropped = v.packets.Load(), v.bytes.Load(), v.drops.Load()
	in.PLIs, in.GOPReplays = v.plis.Load(), v.replays.Load()
	if ld := v.pc.LocalDescription(); ld != nil {
		for _, typ := range []string{"host", "srflx", "relay"} {
			if strings.Contains(ld.SDP, " typ "+typ) {
				in.NodeCandidates = append(in.NodeCandidates, typ)
			}
		}
	}
	return in, nil
}

// CameraWarning is what live view should tell a viewer about a camera
// (B-frames), or "".
func (e *Engine) CameraWarning(cameraID string) string {
	e.mu.Lock()
	main, sub := e.cameras[cameraID], e.cameras[streamKey(cameraID, StreamSub)]
	e.mu.Unlock()
	if (main != nil && main.bFrames.Load()) || (sub != nil && sub.bFrames.Load()) {
		return BFramesWarning
	}
	return ""
}

// Describe implements prometheus.Collector.
func (e *Engine) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descViewers, descBytes, descDrops, descPLIs, descReplays} {
		ch <- d
	}
	e.ttff.Describe(ch)
}

// Collect implements prometheus.Collector: per-camera counters are read at
// scrape time, nothing is added to the per-packet path but atomic adds.
func (e *Engine) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	viewers := map[*camera]int{}
	for _, v := range e.sessions {
		viewers[v.cam]++
	}
	cams := make([]*camera, 0, len(e.cameras))
	for _, c := range e.cameras {
		cams = append(cams, c)
	}
	e.mu.Unlock()
	for _, c := range cams {
		ch <- prometheus.MustNewConstMetric(descViewers, prometheus.GaugeValue, float64(viewers[c]), c.id, c.stream)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(c.bytesOut.Load()), c.id, c.stream)
		ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(c.dropped.Load()), c.id, c.stream)
		ch <- prometheus.MustNewConstMetric(descPLIs, prometheus.CounterValue, float64(c.plis.Load()), c.id, c.stream)
		ch <- prometheus.MustNewConstMetric(descReplays, prometheus.CounterValue, float64(c.gopReplays.Load()), c.id, c.stream)
	}
	e.ttff.Collect(ch)
}

var (
	descViewers = prometheus.NewDesc("ronda_live_viewers", "Live sessions of the camera (connected or connecting).", []string{"camera", "stream"}, nil)
	descBytes   = prometheus.NewDesc("ronda_live_bytes_out_total", "RTP payload bytes sent to live viewers.", []string{"camera", "stream"}, nil)
	descDrops   = prometheus.NewDesc("ronda_live_dropped_frames_total", "Frames not sent to a viewer: its queue was full (a slow viewer skips to the next keyframe) or it waited for a keyframe.", []string{"camera", "stream"}, nil)
	descPLIs    = prometheus.NewDesc("ronda_live_pli_total", "Keyframe requests (PLI/FIR) from viewers.", []string{"camera", "stream"}, nil)
	descReplays = prometheus.NewDesc("ronda_live_gop_replays_total", "Keyframe requests answered by replaying the GOP cache.", []string{"camera", "stream"}, nil)
)

// Delete ends a session.
func (e *Engine) Delete(sessionID string) error {
	if !e.remove(sessionID) {
		return fmt.Errorf("%w: %q", ErrUnknownSession, sessionID)
	}
	return nil
}

func (e *Engine) remove(id string) bool {
	e.mu.Lock()
	v, ok := e.sessions[id]
	delete(e.sessions, id)
	e.mu.Unlock()
	if ok {
		v.close()
	}
	return ok
}

// Close ends every session, waits for their goroutines, unsubscribes from
// the cameras and releases the UDP port.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	ids := make([]string, 0, len(e.sessions))
	for id := range e.sessions {
		ids = append(ids, id)
	}
	cams := make([]*camera, 0, len(e.cameras))
	for _, c := range e.cameras {
		cams = append(cams, c)
	}
	e.mu.Unlock()
	for _, id := range ids {
		e.remove(id)
	}
	e.wg.Wait()
	for _, c := range cams {
		c.src.Remove(c)
	}
	return e.mux.Close() // closes the UDP socket too
}

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
