// Package restream serves a node's cameras as RTSP over TLS (RTSPS) for
// video walls and other systems that want RTSP: rtsps://host:port/<camera id>
// for the main stream, …/<camera id>/sub for the sub stream. Readers log in
// with a node user (Basic auth, inside TLS); every play is audited.
//
// Each stream subscribes to the camera's media.Fanout (the one
// depacketization the recorder and live view share) and packetizes each
// access unit once, for all of its readers, only while someone reads it;
// gortsplib's ServerStream fans the packets out with a bounded queue per
// reader. A reader starts at the camera's next keyframe.
package restream

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph265"
	"github.com/pion/rtp"

	"github.com/ronda-jakarta/ronda/node/media"
)

// Options configure a Server.
type Options struct {
	Listen string      // e.g. 127.0.0.1:8322
	TLS    *tls.Config // required: RTSP out of a node is always encrypted
	// Login checks a user's password (the node's users, rate-limited);
	// it returns an error saying what was wrong.
	Login func(user, password string) error
	// Allow decides whether a logged-in user may watch a camera (the
	// authorisation table: an RT/RW viewer only its cameras); nil: all.
	Allow func(user, camera string) error
	// Audit records every play and every refused attempt.
	Audit  func(user, cameraID, stream, remote, outcome string)
	Logger *slog.Logger
}

// Server is the RTSPS re-stream server.
type Server struct {
	opts Options
	srv  *gortsplib.Server
	log  *slog.Logger

	mu      sync.Mutex
	streams map[string]*stream               // by path: "<camera>" or "<camera>/sub"
	authed  map[*gortsplib.ServerConn]string // connections that logged in, and as whom
	readers map[*gortsplib.ServerSession]*stream
}

// New prepares a server; Add streams, then Start.
func New(opts Options) (*Server, error) {
	if opts.TLS == nil {
		return nil, errors.New("restream: a TLS configuration is required (RTSP leaves the node only encrypted)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, log: opts.Logger, streams: map[string]*stream{},
		authed: map[*gortsplib.ServerConn]string{}, readers: map[*gortsplib.ServerSession]*stream{}}
	s.srv = &gortsplib.Server{Handler: s, RTSPAddress: opts.Listen, TLSConfig: opts.TLS,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, WriteQueueSize: 512}
	return s, nil
}

// Add serves a camera's stream ("main" or "sub") from its fan-out.
func (s *Server) Add(cameraID, streamName string, src *media.Fanout) {
	path := cameraID
	if streamName == "sub" {
		path += "/sub"
	}
	st := &stream{s: s, camera: cameraID, name: streamName, path: path, src: src}
	s.mu.Lock()
	s.streams[path] = st
	s.mu.Unlock()
	src.Add(st)
}

// Start listens.
func (s *Server) Start() error {
	if err := s.srv.Start(); err != nil {
		return fmt.Errorf("rtsp.listen %s: %w", s.opts.Listen, err)
	}
	s.log.Info("RTSPS re-stream listening", "addr", s.srv.NetListener().Addr().String())
	return nil
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.srv.NetListener().Addr().String() }

// Close stops the server and unsubscribes from the cameras.
func (s *Server) Close() {
	s.srv.Close()
	s.mu.Lock()
	streams := make([]*stream, 0, len(s.streams))
	for _, st := range s.streams {
		streams = append(streams, st)
	}
	s.mu.Unlock()
	for _, st := range streams {
		st.src.Remove(st)
		st.mu.Lock()
		if st.ss != nil {
			st.ss.Close()
			st.ss = nil
		}
		st.mu.Unlock()
	}
}

// OnConnClose forgets the connection's login.
func (s *Server) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	s.mu.Lock()
	delete(s.authed, ctx.Conn)
	s.mu.Unlock()
}

// OnSessionClose ends a reader.
func (s *Server) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	s.mu.Lock()
	st := s.readers[ctx.Session]
	delete(s.readers, ctx.Session)
	s.mu.Unlock()
	if st != nil {
		st.reading(-1)
	}
}

func unauthorized() *base.Response {
	return &base.Response{StatusCode: base.StatusUnauthorized,
		Header: base.Header{"WWW-Authenticate": base.HeaderValue{`Basic realm="ronda"`}}}
}

// authorize logs the connection in from its Basic credentials (once per
// connection) and finds the stream.
func (s *Server) authorize(conn *gortsplib.ServerConn, req *base.Request, path string) (*stream, *base.Response) {
	path = strings.Trim(path, "/")
	remote := conn.NetConn().RemoteAddr().String()
	s.mu.Lock()
	user, ok := s.authed[conn]
	s.mu.Unlock()
	if !ok {
		var pass string
		var found bool
		user, pass, found = basicAuth(req)
		if !found {
			return nil, unauthorized()
		}
		if err := s.opts.Login(user, pass); err != nil {
			s.audit(user, path, "", remote, "denied: "+err.Error())
			return nil, unauthorized()
		}
		s.mu.Lock()
		s.authed[conn] = user
		s.mu.Unlock()
	}
	s.mu.Lock()
	st := s.streams[path]
	s.mu.Unlock()
	if st == nil {
		s.audit(user, path, "", remote, "error: no such camera on this node")
		return nil, &base.Response{StatusCode: base.StatusNotFound}
	}
	if s.opts.Allow != nil {
		if err := s.opts.Allow(user, st.camera); err != nil {
			s.audit(user, st.camera, st.name, remote, "denied: "+err.Error())
			return nil, &base.Response{StatusCode: base.StatusForbidden}
		}
	}
	ss := st.current()
	if ss == nil {
		s.audit(user, st.camera, st.name, remote, "error: the camera has not delivered video yet")
		return nil, &base.Response{StatusCode: base.StatusServiceUnavailable}
	}
	return st, nil
}

func (s *Server) audit(user, camera, streamName, remote, outcome string) {
	if s.opts.Audit != nil {
		s.opts.Audit(user, camera, streamName, remote, outcome)
	}
}

func basicAuth(req *base.Request) (user, pass string, ok bool) {
	for _, h := range req.Header["Authorization"] {
		enc, found := strings.CutPrefix(h, "Basic ")
		if !found {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
		if err != nil {
			continue
		}
		return strings.Cut(string(raw), ":")
	}
	return "", "", false
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (s *Server) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	st, resp := s.authorize(ctx.Conn, ctx.Request, ctx.Path)
	if resp != nil {
		return resp, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st.current(), nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (s *Server) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusMethodNotAllowed}, nil, nil // nobody publishes into a node
	}
	st, resp := s.authorize(ctx.Conn, ctx.Request, ctx.Path)
	if resp != nil {
		return resp, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st.current(), nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (s *Server) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	st, resp := s.authorize(ctx.Conn, ctx.Request, ctx.Session.Path())
	if resp != nil {
		return resp, nil
	}
	s.mu.Lock()
	user := s.authed[ctx.Conn]
	_, again := s.readers[ctx.Session]
	s.readers[ctx.Session] = st
	s.mu.Unlock()
	if !again {
		st.reading(1)
		s.audit(user, st.camera, st.name, ctx.Conn.NetConn().RemoteAddr().String(), "ok")
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// stream is one camera stream served over RTSP: a media.Consumer that
// packetizes each access unit once while anyone reads it.
type stream struct {
	s      *Server
	camera string
	name   string
	path   string
	src    *media.Fanout

	mu   sync.Mutex
	ss   *gortsplib.ServerStream
	medi *description.Media
	enc  interface {
		Encode([][]byte) ([]*rtp.Packet, error)
	}
	readers int
	waitKey bool // a reader joined: send nothing before the next keyframe
}

func (st *stream) current() *gortsplib.ServerStream {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.ss
}

func (st *stream) reading(delta int) {
	st.mu.Lock()
	before := st.readers
	st.readers = max(0, st.readers+delta)
	if delta > 0 {
		st.waitKey = true
	}
	st.mu.Unlock()
	if before != st.readers {
		st.src.Watch(delta)
	}
}

// OnTrack implements media.Consumer: a new session of the camera makes a
// new RTSP stream (its readers are disconnected and reconnect).
func (st *stream) OnTrack(t media.Track) {
	var forma format.Format
	switch t.Codec {
	case media.CodecH264:
		enc := &rtph264.Encoder{PayloadType: 96, PacketizationMode: 1}
		if err := enc.Init(); err != nil {
			return
		}
		forma = &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: t.SPS, PPS: t.PPS}
		st.setStream(forma, enc)
	case media.CodecH265:
		enc := &rtph265.Encoder{PayloadType: 96}
		if err := enc.Init(); err != nil {
			return
		}
		forma = &format.H265{PayloadTyp: 96, VPS: t.VPS, SPS: t.SPS, PPS: t.PPS}
		st.setStream(forma, enc)
	}
}

func (st *stream) setStream(forma format.Format, enc interface {
	Encode([][]byte) ([]*rtp.Packet, error)
}) {
	medi := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{forma}}
	ss := &gortsplib.ServerStream{Server: st.s.srv, Desc: &description.Session{Medias: []*description.Media{medi}}}
	if err := ss.Initialize(); err != nil {
		st.s.log.Warn("restream: stream", "camera", st.camera, "err", err)
		return
	}
	st.mu.Lock()
	old := st.ss
	st.ss, st.medi, st.enc, st.waitKey = ss, medi, enc, true
	st.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// OnAccessUnit implements media.Consumer; it never blocks (ServerStream
// queues per reader and drops for a reader that cannot keep up).
func (st *stream) OnAccessUnit(au *media.AccessUnit) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ss == nil || st.readers == 0 {
		return
	}
	if st.waitKey {
		if !au.Key {
			return
		}
		st.waitKey = false
	}
	pkts, err := st.enc.Encode(au.NALUs)
	if err != nil {
		return
	}
	ts := media.RTPTime(au.PTS)
	for _, p := range pkts {
		p.Timestamp = ts
		_ = st.ss.WritePacketRTPWithNTP(st.medi, p, au.Wall)
	}
}

// OnStop implements media.Consumer.
func (st *stream) OnStop(string) {
	st.mu.Lock()
	old := st.ss
	st.ss = nil
	st.mu.Unlock()
	if old != nil {
		old.Close()
	}
}
