// Package camsim simulates IP cameras: an RTSP server (gortsplib) serving N
// cameras that loop an H.264 or H.265 clip with continuous, monotonically
// increasing timestamps, parameter sets in the SDP and in-band, paced by the
// wall clock, over TCP or UDP, optionally behind Basic or Digest auth. A
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
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/auth"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"
)

// Config configures the simulator.
type Config struct {
	Addr     string // RTSP listen address, e.g. 127.0.0.1:8554 (":0" style ports allowed)
	Cameras  int
	ClipPath string // H.264 or H.265 Annex-B elementary stream (the codec is detected)
	Bitrate  int    // target bits/s; 0 = the clip's own rate
	FPS      float64
	// UDP also offers the UDP transport (RTP/RTCP on a free even/odd port
	// pair of the same host); TCP is always offered.
	UDP bool
	// User and Pass, when set, make every camera ask for credentials;
	// AuthMethod limits them to "basic" or "digest" (default: both offered).
	User, Pass string
	AuthMethod string
	Quirks     Quirks // misbehaviours of real cameras, for tests
	Logger     *slog.Logger
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
	// KeyframeNALUBytes adds to every keyframe a filler NAL unit of this
	// many bytes, far beyond any MTU: it crosses the network as hundreds of
	// fragmentation units (4K cameras send 1-3 MB keyframes).
	KeyframeNALUBytes int
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
	format format.Format
}

// encoder is rtph264.Encoder or rtph265.Encoder.
type encoder interface {
	Encode(au [][]byte) ([]*rtp.Packet, error)
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
	switch cfg.AuthMethod {
	case "", "basic", "digest":
	default:
		return nil, fmt.Errorf("camsim: auth method %q: want basic or digest", cfg.AuthMethod)
	}
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
	// A big write queue: an oversized keyframe leaves as thousands of packets at once.
	s.srv = &gortsplib.Server{Handler: &handler{s: s}, RTSPAddress: s.addr, DisableRTCPSenderReports: s.cfg.Quirks.NoRTCPSenderReports, WriteQueueSize: 4096}
	switch s.cfg.AuthMethod {
	case "basic":
		s.srv.AuthMethods = []auth.VerifyMethod{auth.VerifyMethodBasic}
	case "digest":
		s.srv.AuthMethods = []auth.VerifyMethod{auth.VerifyMethodDigestMD5}
	}
	if err := s.startServer(); err != nil {
		return err
	}
	for i := 1; i <= s.cfg.Cameras; i++ {
		var f format.Format
		switch s.clip.Codec {
		case CodecH265:
			h := &format.H265{PayloadTyp: 96, VPS: s.clip.VPS, SPS: s.clip.SPS, PPS: s.clip.PPS}
			if s.cfg.Quirks.NoSDPParameterSets {
				h.VPS, h.SPS, h.PPS = nil, nil, nil
			}
			f = h
		default:
			h := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: s.clip.SPS, PPS: s.clip.PPS}
			if s.cfg.Quirks.NoSDPParameterSets {
				h.SPS, h.PPS = nil, nil
			}
			f = h
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

// startServer starts the RTSP server; with UDP it retries a few random
// even/odd port pairs until one is free.
func (s *Server) startServer() error {
	if !s.cfg.UDP {
		if err := s.srv.Start(); err != nil {
			return fmt.Errorf("camsim: start RTSP server on %s: %w", s.addr, err)
		}
		return nil
	}
	host, _, err := net.SplitHostPort(s.addr)
	if err != nil {
		return err
	}
	var last error
	for range 20 {
		p := 20000 + 2*rand.IntN(20000)
		s.srv.UDPRTPAddress = net.JoinHostPort(host, fmt.Sprint(p))
		s.srv.UDPRTCPAddress = net.JoinHostPort(host, fmt.Sprint(p+1))
		if last = s.srv.Start(); last == nil {
			return nil
		}
	}
	return fmt.Errorf("camsim: start RTSP server with UDP on %s: %w", s.addr, last)
}

// Codec is the clip's codec, CodecH264 or CodecH265.
func (s *Server) Codec() string { return s.clip.Codec }

// Addr is the listening address.
func (s *Server) Addr() string { return s.addr }

// URL is camera i's RTSP URL (1-based), with the credentials if any.
func (s *Server) URL(i int) string {
	u := url.URL{Scheme: "rtsp", Host: s.addr, Path: fmt.Sprintf("/cam%d", i)}
	if s.cfg.User != "" {
		u.User = url.UserPassword(s.cfg.User, s.cfg.Pass)
	}
	return u.String()
}

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
	var enc encoder
	var err error
	switch f := c.format.(type) {
	case *format.H265:
		enc, err = f.CreateEncoder()
	case *format.H264:
		enc, err = f.CreateEncoder()
	}
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
		pkts, err := enc.Encode(s.clip.apply(q, idx))
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

// sei264 and sei265 are user-data-unregistered SEI messages (payload type 5, 17 bytes).
var (
	sei264 = append(append([]byte{0x06, 0x05, 0x11}, []byte("RONDA-CAMSIM-SEI!")...), 0x80)
	sei265 = append(append([]byte{byte(h265.NALUType_PREFIX_SEI_NUT) << 1, 0x01, 0x05, 0x11}, []byte("RONDA-CAMSIM-SEI!")...), 0x80)
	aud264 = []byte{0x09, 0xf0}
	aud265 = []byte{byte(h265.NALUType_AUD_NUT) << 1, 0x01, 0x50}
)

// apply turns access unit i of the clip into what a quirky camera sends.
func (c *Clip) apply(q Quirks, i int) [][]byte {
	au := c.AUs[i]
	big := q.KeyframeNALUBytes > 0 && c.isKey(au)
	if !q.NoInBandParameterSets && !q.AUDFirst && !q.SEIFirst && !q.AnnexBInRTP && !big {
		return au
	}
	out := make([][]byte, 0, len(au)+3)
	if q.AUDFirst {
		out = append(out, c.pick(aud264, aud265))
	}
	if q.SEIFirst {
		out = append(out, c.pick(sei264, sei265))
	}
	for _, n := range au {
		if q.NoInBandParameterSets && c.isParameterSet(n) {
			continue
		}
		out = append(out, n)
	}
	if big {
		out = append(out, c.fillerNALU(q.KeyframeNALUBytes))
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

func (c *Clip) pick(for264, for265 []byte) []byte {
	if c.Codec == CodecH265 {
		return for265
	}
	return for264
}

func (c *Clip) isParameterSet(n []byte) bool {
	if c.Codec == CodecH265 {
		t := h265.NALUType((n[0] >> 1) & 0x3f)
		return t == h265.NALUType_VPS_NUT || t == h265.NALUType_SPS_NUT || t == h265.NALUType_PPS_NUT
	}
	t := h264.NALUType(n[0] & 0x1f)
	return t == h264.NALUTypeSPS || t == h264.NALUTypePPS
}

func (c *Clip) isKey(au [][]byte) bool {
	if c.Codec == CodecH265 {
		return h265.IsRandomAccess(au)
	}
	return h264.IsRandomAccess(au)
}

// fillerNALU is a filler-data NAL unit of n bytes (header included).
func (c *Clip) fillerNALU(n int) []byte {
	hdr := []byte{byte(h264.NALUTypeFillerData)}
	if c.Codec == CodecH265 {
		hdr = []byte{byte(h265.NALUType_FD_NUT) << 1, 0x01}
	}
	if n < len(hdr)+2 {
		n = len(hdr) + 2
	}
	b := make([]byte, n)
	copy(b, hdr)
	for i := len(hdr); i < n-1; i++ {
		b[i] = 0xff
	}
	b[n-1] = 0x80 // rbsp trailing bits
	return b
}

type handler struct{ s *Server }

func (h *handler) stream(conn *gortsplib.ServerConn, req *base.Request, path string) (*base.Response, *gortsplib.ServerStream, error) {
	if h.s.cfg.User != "" && !conn.VerifyCredentials(req, h.s.cfg.User, h.s.cfg.Pass) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	h.s.mu.RLock()
	c, ok := h.s.cams[strings.Trim(path, "/")]
	h.s.mu.RUnlock()
	if !ok {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, fmt.Errorf("no camera at %q", path)
	}
	return &base.Response{StatusCode: base.StatusOK}, c.stream, nil
}

func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return h.stream(ctx.Conn, ctx.Request, ctx.Path)
}

func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return h.stream(ctx.Conn, ctx.Request, ctx.Path)
}

func (h *handler) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// Codecs a clip can hold.
const (
	CodecH264 = "H264"
	CodecH265 = "H265"
)

// Clip is a parsed H.264 or H.265 elementary stream.
type Clip struct {
	Codec         string
	AUs           [][][]byte // access units, NAL units without start codes
	VPS, SPS, PPS []byte     // VPS for H.265 only
	FPS           float64
	filler        []byte
}

// ParseClip splits an Annex-B stream into access units; the codec is told
// by the first NAL unit (an H.265 stream starts with a VPS, an AUD or an
// SEI whose two-byte header has layer 0 / temporal id 1).
func ParseClip(raw []byte) (*Clip, error) {
	nalus := splitAnnexB(raw)
	if len(nalus) == 0 {
		return nil, errors.New("not an Annex-B stream: no start codes")
	}
	c := &Clip{Codec: CodecH264}
	if n := nalus[0]; len(n) >= 2 && n[1] == 0x01 {
		switch h265.NALUType((n[0] >> 1) & 0x3f) {
		case h265.NALUType_VPS_NUT, h265.NALUType_AUD_NUT, h265.NALUType_PREFIX_SEI_NUT:
			c.Codec = CodecH265
		}
	}
	var cur [][]byte
	hasVCL := false
	for _, n := range nalus {
		if len(n) < 2 {
			continue
		}
		var vcl, firstSlice bool
		if c.Codec == CodecH265 {
			typ := h265.NALUType((n[0] >> 1) & 0x3f)
			switch typ {
			case h265.NALUType_VPS_NUT:
				if c.VPS == nil {
					c.VPS = n
				}
			case h265.NALUType_SPS_NUT:
				if c.SPS == nil {
					c.SPS = n
				}
			case h265.NALUType_PPS_NUT:
				if c.PPS == nil {
					c.PPS = n
				}
			case h265.NALUType_AUD_NUT:
				continue
			}
			vcl = typ < 32
			firstSlice = vcl && len(n) > 2 && n[2]&0x80 != 0 // first_slice_segment_in_pic_flag
		} else {
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
			vcl = typ == h264.NALUTypeIDR || typ == h264.NALUTypeNonIDR
			firstSlice = vcl && n[1]&0x80 != 0 // first_mb_in_slice == 0
		}
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
	if c.SPS == nil || c.PPS == nil || (c.Codec == CodecH265 && c.VPS == nil) {
		return nil, errors.New("no parameter sets in the clip (encode with repeat-headers)")
	}
	if len(c.Keyframes()) == 0 {
		return nil, errors.New("no keyframe in the clip")
	}
	if c.Codec == CodecH265 {
		var sps h265.SPS
		if err := sps.Unmarshal(c.SPS); err != nil {
			return nil, fmt.Errorf("SPS: %w", err)
		}
		c.FPS = sps.FPS()
	} else {
		var sps h264.SPS
		if err := sps.Unmarshal(c.SPS); err != nil {
			return nil, fmt.Errorf("SPS: %w", err)
		}
		c.FPS = sps.FPS()
	}
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

// Keyframes returns the indexes of access units holding an IDR (H.264) or
// an IRAP picture (H.265).
func (c *Clip) Keyframes() []int {
	var out []int
	for i, au := range c.AUs {
		if c.isKey(au) {
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
	c.filler = c.fillerNALU(extraPerAU)
	for i, au := range c.AUs {
		c.AUs[i] = append(au[:len(au):len(au)], c.filler)
	}
}
