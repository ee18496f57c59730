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
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/ronda-jakarta/ronda/node/media"
)

// Sentinel errors.
var (
	ErrUnknownCamera  = errors.New("live: no such camera on this node")
	ErrNoVideo        = errors.New("live: camera has not delivered video yet; retry in a few seconds")
	ErrUnknownSession = errors.New("live: no such live session (it ended or never existed)")
	ErrNoH264         = errors.New("live: the offer has no H.264 video with packetization-mode=1; use a browser that decodes H.264 over WebRTC")
	ErrClosed         = errors.New("live: the live-view engine is shut down")
)

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
		cameras: map[string]*camera{}, sessions: map[string]*viewer{}}
	e.mux = webrtc.NewICEUDPMux(nil, conn)
	return e, nil
}

// UDPAddr is the UDP port's real address.
func (e *Engine) UDPAddr() string { return e.conn.LocalAddr().String() }

// AddCamera subscribes the engine to a camera's stream. The subscription is
// made at once and kept (not made lazily at the first viewer): packetizing
// one camera costs little next to its RTSP session, and it keeps the GOP
// cache warm, so the first viewer starts at once too. Adding a camera ID
// again replaces the old source and ends its viewers.
func (e *Engine) AddCamera(cameraID string, src *media.Fanout) {
	c := newCamera(cameraID, src, e.log.With("camera", cameraID))
	e.mu.Lock()
	old := e.cameras[cameraID]
	e.cameras[cameraID] = c
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
func (e *Engine) api(codec webrtc.RTPCodecParameters) (*webrtc.API, error) {
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
	se.SetLite(true)
	if len(e.opts.AnnounceIPs) > 0 {
		se.SetNAT1To1IPs(e.opts.AnnounceIPs, webrtc.ICECandidateTypeHost)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// Offer answers a WHEP offer for a camera. It does not wait on STUN: the
// only candidates are the engine's own host address(es), so gathering
// completes at once. The session's media starts when ICE/DTLS connect.
func (e *Engine) Offer(ctx context.Context, cameraID, offerSDP string) (answerSDP, sessionID string, err error) {
	e.mu.Lock()
	cam, closed := e.cameras[cameraID], e.closed
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
	codec, err := chooseH264(offerSDP, track.SPS)
	if err != nil {
		return "", "", err
	}
	api, err := e.api(codec)
	if err != nil {
		return "", "", err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
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
	v.log.Info("live session offered", "payload_type", codec.PayloadType, "fmtp", codec.SDPFmtpLine)
	return pc.LocalDescription().SDP, id, nil
}

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
