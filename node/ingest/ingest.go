// Package ingest pulls one camera over RTSP (gortsplib), depacketizes its
// H.264 stream once and hands access units to a media.Consumer (the camera's
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
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
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
	Since        time.Time `json:"since"`
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
		c.setState(StateConnecting, "")
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
	var conn atomic.Pointer[lowatConn]
	client := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Protocol: &proto, ReadTimeout: 10 * time.Second, DialContext: dialer(&conn)}
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
	var forma *format.H264
	medi := desc.FindFormat(&forma)
	if medi == nil {
		var codecs []string
		for _, m := range desc.Medias {
			for _, f := range m.Formats {
				codecs = append(codecs, f.Codec())
			}
		}
		return false, fmt.Errorf("%w: camera offers %s; this node records H.264 (configure the camera for H.264)", errUnsupported, strings.Join(codecs, ", "))
	}
	dec, err := forma.CreateDecoder()
	if err != nil {
		return false, err
	}
	if _, err := client.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		return false, err
	}
	d := &depacketizer{c: c, sps: forma.SPS, pps: forma.PPS, conn: &conn}
	client.OnPacketRTP(medi, forma, func(pkt *rtp.Packet) {
		au, err := dec.Decode(pkt)
		if err != nil {
			if !errors.Is(err, rtph264.ErrMorePacketsNeeded) && !errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
				c.log.Debug("RTP decode", "err", err)
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
	c         *Camera
	sps, pps  []byte
	announced bool
	started   bool
	anchorPTS int64 // handed-on PTS (90 kHz) at the wall-clock anchor
	anchor    time.Time

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

func (d *depacketizer) accessUnit(au [][]byte, pts int64) {
	c := d.c
	changed := false
	size := 0
	n := 0
	for _, nalu := range au {
		if len(nalu) == 0 {
			continue
		}
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeAccessUnitDelimiter:
			continue
		case h264.NALUTypeSPS:
			if string(nalu) != string(d.sps) {
				d.sps, changed = append([]byte(nil), nalu...), true
			}
		case h264.NALUTypePPS:
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
	if d.sps == nil || d.pps == nil {
		return // no parameter sets yet (neither in the SDP nor in-band)
	}
	if !d.announced || changed {
		var sps h264.SPS
		if err := sps.Unmarshal(d.sps); err != nil {
			c.log.Warn("camera sent an SPS that does not parse; waiting for another", "err", err)
			d.sps = nil
			return
		}
		c.mu.Lock()
		c.status.Codec, c.status.Width, c.status.Height = media.CodecH264, sps.Width(), sps.Height()
		c.mu.Unlock()
		c.out.OnTrack(media.Track{Codec: media.CodecH264, SPS: d.sps, PPS: d.pps, Width: sps.Width(), Height: sps.Height()})
		d.announced = true
	}
	key := h264.IsRandomAccess(au)
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
		if len(nalu) == 0 || h264.NALUType(nalu[0]&0x1f) == h264.NALUTypeAccessUnitDelimiter {
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
