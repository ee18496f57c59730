package live

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph265"
	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ronda-jakarta/ronda/camsim"
	"github.com/ronda-jakarta/ronda/node/media"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// clip is the repository's test clip split into access units.
type clip struct {
	sps, pps []byte
	aus      [][][]byte // NAL units without start codes
}

// loadClip reads testdata/clip.h264 (Annex-B) and groups its NAL units into
// access units: a new AU starts at an SPS/PPS/SEI/AUD after a slice, or at a
// slice whose first_mb_in_slice is 0 (its first slice-data bit is 1).
func loadClip(t *testing.T) *clip {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/clip.h264")
	if err != nil {
		t.Fatal(err)
	}
	var nalus [][]byte
	for _, part := range bytes.Split(raw, []byte{0, 0, 1}) {
		part = bytes.TrimRight(part, "\x00")
		if len(part) > 0 {
			nalus = append(nalus, part)
		}
	}
	c := &clip{}
	var cur [][]byte
	hasSlice := false
	for _, n := range nalus {
		typ := n[0] & 0x1f
		isSlice := typ == 1 || typ == 5
		startsAU := hasSlice && (typ == 6 || typ == 7 || typ == 8 || typ == 9 || (isSlice && len(n) > 1 && n[1]&0x80 != 0))
		if startsAU {
			c.aus = append(c.aus, cur)
			cur, hasSlice = nil, false
		}
		switch typ {
		case 7:
			c.sps = n
		case 8:
			c.pps = n
		}
		cur = append(cur, n)
		hasSlice = hasSlice || isSlice
	}
	if len(cur) > 0 {
		c.aus = append(c.aus, cur)
	}
	if c.sps == nil || c.pps == nil || len(c.aus) < 30 {
		t.Fatalf("clip: sps %v pps %v, %d access units", c.sps != nil, c.pps != nil, len(c.aus))
	}
	return c
}

// filler is an H.264 filler-data NAL unit, as cameras pad with.
var filler = append([]byte{12}, bytes.Repeat([]byte{0xff}, 300)...)

// feeder plays the clip into a fan-out at 15 fps until stopped, with the
// in-band parameter sets removed (the engine must prepend them) and a
// filler NAL unit appended to every frame (the engine must strip it).
type feeder struct {
	maxCall   atomic.Int64 // the longest OnAccessUnit call (ns)
	frames    atomic.Int64
	keyframes atomic.Int64

	mu      sync.Mutex
	watched []bool // the fan-out's OnWatched calls, in order
}

func (fd *feeder) watchedCalls() []bool {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	return append([]bool(nil), fd.watched...)
}

func (fd *feeder) run(ctx context.Context, c *clip, f *media.Fanout) {
	f.OnTrack(media.Track{Codec: media.CodecH264, SPS: c.sps, PPS: c.pps, Width: 640, Height: 360})
	tick := time.NewTicker(time.Second / 15)
	defer tick.Stop()
	for i := 0; ; i++ {
		au := c.aus[i%len(c.aus)]
		var nalus [][]byte
		key := false
		for _, n := range au {
			switch n[0] & 0x1f {
			case 7, 8:
				continue
			case 5:
				key = true
			}
			nalus = append(nalus, n)
		}
		nalus = append(nalus, filler)
		start := time.Now()
		f.OnAccessUnit(&media.AccessUnit{PTS: time.Duration(i) * time.Second / 15, Wall: time.Now(), Key: key, NALUs: nalus})
		if d := int64(time.Since(start)); d > fd.maxCall.Load() {
			fd.maxCall.Store(d)
		}
		fd.frames.Add(1)
		if key {
			fd.keyframes.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// client is a receive-only pion peer that depacketizes what it gets.
type client struct {
	pc      *webrtc.PeerConnection
	session string
	packets atomic.Int64
	frames  atomic.Int64

	keyframes atomic.Int64 // access units with an IDR slice
	backwards atomic.Int64 // RTP timestamps that went backwards
	ssrc      atomic.Uint32

	mu        sync.Mutex
	first     []byte // NAL unit types of the first complete access unit
	fillers   int    // filler NAL units received (must stay 0)
	decodeErr error
}

// dial makes a receive-only pion client and completes WHEP against e.
func dial(t *testing.T, e *Engine, cam string) *client {
	t.Helper()
	return dialWith(t, e, cam, OfferOptions{})
}

func dialWith(t *testing.T, e *Engine, cam string, opt OfferOptions) *client {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.GracefulClose() })
	c := &client{pc: pc}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		dec := &rtph264.Decoder{PacketizationMode: 1}
		if err := dec.Init(); err != nil {
			panic(err)
		}
		c.ssrc.Store(uint32(tr.SSRC()))
		var lastTS uint32
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if c.packets.Add(1) > 1 && int32(p.Timestamp-lastTS) < 0 {
				c.backwards.Add(1)
			}
			lastTS = p.Timestamp
			au, err := dec.Decode(p)
			if err != nil {
				if !errors.Is(err, rtph264.ErrMorePacketsNeeded) {
					c.mu.Lock()
					c.decodeErr = err
					c.mu.Unlock()
				}
				continue
			}
			c.frames.Add(1)
			for _, n := range au {
				if n[0]&0x1f == 5 {
					c.keyframes.Add(1)
					break
				}
			}
			c.mu.Lock()
			for _, n := range au {
				if c.frames.Load() == 1 {
					c.first = append(c.first, n[0]&0x1f)
				}
				if n[0]&0x1f == 12 {
					c.fillers++
				}
			}
			c.mu.Unlock()
		}
	})
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	answer, session, err := e.Offer(context.Background(), cam, pc.LocalDescription().SDP, opt)
	if err != nil {
		t.Fatal(err)
	}
	c.session = session
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	return c
}

// startsWithKeyframe: SPS, PPS, optional SEI, then an IDR slice first.
func startsWithKeyframe(types []byte) bool {
	if len(types) < 3 || types[0] != 7 || types[1] != 8 {
		return false
	}
	for _, t := range types[2:] {
		switch t {
		case 6:
			continue
		case 5:
			return true
		default:
			return false
		}
	}
	return false
}

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// start runs an engine with camera "c1" fed from the clip; the returned
// feeder is stopped (and its goroutine waited for) at the end of the test.
func start(t *testing.T, configure func(*Engine)) (*Engine, *feeder) {
	t.Helper()
	c := loadClip(t)
	e, err := New(Options{UDPAddr: "127.0.0.1:0", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if configure != nil {
		configure(e)
	}
	fan := media.NewFanout()
	fd := &feeder{}
	fan.OnWatched = func(w bool) { fd.mu.Lock(); fd.watched = append(fd.watched, w); fd.mu.Unlock() }
	e.AddCamera("c1", fan)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); fd.run(ctx, c, fan) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err := e.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	waitFor(t, 5*time.Second, "video", func() bool { return fd.frames.Load() > 0 })
	return e, fd
}

func TestOfferErrors(t *testing.T) {
	e, err := New(Options{UDPAddr: "127.0.0.1:0", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	e.AddCamera("c1", media.NewFanout())
	if _, _, err := e.Offer(context.Background(), "c1", "v=0", OfferOptions{}); !errors.Is(err, ErrNoVideo) {
		t.Fatalf("offer before video: %v, want ErrNoVideo", err)
	}
	if _, _, err := e.Offer(context.Background(), "nope", "v=0", OfferOptions{}); !errors.Is(err, ErrUnknownCamera) {
		t.Fatalf("offer for an unknown camera: %v", err)
	}
	if err := e.Delete("gone"); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("deleting an unknown session: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Offer(context.Background(), "c1", "v=0", OfferOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("offer after close: %v", err)
	}
}

func TestTwoViewersStartAtKeyframeWithParameterSets(t *testing.T) {
	e, fd := start(t, nil)
	waitFor(t, 5*time.Second, "mid-GOP", func() bool { return fd.frames.Load()%15 == 7 }) // the cache must serve the keyframe

	if w := fd.watchedCalls(); len(w) != 0 {
		t.Fatalf("camera reported as watched %v before any viewer", w)
	}
	a, b := dial(t, e, "c1"), dial(t, e, "c1")
	if n := e.Viewers("c1"); n != 2 {
		t.Fatalf("viewers %d, want 2", n)
	}
	// The ingest is told once that someone watches (short receive batching
	// for low latency), not once per viewer.
	waitFor(t, 5*time.Second, "watched", func() bool { return len(fd.watchedCalls()) > 0 })
	if w := fd.watchedCalls(); len(w) != 1 || !w[0] {
		t.Fatalf("OnWatched calls with two viewers %v, want [true]", w)
	}
	waitFor(t, 10*time.Second, "frames at both viewers", func() bool { return a.frames.Load() > 30 && b.frames.Load() > 30 })
	for i, c := range []*client{a, b} {
		c.mu.Lock()
		first, fillers, derr := c.first, c.fillers, c.decodeErr
		c.mu.Unlock()
		if !startsWithKeyframe(first) {
			t.Fatalf("viewer %d: first frame's NAL types %v, want SPS, PPS, then an IDR slice (7 8 [6] 5 …)", i, first)
		}
		if fillers != 0 {
			t.Fatalf("viewer %d: %d filler NAL units got through", i, fillers)
		}
		if derr != nil {
			t.Fatalf("viewer %d: depacketize: %v", i, derr)
		}
	}
	for _, c := range []*client{a, b} {
		if err := e.Delete(c.session); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.Viewers("c1"); n != 0 {
		t.Fatalf("viewers after delete %d", n)
	}
	// After the last viewer leaves the ingest goes back to batching for the
	// recorder.
	waitFor(t, 5*time.Second, "unwatched", func() bool { return len(fd.watchedCalls()) == 2 })
	if w := fd.watchedCalls(); len(w) != 2 || !w[0] || w[1] {
		t.Fatalf("OnWatched calls after both viewers left %v, want [true false]", w)
	}
	if err := e.Delete(a.session); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestBlockedViewerDoesNotStallOthers(t *testing.T) {
	var blockedID atomic.Value // session ID whose writer blocks
	blockedID.Store("")
	gate := make(chan struct{})
	var blockedWrites atomic.Int64
	e, fd := start(t, func(e *Engine) {
		e.queueLen = 8
		e.wrapWrite = func(id string, w func(*rtp.Packet) error) func(*rtp.Packet) error {
			return func(p *rtp.Packet) error {
				if blockedID.Load() == id {
					blockedWrites.Add(1)
					<-gate
				}
				return w(p)
			}
		}
	})
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	t.Cleanup(open) // runs before the engine's Close, even if the test fails
	slow, fast := dial(t, e, "c1"), dial(t, e, "c1")
	waitFor(t, 10*time.Second, "packets at both viewers", func() bool { return slow.frames.Load() > 5 && fast.frames.Load() > 5 })

	blockedID.Store(slow.session)
	waitFor(t, 5*time.Second, "the slow viewer's writer to block", func() bool { return blockedWrites.Load() > 0 })
	fast0 := fast.frames.Load()
	time.Sleep(3 * time.Second) // 45 frames: the slow viewer's queue (8) overflows
	if got := fast.frames.Load() - fast0; got < 25 {
		t.Fatalf("the other viewer got %d frames in 3 s while one viewer was blocked; want ≥ 25", got)
	}
	// A camera callback that waited on the blocked viewer would take seconds.
	if d := time.Duration(fd.maxCall.Load()); d > 500*time.Millisecond {
		t.Fatalf("OnAccessUnit took %v: a blocked viewer slowed the camera", d)
	}
	e.mu.Lock()
	v := e.sessions[slow.session]
	e.mu.Unlock()
	if v.drops.Load() == 0 {
		t.Fatal("the blocked viewer dropped nothing")
	}

	// Released, it drains its queue, waits for a keyframe and goes on.
	blockedID.Store("")
	open()
	slow0 := slow.frames.Load()
	waitFor(t, 5*time.Second, "the released viewer to receive again", func() bool { return slow.frames.Load() > slow0+20 })
}

func TestSlowViewerSkipsToKeyframe(t *testing.T) {
	v := &viewer{cam: &camera{}, queue: make(chan *frame, 2), log: quiet()}
	key, delta := &frame{key: true}, &frame{}
	v.offer(key)
	v.offer(delta)
	v.offer(delta) // full: skipping starts
	if !v.skipping || v.drops.Load() != 1 {
		t.Fatalf("skipping %v drops %d", v.skipping, v.drops.Load())
	}
	<-v.queue
	<-v.queue
	v.offer(delta) // dropped: not a keyframe
	if len(v.queue) != 0 {
		t.Fatal("delta frame queued while skipping")
	}
	v.offer(key)
	if v.skipping || len(v.queue) != 1 {
		t.Fatal("did not resume at the keyframe")
	}
}

func TestTimestampsStayMonotonicAcrossDiscontinuities(t *testing.T) {
	v := &viewer{}
	want := []struct{ in, out uint32 }{
		{1000, 1000}, {7000, 7000}, // normal 15 fps steps
		{7090, 7090},                                            // GOP replay: 1 ms apart
		{500, 10090},                                            // camera reconnected, clock restarted: continue
		{6500, 16090},                                           // and follow the new clock
		{6500 + 20*90000, 19090},                                // a jump of 20 s: continue
		{6500 + 20*90000 + 6000, 25090},                         // and follow
		{0xffffff00, 28090}, {0xffffff00 + 6000 - 1<<32, 34090}, // the camera clock wrapping around is a normal step
	}
	for i, w := range want {
		if got := v.continuous(w.in); got != w.out {
			t.Fatalf("step %d: continuous(%d) = %d, want %d", i, w.in, got, w.out)
		}
	}
}

func TestGOPCache(t *testing.T) {
	c := newCamera("c", media.NewFanout(), quiet())
	sps, pps := []byte{0x67, 0x42, 0xc0, 0x1e, 1}, []byte{0x68, 0xce, 0x3c, 0x80}
	c.OnTrack(media.Track{Codec: media.CodecH264, SPS: sps, PPS: pps})
	delta := []byte{0x41, 0x9a, 1, 2, 3}
	c.OnAccessUnit(&media.AccessUnit{NALUs: [][]byte{delta}}) // before any keyframe: not cached
	if len(c.gop) != 0 {
		t.Fatal("cached a delta frame before the first keyframe")
	}
	c.OnAccessUnit(&media.AccessUnit{Key: true, NALUs: [][]byte{{0x65, 0x88, 1}, filler}})
	c.OnAccessUnit(&media.AccessUnit{PTS: time.Second / 15, NALUs: [][]byte{delta}})
	if len(c.gop) != 2 || c.gop[0].f != nil {
		t.Fatalf("GOP cache holds %d frames (packetized without a viewer: %v)", len(c.gop), len(c.gop) > 0 && c.gop[0].f != nil)
	}
	v := newViewer("v", c, nil, nil, nil, 4, quiet())
	cache := c.join(v, true)
	if len(cache) != 2 || !cache[0].key || v.skipping {
		t.Fatalf("join: %d cached frames, skipping %v", len(cache), v.skipping)
	}
	dec := &rtph264.Decoder{PacketizationMode: 1}
	if err := dec.Init(); err != nil {
		t.Fatal(err)
	}
	var au [][]byte
	for _, p := range cache[0].pkts {
		var err error
		if au, err = dec.Decode(p); err != nil && !errors.Is(err, rtph264.ErrMorePacketsNeeded) {
			t.Fatal(err)
		}
	}
	if len(au) != 3 || !bytes.Equal(au[0], sps) || !bytes.Equal(au[1], pps) || au[2][0] != 0x65 {
		t.Fatalf("keyframe packetized as %d NAL units %x, want SPS, PPS, IDR (filler stripped)", len(au), au)
	}
	if got := cache[1].ts; got != 6000 {
		t.Fatalf("second frame timestamp %d, want 6000", got)
	}
	// While watched, each frame is packetized once as it arrives, cached,
	// and offered to the viewer.
	c.OnAccessUnit(&media.AccessUnit{PTS: 2 * time.Second / 15, NALUs: [][]byte{delta}})
	if len(c.gop) != 3 || c.gop[2].f == nil || len(v.queue) != 1 || <-v.queue != c.gop[2].f {
		t.Fatal("a live frame was not packetized once and offered to the viewer")
	}
	c.OnStop("camera gone")
	if len(c.gop) != 0 || !v.skipping {
		t.Fatal("OnStop kept the cache or did not make viewers wait for a keyframe")
	}
	if _, ok := c.currentTrack(); ok {
		t.Fatal("track still known after OnStop")
	}
}

func TestRTPTimeDoesNotOverflow(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want uint32
	}{
		{0, 0},
		{time.Second, 90000},
		{time.Second / 15, 6000},
		{30 * time.Hour, uint32(uint64(30*3600*90000) % (1 << 32))},
		{100*24*time.Hour + time.Second/15, uint32((uint64(100*24*3600)*90000 + 6000) % (1 << 32))},
	} {
		if got := media.RTPTime(c.d); got != c.want {
			t.Fatalf("RTPTime(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestChooseH264MatchesCameraProfile(t *testing.T) {
	offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 98 100 102\r\nc=IN IP4 0.0.0.0\r\n" +
		"a=rtpmap:96 VP8/90000\r\n" +
		"a=rtpmap:98 H264/90000\r\na=fmtp:98 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n" +
		"a=rtpmap:100 H264/90000\r\na=fmtp:100 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n" +
		"a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f\r\n" +
		"a=rtpmap:104 H264/90000\r\na=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=4d001f\r\n"
	cases := []struct {
		name string
		sps  []byte
		pt   webrtc.PayloadType
	}{
		{"constrained baseline", []byte{0x67, 0x42, 0xc0, 0x1e}, 100},
		{"baseline", []byte{0x67, 0x42, 0x00, 0x1e}, 98},
		{"high", []byte{0x67, 0x64, 0x00, 0x28}, 102},
		{"main falls back to any packetization-mode=1", []byte{0x67, 0x4d, 0x00, 0x28}, 98},
	}
	for _, c := range cases {
		got, err := chooseH264(offer, c.sps)
		if err != nil || got.PayloadType != c.pt {
			t.Fatalf("%s: pt %d err %v, want %d", c.name, got.PayloadType, err, c.pt)
		}
	}
	if _, err := chooseH264("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n", []byte{0x67, 0x42, 0xc0, 0x1e}); !errors.Is(err, ErrNoH264) {
		t.Fatalf("offer without H.264: %v", err)
	}
}

// A browser's keyframe request (PLI) is answered from the GOP cache at once,
// not at the camera's next keyframe (an RTSP camera cannot be asked), and
// the replay never makes the viewer's timestamps run backwards.
func TestPLIIsAnsweredFromTheGOPCache(t *testing.T) {
	e, fd := start(t, nil)
	c := dial(t, e, "c1")
	waitFor(t, 10*time.Second, "frames", func() bool { return c.frames.Load() > 20 && c.ssrc.Load() != 0 })
	// Right after a camera keyframe: the next is ~0.9 s away.
	k0 := fd.keyframes.Load()
	waitFor(t, 3*time.Second, "a camera keyframe", func() bool { return fd.keyframes.Load() > k0 })
	time.Sleep(100 * time.Millisecond)
	camKeys, gotKeys := fd.keyframes.Load(), c.keyframes.Load()
	sent := time.Now()
	if err := c.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: c.ssrc.Load()}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "a keyframe after the PLI", func() bool { return c.keyframes.Load() > gotKeys })
	answered := time.Since(sent)
	if fd.keyframes.Load() != camKeys {
		t.Fatalf("the keyframe came %v after the PLI, with the camera's next one: the GOP cache did not answer", time.Since(sent))
	}
	in, err := e.Info(c.session)
	if err != nil || in.PLIs < 1 || in.GOPReplays != 1 {
		t.Fatalf("session info %+v (%v): want ≥ 1 PLI answered by 1 replay", in, err)
	}
	// A second PLI within the second is not replayed again (browsers repeat them).
	_ = c.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: c.ssrc.Load()}})
	frames := c.frames.Load()
	waitFor(t, 3*time.Second, "frames after the replay", func() bool { return c.frames.Load() > frames+15 })
	if in, _ := e.Info(c.session); in.GOPReplays != 1 {
		t.Fatalf("%d replays for two PLIs within a second, want 1", in.GOPReplays)
	}
	if n := c.backwards.Load(); n != 0 {
		t.Fatalf("%d RTP timestamps went backwards around the replay", n)
	}
	t.Logf("PLI answered with a keyframe from the cache in %v", answered.Round(time.Millisecond))
}

// Without the GOP cache a session starts at the camera's next keyframe; with
// it, at once. Info says which, and the TTFF histogram counts both.
func TestSessionInfoAndStartWithoutGOPCache(t *testing.T) {
	e, fd := start(t, nil)
	waitFor(t, 5*time.Second, "mid-GOP", func() bool { return fd.frames.Load()%15 == 3 })
	cached, plain := dial(t, e, "c1"), dialWith(t, e, "c1", OfferOptions{NoGOPCache: true})
	waitFor(t, 10*time.Second, "frames at both", func() bool { return cached.frames.Load() > 5 && plain.frames.Load() > 5 })
	a, err := e.Info(cached.session)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := e.Info(plain.session)
	if a.StartedFrom != "gop_cache" || b.StartedFrom != "keyframe" {
		t.Fatalf("started from %q and %q, want gop_cache and keyframe", a.StartedFrom, b.StartedFrom)
	}
	if a.State != "connected" || a.Path != "direct" || a.Packets == 0 || a.Bytes == 0 || a.FirstFrame <= 0 || a.CameraID != "c1" {
		t.Fatalf("info %+v: want connected, direct, packets and bytes counted, a first-frame time", a)
	}
	// Prometheus: viewers, bytes and the TTFF histogram.
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				got[mf.GetName()] += m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				got[mf.GetName()] += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				got[mf.GetName()+"_count"] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if got["ronda_live_viewers"] != 2 || got["ronda_live_bytes_out_total"] <= 0 || got["ronda_live_first_frame_seconds_count"] != 2 {
		t.Fatalf("metrics %v: want 2 viewers, bytes out, 2 first frames", got)
	}
}

// WHEP's PATCH carries trickled candidates (RFC 8840 fragments); an ICE
// restart and garbage get clear errors.
func TestTrickleICEPatch(t *testing.T) {
	e, _ := start(t, nil)
	c := dial(t, e, "c1")
	ufrag := ""
	for _, l := range strings.Split(c.pc.LocalDescription().SDP, "\n") {
		if strings.HasPrefix(l, "a=ice-ufrag:") {
			ufrag = strings.TrimSpace(strings.TrimPrefix(l, "a=ice-ufrag:"))
		}
	}
	frag := "a=ice-ufrag:" + ufrag + "\r\na=ice-pwd:whatever\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
		"a=candidate:1 1 udp 16777215 127.0.0.1 50123 typ relay raddr 0.0.0.0 rport 0\r\na=end-of-candidates\r\n"
	if err := e.Patch(c.session, frag); err != nil {
		t.Fatalf("patch: %v", err)
	}
	e.mu.Lock()
	typ := e.sessions[c.session].candidates["127.0.0.1:50123"]
	e.mu.Unlock()
	if typ != "relay" {
		t.Fatalf("the trickled relay candidate was noted as %q", typ)
	}
	if err := e.Patch(c.session, "a=ice-ufrag:other\r\na=ice-pwd:x\r\n"); !errors.Is(err, ErrICERestart) {
		t.Fatalf("ICE restart: %v", err)
	}
	if err := e.Patch(c.session, "a=candidate:garbage\r\n"); !errors.Is(err, ErrBadFragment) {
		t.Fatalf("bad candidate: %v", err)
	}
	if err := e.Patch(c.session, "hello\r\n"); !errors.Is(err, ErrBadFragment) {
		t.Fatalf("not a fragment: %v", err)
	}
	if err := e.Patch("nope", frag); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("unknown session: %v", err)
	}
}

// A camera whose frames arrive out of presentation order is reported.
func TestBFramesAreReported(t *testing.T) {
	c := newCamera("c", media.NewFanout(), quiet())
	c.OnTrack(media.Track{Codec: media.CodecH264, SPS: []byte{0x67, 0x4d, 0x00, 0x1e}, PPS: []byte{0x68, 0xce}})
	step := time.Second / 15
	for _, pts := range []time.Duration{0, 3 * step, step, 2 * step} { // I P B B
		c.OnAccessUnit(&media.AccessUnit{PTS: pts, Key: pts == 0, NALUs: [][]byte{{0x41, 1}}})
	}
	if !c.bFrames.Load() {
		t.Fatal("B-frames not detected")
	}
	d := newCamera("d", media.NewFanout(), quiet())
	d.OnTrack(media.Track{Codec: media.CodecH264, SPS: []byte{0x67, 0x42, 0xc0, 0x1e}, PPS: []byte{0x68, 0xce}})
	for _, pts := range []time.Duration{0, step, 2 * step, 3 * step} {
		d.OnAccessUnit(&media.AccessUnit{PTS: pts, NALUs: [][]byte{{0x41, 1}}})
	}
	if d.bFrames.Load() {
		t.Fatal("B-frames reported for frames in order")
	}
}

// An H.265 camera plays to a client that offers H.265 (VPS, SPS and PPS
// before the first IRAP picture); a client that offers only H.264 is told
// clearly why it cannot.
func TestH265Camera(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/clip.h265")
	if err != nil {
		t.Fatal(err)
	}
	clip, err := camsim.ParseClip(raw)
	if err != nil || clip.Codec != camsim.CodecH265 {
		t.Fatalf("clip: %v %v", clip, err)
	}
	e, err := New(Options{UDPAddr: "127.0.0.1:0", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	fan := media.NewFanout()
	e.AddCamera("h", fan)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fan.OnTrack(media.Track{Codec: media.CodecH265, VPS: clip.VPS, SPS: clip.SPS, PPS: clip.PPS, Width: 640, Height: 360})
		keys := map[int]bool{}
		for _, k := range clip.Keyframes() {
			keys[k] = true
		}
		tick := time.NewTicker(time.Second / 15)
		defer tick.Stop()
		for i := 0; ; i++ {
			var nalus [][]byte
			for _, n := range clip.AUs[i%len(clip.AUs)] {
				if typ := (n[0] >> 1) & 0x3f; typ < 32 || typ > 34 { // parameter sets removed: the engine prepends them
					nalus = append(nalus, n)
				}
			}
			fan.OnAccessUnit(&media.AccessUnit{PTS: time.Duration(i) * time.Second / 15, Key: keys[i%len(clip.AUs)], NALUs: nalus})
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait(); _ = e.Close() })
	waitFor(t, 5*time.Second, "video", func() bool { _, ok := e.cameras["h"].currentTrack(); return ok })

	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000,
		SDPFmtpLine: "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST"}, PayloadType: 49}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.GracefulClose() })
	var frames atomic.Int64
	var firstMu sync.Mutex
	var first []byte
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		dec := &rtph265.Decoder{}
		if err := dec.Init(); err != nil {
			panic(err)
		}
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			au, err := dec.Decode(p)
			if err != nil {
				continue
			}
			if frames.Add(1) == 1 {
				firstMu.Lock()
				for _, n := range au {
					first = append(first, (n[0]>>1)&0x3f)
				}
				firstMu.Unlock()
			}
		}
	})
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, _ := pc.CreateOffer(nil)
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	h264Only := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 100\r\nc=IN IP4 0.0.0.0\r\n" +
		"a=rtpmap:100 H264/90000\r\na=fmtp:100 packetization-mode=1;profile-level-id=42e01f\r\n"
	if _, _, err := e.Offer(context.Background(), "h", h264Only, OfferOptions{}); !errors.Is(err, ErrNoH265) {
		t.Fatalf("an H.264-only offer for an H.265 camera: %v, want ErrNoH265", err)
	}
	answer, _, err := e.Offer(context.Background(), "h", pc.LocalDescription().SDP, OfferOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(answer, "H265/90000") {
		t.Fatalf("answer without H.265:\n%s", answer)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "H.265 frames", func() bool { return frames.Load() > 20 })
	firstMu.Lock()
	defer firstMu.Unlock()
	if len(first) < 4 || first[0] != 32 || first[1] != 33 || first[2] != 34 || first[len(first)-1] < 16 || first[len(first)-1] > 21 {
		t.Fatalf("first access unit's NAL types %v, want VPS SPS PPS … then an IRAP picture", first)
	}
}

// A grid asks for the sub stream; a camera without one serves its main
// stream, and the session says which it got.
func TestSubStream(t *testing.T) {
	c := loadClip(t)
	e, fd := start(t, nil)
	sub := media.NewFanout()
	e.AddStream("c1", StreamSub, sub)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	subFeed := &feeder{}
	go func() { defer wg.Done(); subFeed.run(ctx, c, sub) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitFor(t, 5*time.Second, "sub video", func() bool { return subFeed.frames.Load() > 0 && fd.frames.Load() > 0 })

	s := dialWith(t, e, "c1", OfferOptions{Stream: StreamSub})
	m := dialWith(t, e, "c1", OfferOptions{})
	waitFor(t, 10*time.Second, "frames on both streams", func() bool { return s.frames.Load() > 5 && m.frames.Load() > 5 })
	si, _ := e.Info(s.session)
	mi, _ := e.Info(m.session)
	if si.Stream != StreamSub || mi.Stream != StreamMain || si.CameraID != "c1" {
		t.Fatalf("streams %q and %q (camera %q), want sub and main of c1", si.Stream, mi.Stream, si.CameraID)
	}
	if n := e.Viewers("c1"); n != 2 {
		t.Fatalf("c1 has %d viewers over both streams, want 2", n)
	}
	// Camera c2 has no sub stream: asking for it serves the main one.
	fan2 := media.NewFanout()
	e.AddCamera("c2", fan2)
	feed2 := &feeder{}
	wg.Add(1)
	go func() { defer wg.Done(); feed2.run(ctx, c, fan2) }()
	waitFor(t, 5*time.Second, "c2 video", func() bool { return feed2.frames.Load() > 0 })
	x := dialWith(t, e, "c2", OfferOptions{Stream: StreamSub})
	waitFor(t, 10*time.Second, "c2 frames", func() bool { return x.frames.Load() > 5 })
	if xi, _ := e.Info(x.session); xi.Stream != StreamMain {
		t.Fatalf("c2 without a sub stream served %q, want main", xi.Stream)
	}
}

// A node behind NAT allocates its own relay candidate on the hub's TURN
// server; a browser that reaches only that server (relay-only) plays.
func TestNodeRelayCandidateThroughTURN(t *testing.T) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := turn.NewServer(turn.ServerConfig{Realm: "ronda", AuthHandler: turn.NewLongTermAuthHandler("secret", nil),
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: conn,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.ParseIP("127.0.0.1"), Address: "127.0.0.1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	user, pass, err := turn.GenerateLongTermCredentials("secret", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	servers := []webrtc.ICEServer{{URLs: []string{"turn:" + conn.LocalAddr().String() + "?transport=udp"}, Username: user, Credential: pass}}

	e, _ := start(t, nil)
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(
		webrtc.Configuration{ICEServers: servers, ICETransportPolicy: webrtc.ICETransportPolicyRelay})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var frames atomic.Int64
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if p.Marker {
				frames.Add(1)
			}
		}
	})
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, _ := pc.CreateOffer(nil)
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	answer, session, err := e.Offer(context.Background(), "c1", pc.LocalDescription().SDP, OfferOptions{ICEServers: servers, RelayOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(answer, "typ relay") || strings.Contains(answer, "typ host") {
		t.Fatalf("answer candidates: want only the node's relay candidate:\n%s", answer)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "frames through the relays", func() bool { return frames.Load() > 15 })
	if in, _ := e.Info(session); in.Path != "turn" {
		t.Fatalf("path %q, want turn", in.Path)
	}
}
