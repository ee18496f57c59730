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
// each access unit once and hands the packets to every viewer.
type camera struct {
	id  string
	src *media.Fanout
	log *slog.Logger

	mu       sync.Mutex
	track    *media.Track
	enc      *rtph264.Encoder
	nalus    [][]byte // scratch for OnAccessUnit (the ingest calls it from one goroutine)
	gop      []*frame // frames since the last keyframe; empty when not usable
	gopBytes int
	viewers  map[*viewer]struct{}
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
		return
	}
	pkts, err := c.enc.Encode(nalus)
	if err != nil {
		c.log.Warn("live: packetize", "err", err)
		return
	}
	ts := rtpTime(au.PTS)
	size := 0
	for _, p := range pkts {
		p.Timestamp = ts
		size += len(p.Payload)
	}
	f := &frame{pkts: pkts, key: au.Key, ts: ts, bytes: size}
	if au.Key {
		c.resetGOP()
	}
	if len(c.gop) > 0 || au.Key {
		if len(c.gop) < maxGOPFrames && c.gopBytes+size <= maxGOPBytes {
			c.gop = append(c.gop, f)
			c.gopBytes += size
		} else {
			c.resetGOP() // a partial GOP is useless to a new viewer
		}
	}
	for v := range c.viewers {
		v.offer(f)
	}
}

// join adds a viewer and returns a snapshot of the GOP cache, atomically,
// so the viewer sees every frame exactly once. With no usable cache the
// viewer starts at the next keyframe.
func (c *camera) join(v *viewer) []*frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.viewers[v] = struct{}{}
	if len(c.gop) == 0 {
		v.skipping = true
		return nil
	}
	return append([]*frame(nil), c.gop...)
}

func (c *camera) leave(v *viewer) {
	c.mu.Lock()
	delete(c.viewers, v)
	c.mu.Unlock()
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
