// Package ingest pulls one camera over RTSP (gortsplib), depacketizes its
// H.264 or H.265 stream once and hands access units to a media.Consumer (the camera's
// fan-out to recorder and live view). It reconnects with backoff and jitter
// and keeps a live health status.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"

	"github.com/ronda-jakarta/ronda/node/media"
)

// States of a camera.
const (
	StateConnecting = "connecting"
	StateStreaming  = "streaming"
	StateFailing    = "failing"
)

// Config configures one camera.
type Config struct {
	CameraID   string
	URL        string // rtsp://[user:pass@]host[:port]/path (Basic and Digest auth)
	Transport  string // "tcp" (default) or "udp"
	Logger     *slog.Logger
	Now        func() time.Time
	MinBackoff time.Duration // default 500 ms
	MaxBackoff time.Duration // default 30 s
}

// Status is a camera's live health.
type Status struct {
	State        string    `json:"state"`
	Reason       string    `json:"reason,omitempty"`
	Codec        string    `json:"codec,omitempty"`
	Width        int       `json:"width,omitempty"`
	Height       int       `json:"height,omitempty"`
	FPS          float64   `json:"fps"`
	BitrateBps   float64   `json:"bitrate_bps"`
	GOPFrames    int       `json:"gop_frames"`
	LastKeyframe time.Time `json:"last_keyframe"`
	Reconnects   int       `json:"reconnects"`
	ClockSteps   int       `json:"clock_steps"`
	// DroppedFrames counts frames the camera sent that could not be used
	// (broken RTP, a frame over 8 MiB); LastDrop says why the last one was.
	DroppedFrames int       `json:"dropped_frames"`
	PacketsLost   uint64    `json:"packets_lost"` // RTP sequence gaps (UDP loss, or a camera skipping)
	LastDrop      string    `json:"last_drop,omitempty"`
	Since         time.Time `json:"since"`
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// Camera pulls one camera.
type Camera struct {
	cfg Config
	out media.Consumer
	log *slog.Logger

	mu     sync.Mutex
	status Status
	// sliding-window counters for fps and bitrate
	winStart            time.Time
	winFrames, winBytes int
	framesSinceKeyframe int

	conn atomic.Pointer[lowatConn] // the current session's TCP connection
	live atomic.Bool               // someone watches live (SetLive)
}

// SetLive says whether anyone watches the camera live: receive batching
// then keeps live latency low (30 ms windows); otherwise it batches for the
// recorder (120 ms), costing less CPU. Safe from any goroutine.
func (c *Camera) SetLive(live bool) {
	c.live.Store(live)
	if lc := c.conn.Load(); lc != nil {
		lc.setLive(live)
	}
}

// New returns a camera; call Run.
func New(cfg Config, out media.Consumer) *Camera {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	return &Camera{cfg: cfg, out: out, log: cfg.Logger, status: Status{State: StateConnecting, Since: cfg.Now()}}
}

// Status returns the camera's health; safe from any goroutine.
func (c *Camera) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	if s.State == StateStreaming && c.cfg.Now().Sub(c.winStart) > 10*time.Second {
		s.FPS, s.BitrateBps = 0, 0 // stale window: nothing arrived lately
	}
	return s
}

func (c *Camera) setState(state, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status.State != state {
		c.status.Since = c.cfg.Now()
	}
	c.status.State, c.status.Reason = state, reason
}

// Run pulls the camera until ctx ends, reconnecting with exponential backoff
// and jitter.
func (c *Camera) Run(ctx context.Context) {
	attempt := 0
	for ctx.Err() == nil {
		if attempt == 0 {
			// Retrying after a failure keeps "failing" and its reason until
			// a connection works: an operator sees why, not a flicker.
			c.setState(StateConnecting, "")
		}
		started := c.cfg.Now()
		streamed, err := c.session(ctx)
		if ctx.Err() != nil {
			if streamed {
				c.out.OnStop(media.StopReason(media.StopNodeDown, "the node was stopped"))
			}
			return
		}
		code, reason := describe(err, streamed)
		if streamed {
			c.out.OnStop(media.StopReason(code, reason))
		}
		if streamed && c.cfg.Now().Sub(started) > 30*time.Second {
			attempt = 0
		}
		d := c.cfg.MinBackoff << min(attempt, 16)
		if d > c.cfg.MaxBackoff || d <= 0 {
			d = c.cfg.MaxBackoff
		}
		d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
		attempt++
		c.mu.Lock()
		c.status.Reconnects++
		c.mu.Unlock()
		c.setState(StateFailing, reason)
		c.log.Warn("camera stream failed; reconnecting", "reason", reason, "retry_in", d.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

// describe turns a session error into a reason a person can act on, and
// says whether the camera was offline or the stream broke in flight.
func describe(err error, streamed bool) (code, reason string) {
	code = media.StopCameraOffline
	if streamed {
		code = media.StopNetwork
	}
	if err == nil {
		return code, "stream ended"
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"), strings.Contains(msg, "no route to host"), strings.Contains(msg, "i/o timeout") && strings.Contains(msg, "dial"):
		return media.StopCameraOffline, "camera unreachable: " + msg
	case strings.Contains(msg, "401"), strings.Contains(msg, "Unauthorized"):
		return media.StopCameraOffline, "camera refused the credentials (check user and password in the camera URL): " + msg
	case strings.Contains(msg, "404"):
		return media.StopCameraOffline, "camera has no stream at this path (check the URL): " + msg
	case strings.Contains(msg, "expected 'RTSP/1.0'"), strings.Contains(msg, "unable to parse"), strings.Contains(msg, "invalid"):
		return code, "the device at this address does not answer in RTSP (check the port and the rtsp:// URL): " + msg
	case strings.Contains(msg, "timeout"), strings.Contains(msg, "deadline exceeded"):
		return code, "camera stopped answering (timed out; check the camera and the network to it): " + msg
	}
	return code, msg
}

var errUnsupported = errors.New("unsupported stream")

// session runs one RTSP session; streamed reports whether a track was announced.
func (c *Camera) session(ctx context.Context) (streamed bool, err error) {
	u, err := base.ParseURL(c.cfg.URL)
	if err != nil {
		return false, fmt.Errorf("camera URL %q is invalid: %w", c.cfg.URL, err)
	}
	proto := gortsplib.ProtocolTCP
	if c.cfg.Transport == "udp" {
		proto = gortsplib.ProtocolUDP
	}
	c.conn.Store(nil)
	client := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Protocol: &proto, ReadTimeout: 10 * time.Second, DialContext: dialer(&c.conn, &c.live),
		// UDP: room for a keyframe burst while the reader is busy (the
		// kernel caps it at net.core.rmem_max; see docs/deployment.md).
		UDPReadBufferSize: 4 << 20,
		OnPacketsLost: func(lost uint64) {
			c.mu.Lock()
			c.status.PacketsLost += lost
			c.mu.Unlock()
		},
		OnDecodeError: func(err error) { c.log.Debug("RTSP decode error", "err", err) },
	}
	if err := client.Start(); err != nil {
		return false, err
	}
	defer client.Close()
	stop := context.AfterFunc(ctx, client.Close)
	defer stop()

	desc, _, err := client.Describe(u)
	if err != nil {
		return false, err
	}
	var (
		f264 *format.H264
		f265 *format.H265
		medi *description.Media
		dec  interface {
			Decode(*rtp.Packet) ([][]byte, error)
		}
		d = &depacketizer{c: c, conn: &c.conn}
	)
	if medi = desc.FindFormat(&f264); medi != nil {
		d.sps, d.pps = f264.SPS, f264.PPS
		dec, err = f264.CreateDecoder()
	} else if medi = desc.FindFormat(&f265); medi != nil {
		d.h265 = true
		d.vps, d.sps, d.pps = f265.VPS, f265.SPS, f265.PPS
		dec, err = f265.CreateDecoder()
	} else {
		var codecs []string
		for _, m := range desc.Medias {
			for _, f := range m.Formats {
				codecs = append(codecs, f.Codec())
			}
		}
		return false, fmt.Errorf("%w: camera offers %s; this node records H.264 and H.265 (configure the camera for one of them)", errUnsupported, strings.Join(codecs, ", "))
	}
	if err != nil {
		return false, err
	}
	if _, err := client.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		return false, err
	}
	var forma format.Format = f265
	if f264 != nil {
		forma = f264
	}
	client.OnPacketRTP(medi, forma, func(pkt *rtp.Packet) {
		au, err := dec.Decode(pkt)
		if err != nil {
			switch {
			case errors.Is(err, rtph264.ErrMorePacketsNeeded), errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious),
				errors.Is(err, rtph265.ErrMorePacketsNeeded), errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious):
			default:
				d.drop(err)
			}
			return
		}
		// Our own unwrapping of the RTP timestamp: it needs no RTCP sender
		// report and no recognisable first packet (gortsplib's PTS decoder
		// never starts on cameras that put Annex-B inside RTP).
		d.accessUnit(au, d.unwrap(pkt.Timestamp))
	})
	if _, err := client.Play(nil); err != nil {
		return false, err
	}
	err = client.Wait()
	return d.announced, err
}

// depacketizer turns decoded access units into media.AccessUnits: it strips
// AUDs, tracks parameter sets from the SDP or in-band, waits for the first
// keyframe, and anchors the media clock to the wall clock.
type depacketizer struct {
	c             *Camera
	h265          bool
	vps, sps, pps []byte // vps: H.265 only
	announced     bool
	handedAny     bool // a frame was handed on (lastPTS is its PTS)
	started       bool
	anchorPTS     int64 // handed-on PTS (90 kHz) at the wall-clock anchor
	anchor        time.Time

	// Clock-step handling: a camera whose clock jumps (NTP step, reboot of
	// its encoder) must not make footage jump in time. ptsOffset keeps the
	// PTS handed on continuous; the wall anchor is reset.
	ptsOffset   int64
	lastPTS     int64
	lastArrival time.Time

	conn *atomic.Pointer[lowatConn] // the session's TCP connection (nil for UDP)

	// RTP timestamp unwrapping (32-bit, wraps every 13 h at 90 kHz).
	tsStarted bool
	tsPrev    uint32
	tsAcc     int64
}

// unwrap turns a 32-bit RTP timestamp into a 64-bit one, continuous across
// wrap-around (deltas are taken as signed 32-bit, so reordering is fine).
func (d *depacketizer) unwrap(ts uint32) int64 {
	if !d.tsStarted {
		d.tsStarted, d.tsPrev = true, ts
		return 0
	}
	d.tsAcc += int64(int32(ts - d.tsPrev))
	d.tsPrev = ts
	return d.tsAcc
}

// clockStepThreshold: media time and arrival time may disagree by this much
// (network jitter, a stalled camera) before we call it a clock step.
const clockStepThreshold = 3 * time.Second

func ticksToDur(t int64) time.Duration { return time.Duration(t) * time.Second / 90000 }

// NAL unit kinds the depacketizer tells apart, for either codec.
const (
	naluOther = iota
	naluAUD
	naluVPS
	naluSPS
	naluPPS
)

func (d *depacketizer) kind(n []byte) int {
	if d.h265 {
		if len(n) < 2 {
			return naluAUD // a one-byte H.265 NAL unit has no whole header: drop it
		}
		switch h265.NALUType((n[0] >> 1) & 0x3f) {
		case h265.NALUType_AUD_NUT:
			return naluAUD
		case h265.NALUType_VPS_NUT:
			return naluVPS
		case h265.NALUType_SPS_NUT:
			return naluSPS
		case h265.NALUType_PPS_NUT:
			return naluPPS
		}
		return naluOther
	}
	switch h264.NALUType(n[0] & 0x1f) {
	case h264.NALUTypeAccessUnitDelimiter:
		return naluAUD
	case h264.NALUTypeSPS:
		return naluSPS
	case h264.NALUTypePPS:
		return naluPPS
	}
	return naluOther
}

// drop counts a frame the camera sent that cannot be used and says why.
func (d *depacketizer) drop(err error) {
	c := d.c
	c.mu.Lock()
	c.status.DroppedFrames++
	first := c.status.LastDrop == ""
	c.status.LastDrop = err.Error()
	c.mu.Unlock()
	if first {
		c.log.Warn("camera sent a frame that cannot be used; dropping it (later ones are counted in dropped_frames)", "err", err)
	} else {
		c.log.Debug("camera frame dropped", "err", err)
	}
}

// splitAnnexB undoes Annex-B framing inside RTP payloads (some cameras send
// whole start-code-delimited frames as one "NAL unit"). gortsplib's H.264
// decoder does this itself; for H.265 it is done here.
func splitAnnexB(au [][]byte) ([][]byte, error) {
	for _, n := range au {
		if len(n) >= 3 && n[0] == 0 && n[1] == 0 && (n[2] == 1 || (n[2] == 0 && len(n) >= 4 && n[3] == 1)) {
			var out [][]byte
			for _, m := range au {
				if len(m) >= 3 && m[0] == 0 && m[1] == 0 && (m[2] == 1 || (m[2] == 0 && len(m) >= 4 && m[3] == 1)) {
					var ab h264.AnnexB
					if err := ab.Unmarshal(m); err != nil {
						return nil, fmt.Errorf("Annex-B inside RTP: %w", err)
					}
					out = append(out, ab...)
				} else {
					out = append(out, m)
				}
			}
			return out, nil
		}
	}
	return au, nil
}

func (d *depacketizer) accessUnit(au [][]byte, pts int64) {
	c := d.c
	if d.h265 {
		var err error
		if au, err = splitAnnexB(au); err != nil {
			d.drop(err)
			return
		}
	}
	changed := false
	size := 0
	n := 0
	for _, nalu := range au {
		if len(nalu) == 0 {
			continue
		}
		switch d.kind(nalu) {
		case naluAUD:
			continue
		case naluVPS:
			if string(nalu) != string(d.vps) {
				d.vps, changed = append([]byte(nil), nalu...), true
			}
		case naluSPS:
			if string(nalu) != string(d.sps) {
				d.sps, changed = append([]byte(nil), nalu...), true
			}
		case naluPPS:
			if string(nalu) != string(d.pps) {
				d.pps, changed = append([]byte(nil), nalu...), true
			}
		}
		size += len(nalu)
		n++
	}
	if n == 0 {
		return // only AUDs or empty NAL units: nothing to hand on
	}
	if d.sps == nil || d.pps == nil || (d.h265 && d.vps == nil) {
		return // no parameter sets yet (neither in the SDP nor in-band)
	}
	if !d.announced || changed {
		t, err := d.track()
		if err != nil {
			c.log.Warn("camera sent an SPS that does not parse; waiting for another", "err", err)
			d.sps = nil
			return
		}
		c.mu.Lock()
		c.status.Codec, c.status.Width, c.status.Height = t.Codec, t.Width, t.Height
		c.mu.Unlock()
		c.out.OnTrack(t)
		d.announced = true
	}
	var key bool
	if d.h265 {
		key = h265.IsRandomAccess(au)
	} else {
		key = h264.IsRandomAccess(au)
	}
	now := c.cfg.Now()
	if !d.started {
		if !key {
			return
		}
		d.started = true
		d.anchorPTS, d.anchor = pts, now
		d.lastPTS, d.lastArrival = pts, now
		c.setState(StateStreaming, "")
	}
	handed := pts + d.ptsOffset
	if handed == d.lastPTS && d.handedAny {
		// A second frame with the same timestamp (a camera that splits a
		// frame with a stray marker bit, or repeats one): a sample of zero
		// duration breaks players, so it is dropped and counted.
		d.drop(errors.New("camera sent two frames with the same RTP timestamp; the second was dropped"))
		return
	}
	d.handedAny = true
	mediaDelta, arrivalDelta := ticksToDur(handed-d.lastPTS), now.Sub(d.lastArrival)
	if handed < d.lastPTS || absDur(mediaDelta-arrivalDelta) > clockStepThreshold {
		// Continue the timeline as if the frame came one arrival interval later.
		d.ptsOffset += d.lastPTS + int64(max(arrivalDelta, time.Millisecond)*90000/time.Second) - handed
		handed = pts + d.ptsOffset
		d.anchorPTS, d.anchor = handed, now
		c.mu.Lock()
		c.status.ClockSteps++
		c.mu.Unlock()
		c.log.Warn("camera clock stepped; timeline kept continuous", "media_delta", mediaDelta, "arrival_delta", arrivalDelta)
	} else if drift := d.anchor.Add(ticksToDur(handed - d.anchorPTS)).Sub(now); absDur(drift) > clockStepThreshold {
		d.anchorPTS, d.anchor = handed, now // slow drift of the camera's clock: re-anchor
	}
	d.lastPTS, d.lastArrival = handed, now
	// No copy: gortsplib v5 gives every received packet its own buffer (TCP:
	// InterleavedFrame.Unmarshal; UDP: a new buffer per datagram) and joins
	// fragmented NAL units into a new one, so consumers may keep these
	// slices. Capacities are clipped so no consumer can append into a
	// neighbour. (Checked again on every gortsplib upgrade: see DESIGN.md.)
	nalus := make([][]byte, 0, n)
	for _, nalu := range au {
		if len(nalu) == 0 || d.kind(nalu) == naluAUD {
			continue
		}
		nalus = append(nalus, nalu[:len(nalu):len(nalu)])
	}
	ptsDur := ticksToDur(handed)
	wall := d.anchor.Add(ticksToDur(handed - d.anchorPTS))
	if bps := c.account(size, key, wall); bps > 0 && d.conn != nil {
		if lc := d.conn.Load(); lc != nil {
			lc.setBitrate(bps)
		}
	}
	c.out.OnAccessUnit(&media.AccessUnit{PTS: ptsDur, Wall: wall, Key: key, NALUs: nalus})
}

// track describes the stream from the current parameter sets.
func (d *depacketizer) track() (media.Track, error) {
	if d.h265 {
		var sps h265.SPS
		if err := sps.Unmarshal(d.sps); err != nil {
			return media.Track{}, err
		}
		return media.Track{Codec: media.CodecH265, VPS: d.vps, SPS: d.sps, PPS: d.pps, Width: sps.Width(), Height: sps.Height()}, nil
	}
	var sps h264.SPS
	if err := sps.Unmarshal(d.sps); err != nil {
		return media.Track{}, err
	}
	return media.Track{Codec: media.CodecH264, SPS: d.sps, PPS: d.pps, Width: sps.Width(), Height: sps.Height()}, nil
}

// account updates the health counters; it returns the bitrate when a new
// measurement window closed (else 0).
func (c *Camera) account(size int, key bool, wall time.Time) (bps float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	if c.winStart.IsZero() {
		c.winStart = now
	}
	c.winFrames++
	c.winBytes += size
	if el := now.Sub(c.winStart); el >= 2*time.Second {
		c.status.FPS = float64(c.winFrames) / el.Seconds()
		c.status.BitrateBps = float64(c.winBytes*8) / el.Seconds()
		c.winStart, c.winFrames, c.winBytes = now, 0, 0
		bps = c.status.BitrateBps
	}
	c.framesSinceKeyframe++
	if key {
		if !c.status.LastKeyframe.IsZero() {
			c.status.GOPFrames = c.framesSinceKeyframe
		}
		c.framesSinceKeyframe = 0
		c.status.LastKeyframe = wall
	}
	return bps
}
