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

// maxGOPCache bounds the GOP cache (frames); a camera with a longer GOP
// still works, new viewers then wait for the next keyframe.
const maxGOPCache = 600

// frame is one access unit packetized once for every viewer. Packets are
// shared read-only: writers copy the header before sending.
type frame struct {
	pkts []*rtp.Packet
	key  bool
	ts   uint32
}

// camera is the live side of one camera: a media.Consumer that packetizes
// and fans frames out to viewers.
type camera struct {
	id  string
	log *slog.Logger

	mu      sync.Mutex
	track   *media.Track
	enc     *rtph264.Encoder
	gop     []*frame // frames since the last keyframe
	viewers map[*viewer]struct{}
}

func newCamera(id string, log *slog.Logger) *camera {
	return &camera{id: id, log: log, viewers: map[*viewer]struct{}{}}
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
	enc := &rtph264.Encoder{PayloadType: 96, PayloadMaxSize: maxPayload, PacketizationMode: 1}
	if err := enc.Init(); err != nil {
		c.log.Error("live: RTP encoder", "err", err)
		return
	}
	c.mu.Lock()
	c.track, c.enc, c.gop = &t, enc, nil
	c.mu.Unlock()
}

// OnStop implements media.Consumer.
func (c *camera) OnStop(string) {
	c.mu.Lock()
	c.gop = nil
	c.mu.Unlock()
}

// OnAccessUnit implements media.Consumer.
func (c *camera) OnAccessUnit(au *media.AccessUnit) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enc == nil {
		return
	}
	nalus := make([][]byte, 0, len(au.NALUs)+2)
	if au.Key && !hasParameterSets(au.NALUs) {
		nalus = append(nalus, c.track.SPS, c.track.PPS)
	}
	for _, n := range au.NALUs {
		if len(n) > 0 && h264.NALUType(n[0]&0x1f) != h264.NALUTypeFillerData {
			nalus = append(nalus, n)
		}
	}
	pkts, err := c.enc.Encode(nalus)
	if err != nil {
		c.log.Warn("live: packetize", "err", err)
		return
	}
	ts := uint32(au.PTS * 90000 / time.Second)
	for _, p := range pkts {
		p.Timestamp = ts
	}
	f := &frame{pkts: pkts, key: au.Key, ts: ts}
	if au.Key {
		c.gop = c.gop[:0]
	}
	if len(c.gop) < maxGOPCache && (len(c.gop) > 0 || au.Key) {
		c.gop = append(c.gop, f)
	}
	for v := range c.viewers {
		v.offer(f)
	}
}

// join adds a viewer and returns a snapshot of the GOP cache, atomically,
// so the viewer sees every frame exactly once.
func (c *camera) join(v *viewer) []*frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.viewers[v] = struct{}{}
	return append([]*frame(nil), c.gop...)
}

func (c *camera) leave(v *viewer) {
	c.mu.Lock()
	delete(c.viewers, v)
	c.mu.Unlock()
}

func hasParameterSets(nalus [][]byte) bool {
	for _, n := range nalus {
		if len(n) > 0 && h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
			return true
		}
	}
	return false
}
