package live

import (
	"log/slog"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
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
	id  string
	src *media.Fanout
	log *slog.Logger

	mu       sync.Mutex
	track    *media.Track
	enc      *rtph264.Encoder
	nalus    [][]byte   // scratch for packetize
	gop      []gopEntry // frames since the last keyframe; empty when not usable
	gopBytes int
	viewers  map[*viewer]struct{}
}

// gopEntry is one cached frame: the access unit, and its packets once
// someone has watched (nil before).
type gopEntry struct {
	au *media.AccessUnit
	f  *frame
}

func newCamera(id string, src *media.Fanout, log *slog.Logger) *camera {
	return &camera{id: id, src: src, log: log, viewers: map[*viewer]struct{}{}}
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
	if t.Codec != media.CodecH264 {
		c.log.Warn("live view supports H.264 only; this camera's video cannot be viewed live", "codec", t.Codec)
		c.mu.Lock()
		c.track, c.enc = nil, nil
		c.resetGOP()
		c.mu.Unlock()
		return
	}
	enc := &rtph264.Encoder{PayloadType: 96, PayloadMaxSize: maxPayload, PacketizationMode: 1}
	if err := enc.Init(); err != nil {
		c.log.Error("live: RTP encoder", "err", err)
		return
	}
	c.mu.Lock()
	c.track, c.enc = &t, enc
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
	nalus := c.nalus[:0]
	if au.Key && !hasParameterSets(au.NALUs) {
		nalus = append(nalus, c.track.SPS, c.track.PPS)
	}
	for _, n := range au.NALUs {
		if len(n) > 0 && h264.NALUType(n[0]&0x1f) != h264.NALUTypeFillerData {
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
	ts := rtpTime(au.PTS)
	size := 0
	for _, p := range pkts {
		p.Timestamp = ts
		size += len(p.Payload)
	}
	return &frame{pkts: pkts, key: au.Key, ts: ts, bytes: size}
}

// join adds a viewer and returns a snapshot of the GOP cache, packetized,
// atomically, so the viewer sees every frame exactly once. With no usable
// cache the viewer starts at the next keyframe.
func (c *camera) join(v *viewer) []*frame {
	c.src.Watch(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.viewers[v] = struct{}{}
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

func (c *camera) leave(v *viewer) {
	c.mu.Lock()
	_, ok := c.viewers[v]
	delete(c.viewers, v)
	c.mu.Unlock()
	if ok {
		c.src.Watch(-1)
	}
}

// rtpTime converts a media-clock time to a 90 kHz RTP timestamp, rounded to
// the nearest tick (so ticks → Duration → ticks is exact), without
// overflowing int64 (d*90000 would after 28 hours).
func rtpTime(d time.Duration) uint32 {
	sec, rem := int64(d/time.Second), int64(d%time.Second)
	return uint32(sec*90000 + (rem*90000+int64(time.Second)/2)/int64(time.Second))
}

func hasParameterSets(nalus [][]byte) bool {
	var sps, pps bool
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = true
		case h264.NALUTypePPS:
			pps = true
		}
	}
	return sps && pps
}
