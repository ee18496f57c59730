package live

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/ronda-jakarta/ronda/camsim"
	"github.com/ronda-jakarta/ronda/node/media"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// feed plays the test clip into a fan-out at 15 fps until ctx ends.
func feed(ctx context.Context, t *testing.T, f *media.Fanout) {
	raw, err := os.ReadFile("../../testdata/clip.h264")
	if err != nil {
		t.Error(err)
		return
	}
	clip, err := camsim.ParseClip(raw)
	if err != nil {
		t.Error(err)
		return
	}
	f.OnTrack(media.Track{Codec: media.CodecH264, SPS: clip.SPS, PPS: clip.PPS, Width: 640, Height: 360})
	tick := time.NewTicker(time.Second / 15)
	defer tick.Stop()
	for i := 0; ; i++ {
		au := clip.AUs[i%len(clip.AUs)]
		// Strip in-band parameter sets so the engine must prepend them.
		var nalus [][]byte
		for _, n := range au {
			if t := n[0] & 0x1f; t != 7 && t != 8 {
				nalus = append(nalus, n)
			}
		}
		f.OnAccessUnit(&media.AccessUnit{PTS: time.Duration(i) * time.Second / 15, Wall: time.Now(), Key: nalus[0][0]&0x1f == 5, NALUs: nalus})
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

type client struct {
	pc       *webrtc.PeerConnection
	packets  atomic.Int64
	firstNAL atomic.Int32
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
	t.Cleanup(func() { pc.Close() })
	c := &client{pc: pc}
	c.firstNAL.Store(-1)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if c.packets.Add(1) == 1 && len(p.Payload) > 0 {
				nal := p.Payload[0] & 0x1f
				if nal == 24 && len(p.Payload) > 3 { // STAP-A: the first aggregated unit
					nal = p.Payload[3] & 0x1f
				}
				c.firstNAL.Store(int32(nal))
			}
		}
	})
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, _ := pc.CreateOffer(nil)
	gathered := webrtc.GatheringCompletePromise(pc)
	_ = pc.SetLocalDescription(offer)
	<-gathered
	answer, _, err := e.Offer(context.Background(), cam, pc.LocalDescription().SDP)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	return c
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

func TestTwoViewersStartAtKeyframeWithParameterSets(t *testing.T) {
	e, err := New(Options{UDPAddr: "127.0.0.1:0", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	fan := media.NewFanout()
	e.AddCamera("c1", fan)
	if _, _, err := e.Offer(context.Background(), "c1", "v=0"); err != ErrNoVideo {
		t.Fatalf("offer before video: %v, want ErrNoVideo", err)
	}
	if _, _, err := e.Offer(context.Background(), "nope", "v=0"); err == nil {
		t.Fatal("offer for an unknown camera accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); feed(ctx, t, fan) }()
	defer func() { cancel(); wg.Wait() }()
	e.mu.Lock()
	cam := e.cameras["c1"]
	e.mu.Unlock()
	waitFor(t, 5*time.Second, "video", func() bool { _, ok := cam.currentTrack(); return ok })
	time.Sleep(500 * time.Millisecond) // mid-GOP: the cache must serve the keyframe

	a, b := dial(t, e, "c1"), dial(t, e, "c1")
	waitFor(t, 10*time.Second, "packets at both viewers", func() bool { return a.packets.Load() > 50 && b.packets.Load() > 50 })
	for i, c := range []*client{a, b} {
		if n := c.firstNAL.Load(); n != 7 {
			t.Fatalf("viewer %d: first NAL type %d, want 7 (SPS before the first keyframe)", i, n)
		}
	}
	if n := e.Viewers("c1"); n != 2 {
		t.Fatalf("viewers %d, want 2", n)
	}
	e.mu.Lock()
	var ids []string
	for id := range e.sessions {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	for _, id := range ids {
		if err := e.Delete(id); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.Viewers("c1"); n != 0 {
		t.Fatalf("viewers after delete %d", n)
	}
	if err := e.Delete("gone"); err == nil {
		t.Fatal("deleting an unknown session succeeded")
	}
}

func TestSlowViewerSkipsToKeyframe(t *testing.T) {
	v := &viewer{queue: make(chan *frame, 2)}
	key, delta := &frame{key: true}, &frame{}
	v.offer(key)
	v.offer(delta)
	v.offer(delta) // full: skipping starts
	if !v.skipping.Load() || v.drops.Load() != 1 {
		t.Fatalf("skipping %v drops %d", v.skipping.Load(), v.drops.Load())
	}
	<-v.queue
	<-v.queue
	v.offer(delta) // dropped: not a keyframe
	if len(v.queue) != 0 {
		t.Fatal("delta frame queued while skipping")
	}
	v.offer(key)
	if v.skipping.Load() || len(v.queue) != 1 {
		t.Fatal("did not resume at the keyframe")
	}
}

func TestChooseH264MatchesCameraProfile(t *testing.T) {
	offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 98 100 102\r\nc=IN IP4 0.0.0.0\r\n" +
		"a=rtpmap:96 VP8/90000\r\n" +
		"a=rtpmap:98 H264/90000\r\na=fmtp:98 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n" +
		"a=rtpmap:100 H264/90000\r\na=fmtp:100 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n" +
		"a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f\r\n"
	cases := []struct {
		name string
		sps  []byte
		pt   webrtc.PayloadType
	}{
		{"constrained baseline", []byte{0x67, 0x42, 0xc0, 0x1e}, 100},
		{"high", []byte{0x67, 0x64, 0x00, 0x28}, 102},
		{"main falls back", []byte{0x67, 0x4d, 0x00, 0x28}, 98},
	}
	for _, c := range cases {
		got, err := chooseH264(offer, c.sps)
		if err != nil || got.PayloadType != c.pt {
			t.Fatalf("%s: pt %d err %v, want %d", c.name, got.PayloadType, err, c.pt)
		}
	}
	if _, err := chooseH264("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n", []byte{0x67, 0x42, 0xc0, 0x1e}); err != ErrNoH264 {
		t.Fatalf("offer without H.264: %v", err)
	}
}
