// Package camsim simulates IP cameras: an RTSP server (gortsplib) serving N
// cameras that loop an H.264 clip with continuous, monotonically increasing
// timestamps, SPS/PPS in the SDP and in-band, paced by the wall clock. A
// target bitrate is reached by padding access units with filler-data NAL
// units, which decoders ignore, so a small clip can stand in for a 4 Mbit/s
// camera.
package camsim

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// Config configures the simulator.
type Config struct {
	Addr     string // RTSP listen address, e.g. 127.0.0.1:8554 (":0" style ports allowed)
	Cameras  int
	ClipPath string // H.264 Annex-B elementary stream
	Bitrate  int    // target bits/s; 0 = the clip's own rate
	FPS      float64
	Quirks   Quirks // misbehaviours of real cameras, for tests
	Logger   *slog.Logger
}

// Quirks are misbehaviours seen in real cameras; each can be switched on to
// test that a node survives it.
type Quirks struct {
	NoSDPParameterSets    bool          // SPS/PPS only in-band (none in the SDP)
	NoInBandParameterSets bool          // SPS/PPS only in the SDP (stripped from the stream)
	AUDFirst              bool          // an access unit delimiter before every frame
	SEIFirst              bool          // an SEI NAL unit before every frame
	AnnexBInRTP           bool          // each frame sent as one NAL unit with Annex-B start codes inside
	StartTimestamp        *uint32       // first RTP timestamp (e.g. just below 2^32 to wrap around)
	ClockStepAfter        time.Duration // after this long, the camera's clock jumps ...
	ClockStepBy           time.Duration // ... by this much (forward)
	NoRTCPSenderReports   bool          // no RTCP SR at all
}

// Server is a running simulator.
type Server struct {
	cfg    Config
	log    *slog.Logger
	clip   *Clip
	srv    *gortsplib.Server
	mu     sync.RWMutex
	cams   map[string]*camera // by path "camN"
	addr   string
	stop   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

type camera struct {
	path   string
	stream *gortsplib.ServerStream
	media  *description.Media
	format *format.H264
}

// New parses the clip and prepares the server.
func New(cfg Config) (*Server, error) {
	if cfg.Cameras < 1 {
		return nil, fmt.Errorf("camsim: need at least one camera (got %d)", cfg.Cameras)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	raw, err := os.ReadFile(cfg.ClipPath)
	if err != nil {
		return nil, fmt.Errorf("camsim: clip: %w", err)
	}
	clip, err := ParseClip(raw)
	if err != nil {
		return nil, fmt.Errorf("camsim: clip %s: %w", cfg.ClipPath, err)
	}
	if cfg.FPS <= 0 {
		cfg.FPS = clip.FPS
	}
	clip.Pad(cfg.Bitrate, cfg.FPS)
	return &Server{cfg: cfg, log: cfg.Logger, clip: clip, cams: map[string]*camera{}, stop: make(chan struct{})}, nil
}

// Start listens and starts every camera.
func (s *Server) Start() error {
	// Reserve the address ourselves so ":0" gives a known port.
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("camsim: listen %s: %w", s.cfg.Addr, err)
	}
	s.addr = l.Addr().String()
	l.Close()
	s.srv = &gortsplib.Server{Handler: &handler{s: s}, RTSPAddress: s.addr, DisableRTCPSenderReports: s.cfg.Quirks.NoRTCPSenderReports}
	if err := s.srv.Start(); err != nil {
		return fmt.Errorf("camsim: start RTSP server on %s: %w", s.addr, err)
	}
	for i := 1; i <= s.cfg.Cameras; i++ {
		f := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: s.clip.SPS, PPS: s.clip.PPS}
		if s.cfg.Quirks.NoSDPParameterSets {
			f.SPS, f.PPS = nil, nil
		}
		m := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{f}}
		st := &gortsplib.ServerStream{Server: s.srv, Desc: &description.Session{Medias: []*description.Media{m}}}
		if err := st.Initialize(); err != nil {
			s.Close()
			return err
		}
		c := &camera{path: fmt.Sprintf("cam%d", i), stream: st, media: m, format: f}
		s.mu.Lock()
		s.cams[c.path] = c
		s.mu.Unlock()
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.run(c) }()
	}
	return nil
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.addr }

// URL is camera i's RTSP URL (1-based).
func (s *Server) URL(i int) string { return fmt.Sprintf("rtsp://%s/cam%d", s.addr, i) }

// Close stops the cameras and the server.
func (s *Server) Close() {
	s.closed.Do(func() {
		close(s.stop)
		s.wg.Wait()
		s.mu.RLock()
		defer s.mu.RUnlock()
		for _, c := range s.cams {
			c.stream.Close()
		}
		if s.srv != nil {
			s.srv.Close()
		}
	})
}

// run paces one camera's access units by the wall clock, looping the clip
// with timestamps that keep increasing across loops.
func (s *Server) run(c *camera) {
	enc, err := c.format.CreateEncoder()
	if err != nil {
		s.log.Error("camsim: RTP encoder", "err", err)
		return
	}
	frameTicks := uint32(90000 / s.cfg.FPS)
	frameDur := time.Duration(float64(time.Second) / s.cfg.FPS)
	// Start each camera at a different keyframe so they are not in lockstep.
	keys := s.clip.Keyframes()
	idx := keys[rand.IntN(len(keys))]
	q := s.cfg.Quirks
	ts := rand.Uint32()
	if q.StartTimestamp != nil {
		ts = *q.StartTimestamp
	}
	stepped := false
	start := time.Now()
	for n := 0; ; n++ {
		select {
		case <-s.stop:
			return
		case <-time.After(time.Until(start.Add(time.Duration(n) * frameDur))):
		}
		if q.ClockStepAfter > 0 && !stepped && time.Since(start) >= q.ClockStepAfter {
			ts += uint32(q.ClockStepBy * 90000 / time.Second)
			stepped = true
		}
		pkts, err := enc.Encode(q.apply(s.clip.AUs[idx]))
		if err != nil {
			s.log.Error("camsim: encode", "camera", c.path, "err", err)
			return
		}
		for _, p := range pkts {
			p.Timestamp = ts
			if err := c.stream.WritePacketRTP(c.media, p); err != nil {
				s.log.Debug("camsim: write", "camera", c.path, "err", err)
			}
		}
		ts += frameTicks
		idx = (idx + 1) % len(s.clip.AUs)
	}
}

// sei is a user-data-unregistered SEI message (payload type 5, 17 bytes).
var sei = append(append([]byte{0x06, 0x05, 0x11}, []byte("RONDA-CAMSIM-SEI!")...), 0x80)

// apply turns a clean access unit into what a quirky camera sends.
func (q Quirks) apply(au [][]byte) [][]byte {
	if !q.NoInBandParameterSets && !q.AUDFirst && !q.SEIFirst && !q.AnnexBInRTP {
		return au
	}
	out := make([][]byte, 0, len(au)+2)
	if q.AUDFirst {
		out = append(out, []byte{0x09, 0xf0})
	}
	if q.SEIFirst {
		out = append(out, sei)
	}
	for _, n := range au {
		if t := n[0] & 0x1f; q.NoInBandParameterSets && (t == 7 || t == 8) {
			continue
		}
		out = append(out, n)
	}
	if q.AnnexBInRTP {
		var joined []byte
		for _, n := range out {
			joined = append(append(joined, 0, 0, 0, 1), n...)
		}
		return [][]byte{joined}
	}
	return out
}

type handler struct{ s *Server }

func (h *handler) stream(path string) (*base.Response, *gortsplib.ServerStream, error) {
	h.s.mu.RLock()
	c, ok := h.s.cams[strings.Trim(path, "/")]
	h.s.mu.RUnlock()
	if !ok {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, fmt.Errorf("no camera at %q", path)
	}
	return &base.Response{StatusCode: base.StatusOK}, c.stream, nil
}

func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return h.stream(ctx.Path)
}

func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return h.stream(ctx.Path)
}

func (h *handler) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// Clip is a parsed H.264 elementary stream.
type Clip struct {
	AUs      [][][]byte // access units, NAL units without start codes
	SPS, PPS []byte
	FPS      float64
	filler   []byte
}

// ParseClip splits an Annex-B stream into access units.
func ParseClip(raw []byte) (*Clip, error) {
	nalus := splitAnnexB(raw)
	if len(nalus) == 0 {
		return nil, errors.New("not an H.264 Annex-B stream: no start codes")
	}
	c := &Clip{}
	var cur [][]byte
	hasVCL := false
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		typ := h264.NALUType(n[0] & 0x1f)
		switch typ {
		case h264.NALUTypeSPS:
			if c.SPS == nil {
				c.SPS = n
			}
		case h264.NALUTypePPS:
			if c.PPS == nil {
				c.PPS = n
			}
		case h264.NALUTypeAccessUnitDelimiter:
			continue
		}
		vcl := typ == h264.NALUTypeIDR || typ == h264.NALUTypeNonIDR
		firstSlice := vcl && len(n) > 1 && n[1]&0x80 != 0 // first_mb_in_slice == 0
		if hasVCL && (!vcl || firstSlice) {
			c.AUs = append(c.AUs, cur)
			cur, hasVCL = nil, false
		}
		cur = append(cur, n)
		hasVCL = hasVCL || vcl
	}
	if hasVCL {
		c.AUs = append(c.AUs, cur)
	}
	if c.SPS == nil || c.PPS == nil {
		return nil, errors.New("no SPS/PPS in the clip (encode with repeat-headers)")
	}
	if len(c.Keyframes()) == 0 {
		return nil, errors.New("no IDR frame in the clip")
	}
	var sps h264.SPS
	if err := sps.Unmarshal(c.SPS); err != nil {
		return nil, fmt.Errorf("SPS: %w", err)
	}
	c.FPS = sps.FPS()
	if c.FPS <= 0 || c.FPS > 120 {
		c.FPS = 15
	}
	return c, nil
}

// splitAnnexB splits a whole Annex-B stream at its start codes (00 00 01,
// with or without a leading zero byte).
func splitAnnexB(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+2 < len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				end := i
				for end > start && b[end-1] == 0 {
					end--
				}
				out = append(out, b[start:end])
			}
			start = i + 3
			i += 2
		}
	}
	if start >= 0 && start < len(b) {
		out = append(out, b[start:])
	}
	return out
}

// Keyframes returns the indexes of access units holding an IDR.
func (c *Clip) Keyframes() []int {
	var out []int
	for i, au := range c.AUs {
		if h264.IsRandomAccess(au) {
			out = append(out, i)
		}
	}
	return out
}

// Size is the clip's total NAL bytes.
func (c *Clip) Size() int {
	n := 0
	for _, au := range c.AUs {
		for _, nalu := range au {
			n += len(nalu)
		}
	}
	return n
}

// Pad appends filler NAL units to each access unit so the stream reaches
// bitrate at fps. The filler slices share one buffer (read-only).
func (c *Clip) Pad(bitrate int, fps float64) {
	if bitrate <= 0 {
		return
	}
	natural := float64(c.Size()*8) * fps / float64(len(c.AUs))
	extraPerAU := int((float64(bitrate) - natural) / 8 / fps)
	if extraPerAU <= 2 {
		return
	}
	c.filler = make([]byte, extraPerAU)
	c.filler[0] = byte(h264.NALUTypeFillerData)
	for i := 1; i < len(c.filler)-1; i++ {
		c.filler[i] = 0xff
	}
	c.filler[len(c.filler)-1] = 0x80 // rbsp trailing bits
	for i, au := range c.AUs {
		c.AUs[i] = append(au[:len(au):len(au)], c.filler)
	}
}
