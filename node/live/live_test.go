package live

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

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
	maxCall atomic.Int64 // the longest OnAccessUnit call (ns)
	frames  atomic.Int64

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

	mu        sync.Mutex
	first     []byte // NAL unit types of the first complete access unit
	fillers   int    // filler NAL units received (must stay 0)
	decodeErr error
}

// dial makes a receive-only pion client and completes WHEP against e.
func dial(t *testing.T, e *Engine, cam string) *client {
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
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			c.packets.Add(1)
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
	answer, session, err := e.Offer(context.Background(), cam, pc.LocalDescription().SDP)
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
	if _, _, err := e.Offer(context.Background(), "c1", "v=0"); !errors.Is(err, ErrNoVideo) {
		t.Fatalf("offer before video: %v, want ErrNoVideo", err)
	}
	if _, _, err := e.Offer(context.Background(), "nope", "v=0"); !errors.Is(err, ErrUnknownCamera) {
		t.Fatalf("offer for an unknown camera: %v", err)
	}
	if err := e.Delete("gone"); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("deleting an unknown session: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Offer(context.Background(), "c1", "v=0"); !errors.Is(err, ErrClosed) {
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
	v := &viewer{queue: make(chan *frame, 2), log: quiet()}
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
	cache := c.join(v)
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
		if got := rtpTime(c.d); got != c.want {
			t.Fatalf("rtpTime(%v) = %d, want %d", c.d, got, c.want)
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
