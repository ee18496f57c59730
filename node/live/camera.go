package live

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"

	"github.com/ronda-jakarta/ronda/node/media"
)

// maxPayload keeps RTP packets under typical path MTUs with SRTP overhead.
const maxPayload = 1200

// The GOP cache is bounded in frames and bytes. A camera whose GOP outgrows
// it still works: its cache is dropped until the next keyframe, and a new
// viewer then waits for that keyframe instead of getting a partial GOP.
const (
	maxGOPFrames = 600
	maxGOPBytes  = 16 << 20
)

// frame is one access unit packetized once for every viewer. Packets are
// shared read-only: writers copy the header before sending.
type frame struct {
	pkts  []*rtp.Packet
	key   bool
	ts    uint32 // RTP timestamp (90 kHz) on the camera's media clock
	bytes int
}

// camera is the live side of one camera: a media.Consumer that packetizes
// each access unit once and hands the packets to every viewer. While nobody
// watches it only keeps the current GOP's access units (references, no copy)
// and packetizes nothing; the first viewer's join packetizes the cache, and
// from then on every frame is packetized once as it arrives.
type camera struct {
	id     string // the camera's id
	stream string // StreamMain or StreamSub
	src    *media.Fanout
	log    *slog.Logger

	// counters for metrics, across all viewers and sessions
	bytesOut   atomic.Int64 // RTP payload bytes sent
	dropped    atomic.Int64 // frames not sent to a viewer (queue full, waiting for a keyframe)
	plis       atomic.Int64 // PLI/FIR received
	gopReplays atomic.Int64 // GOP-cache replays answering a PLI/FIR
	bFrames    atomic.Bool  // frames arrive out of presentation order

	mu       sync.Mutex
	track    *media.Track
	enc      encoder
	lastPTS  time.Duration
	hasPTS   bool
	nalus    [][]byte   // scratch for packetize
	gop      []gopEntry // frames since the last keyframe; empty when not usable
	gopBytes int
	viewers  map[*viewer]struct{}
}

// encoder is rtph264.Encoder or rtph265.Encoder.
type encoder interface {
	Encode(au [][]byte) ([]*rtp.Packet, error)
}

// gopEntry is one cached frame: the access unit, and its packets once
// someone has watched (nil before).
type gopEntry struct {
	au *media.AccessUnit
	f  *frame
}

func newCamera(id string, src *media.Fanout, log *slog.Logger) *camera {
	return &camera{id: id, stream: StreamMain, src: src, log: log, viewers: map[*viewer]struct{}{}}
}

func (c *camera) currentTrack() (media.Track, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.track == nil {
		return media.Track{}, false
	}
	return *c.track, true
}

// OnTrack implements media.Consumer.
func (c *camera) OnTrack(t media.Track) {
	var enc encoder
	switch t.Codec {
	case media.CodecH264:
		e := &rtph264.Encoder{PayloadType: 96, PayloadMaxSize: maxPayload, PacketizationMode: 1}
		if err := e.Init(); err != nil {
			c.log.Error("live: RTP encoder", "err", err)
			return
		}
		enc = e
	case media.CodecH265:
		e := &rtph265.Encoder{PayloadType: 96, PayloadMaxSize: maxPayload}
		if err := e.Init(); err != nil {
			c.log.Error("live: RTP encoder", "err", err)
			return
		}
		enc = e
	default:
		c.log.Warn("live view supports H.264 and H.265 only; this camera's video cannot be viewed live", "codec", t.Codec)
		c.mu.Lock()
		c.track, c.enc = nil, nil
		c.resetGOP()
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	c.track, c.enc, c.hasPTS = &t, enc, false
	c.resetGOP()
	c.mu.Unlock()
}

// OnStop implements media.Consumer. Viewers stay connected and resume at the
// first keyframe of the camera's next session.
func (c *camera) OnStop(string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.track, c.enc = nil, nil
	c.resetGOP()
	for v := range c.viewers {
		v.skipping = true
	}
}

func (c *camera) resetGOP() {
	clear(c.gop)
	c.gop, c.gopBytes = c.gop[:0], 0
}

// OnAccessUnit implements media.Consumer. It never blocks: each viewer's
// offer is a non-blocking queue insert.
func (c *camera) OnAccessUnit(au *media.AccessUnit) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enc == nil || len(au.NALUs) == 0 {
		return
	}
	// A frame presented before the previous one (by less than a second: a
	// clock step back is a discontinuity, not reordering) means B-frames.
	if c.hasPTS && au.PTS < c.lastPTS && c.lastPTS-au.PTS < time.Second && !c.bFrames.Load() {
		c.bFrames.Store(true)
		c.log.Warn(BFramesWarning)
	}
	c.lastPTS, c.hasPTS = au.PTS, true
	if au.Key {
		c.resetGOP()
	}
	e := gopEntry{au: au}
	if len(c.viewers) > 0 {
		if e.f = c.packetize(au); e.f == nil {
			return
		}
	}
	if len(c.gop) > 0 || au.Key {
		size := 0
		for _, n := range au.NALUs {
			size += len(n)
		}
		if len(c.gop) < maxGOPFrames && c.gopBytes+size <= maxGOPBytes {
			c.gop = append(c.gop, e)
			c.gopBytes += size
		} else {
			c.resetGOP() // a partial GOP is useless to a new viewer
		}
	}
	if e.f != nil {
		for v := range c.viewers {
			v.offer(e.f)
		}
	}
}

// packetize turns an access unit into RTP packets (parameter sets before a
// keyframe that lacks them, filler dropped). Called with c.mu held, in frame
// order: the encoder is stateful. Nil if there is nothing to send.
func (c *camera) packetize(au *media.AccessUnit) *frame {
	h265 := c.track.Codec == media.CodecH265
	nalus := c.nalus[:0]
	if au.Key && !hasParameterSets(au.NALUs, h265) {
		if h265 {
			nalus = append(nalus, c.track.VPS)
		}
		nalus = append(nalus, c.track.SPS, c.track.PPS)
	}
	for _, n := range au.NALUs {
		if len(n) > 0 && !isFiller(n, h265) {
			nalus = append(nalus, n)
		}
	}
	c.nalus = nalus
	defer clear(c.nalus) // keep no references to the access unit
	if len(nalus) == 0 {
		return nil
	}
	pkts, err := c.enc.Encode(nalus)
	if err != nil {
		c.log.Warn("live: packetize", "err", err)
		return nil
	}
	ts := media.RTPTime(au.PTS)
	size := 0
	for _, p := range pkts {
		p.Timestamp = ts
		size += len(p.Payload)
	}
	return &frame{pkts: pkts, key: au.Key, ts: ts, bytes: size}
}

// join adds a viewer and returns a snapshot of the GOP cache, packetized,
// atomically, so the viewer sees every frame exactly once. With no usable
// cache (or useCache false) the viewer starts at the next keyframe.
func (c *camera) join(v *viewer, useCache bool) []*frame {
	c.src.Watch(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.viewers[v] = struct{}{}
	if !useCache {
		v.skipping = true
		return nil
	}
	return c.snapshot(v)
}

// snapshot packetizes the GOP cache for v. Without a usable cache v waits
// for the next keyframe. Called with c.mu held.
func (c *camera) snapshot(v *viewer) []*frame {
	cache := make([]*frame, 0, len(c.gop))
	for i := range c.gop {
		e := &c.gop[i]
		if e.f == nil {
			e.f = c.packetize(e.au)
		}
		if e.f != nil {
			cache = append(cache, e.f)
		}
	}
	if len(cache) == 0 || !cache[0].key {
		v.skipping = true
		return nil
	}
	return cache
}

// resync answers a viewer's PLI/FIR: it empties the viewer's queue and
// returns the GOP cache (the newest keyframe and every frame since), which
// the writer replays so the browser's decoder recovers at once instead of
// waiting up to a GOP for the camera's next keyframe. Without a usable cache
// the viewer skips to the next keyframe. Called by the viewer's writer.
func (c *camera) resync(v *viewer) []*frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.viewers[v]; !ok {
		return nil
	}
	for len(v.queue) > 0 { // frames already queued are in the cache (or older)
		<-v.queue
	}
	v.skipping = false
	return c.snapshot(v)
}

func (c *camera) leave(v *viewer) {
	c.mu.Lock()
	_, ok := c.viewers[v]
	delete(c.viewers, v)
	c.mu.Unlock()
	if ok {
		c.src.Watch(-1)
	}
}

// hasParameterSets reports whether an access unit carries its own parameter
// sets (SPS and PPS; for H.265 also the VPS).
func hasParameterSets(nalus [][]byte, h265codec bool) bool {
	var vps, sps, pps bool
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		if h265codec {
			switch h265.NALUType((n[0] >> 1) & 0x3f) {
			case h265.NALUType_VPS_NUT:
				vps = true
			case h265.NALUType_SPS_NUT:
				sps = true
			case h265.NALUType_PPS_NUT:
				pps = true
			}
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = true
		case h264.NALUTypePPS:
			pps = true
		}
	}
	return sps && pps && (vps || !h265codec)
}

// isFiller: filler data NAL units (cameras pad to a constant bitrate).
func isFiller(n []byte, h265codec bool) bool {
	if h265codec {
		return h265.NALUType((n[0]>>1)&0x3f) == h265.NALUType_FD_NUT
	}
	return h264.NALUType(n[0]&0x1f) == h264.NALUTypeFillerData
}
