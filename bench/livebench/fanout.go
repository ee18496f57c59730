package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	bu "github.com/ronda-jakarta/ronda/bench/internal/benchutil"
	"github.com/ronda-jakarta/ronda/demo"
	"github.com/ronda-jakarta/ronda/kelurahan"
)

// viewer is one pion WebRTC client counting what it receives.
type viewer struct {
	pc       *webrtc.PeerConnection
	frames   atomic.Int64 // RTP packets with the marker bit: one per frame
	packets  atomic.Int64
	seqGaps  atomic.Int64 // packets missing by sequence number
	location string
}

func newViewer(c *demo.Client, camera string) (*viewer, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	v := &viewer{pc: pc}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		var last uint16
		first := true
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if !first {
				if d := p.SequenceNumber - last; d != 1 && d < 0x8000 {
					v.seqGaps.Add(int64(d - 1))
				}
			}
			first, last = false, p.SequenceNumber
			v.packets.Add(1)
			if p.Marker {
				v.frames.Add(1)
			}
		}
	})
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		return nil, err
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return nil, err
	}
	<-gathered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answer, loc, err := c.Whep(ctx, camera, pc.LocalDescription().SDP)
	if err != nil {
		pc.Close()
		return nil, err
	}
	v.location = loc
	return v, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
}

func fanout(root, bin, dir string, counts []int, window time.Duration) {
	fmt.Printf("\n== fan-out: 1 camera (640x360, 15 fps) to N WebRTC viewers (pion, in the bench process); node CPU over %s ==\n", window)
	fdir := filepath.Join(dir, "fanout")
	camAddr := fmt.Sprintf("127.0.0.1:%d", bu.FreePort())
	sim := bu.Start(dir, "camsim-fanout", bin, "camsim", "--addr", camAddr, "--cameras", "1", "--clip", filepath.Join(root, "testdata", "clip.h264"))
	defer stopProc(sim)
	bu.WaitPort(camAddr)
	n := startNode(bin, fdir, map[string]string{"cam1": "rtsp://" + camAddr + "/cam1"})
	defer stopProc(n.cmd)
	c := n.client()
	id := kelurahan.CompactCode("31.71.01.1001") + "-cam1"
	n.waitStreaming(c, id)
	pid := n.cmd.Process.Pid

	measure := func() (cpu float64) {
		c0 := bu.CPUSeconds(pid)
		time.Sleep(window)
		return (bu.CPUSeconds(pid) - c0) / window.Seconds() * 100
	}
	time.Sleep(3 * time.Second)
	idle := measure()
	fmt.Printf("%8s %10s %12s %14s %22s %10s %14s\n", "viewers", "node CPU%", "CPU%/viewer", "Mbit/s out", "frames/viewer min-max", "expected", "packets lost")
	fmt.Printf("%8d %10.1f %12s %14s %22s %10s %14s\n", 0, idle, "-", "-", "-", "-", "-")
	for _, want := range counts {
		var vs []*viewer
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for i := 0; i < want; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				v, err := newViewer(c, id)
				bu.Check(err)
				mu.Lock()
				vs = append(vs, v)
				mu.Unlock()
			}()
		}
		wg.Wait()
		deadline := time.Now().Add(30 * time.Second)
		for {
			ready := 0
			for _, v := range vs {
				if v.frames.Load() > 0 {
					ready++
				}
			}
			if ready == len(vs) {
				break
			}
			if time.Now().After(deadline) {
				bu.Fatal("only %d of %d viewers receive video", ready, len(vs))
			}
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(3 * time.Second)
		f0 := make([]int64, len(vs))
		var g0 int64
		for i, v := range vs {
			f0[i] = v.frames.Load()
			g0 += v.seqGaps.Load()
		}
		bytes0 := liveBytes(c, id)
		cpu := measure()
		bytes1 := liveBytes(c, id)
		lo, hi := int64(1<<62), int64(0)
		var gaps int64
		for i, v := range vs {
			d := v.frames.Load() - f0[i]
			lo, hi = min(lo, d), max(hi, d)
			gaps += v.seqGaps.Load()
		}
		gaps -= g0
		expected := int64(window.Seconds() * 15)
		fmt.Printf("%8d %10.1f %12.3f %14.1f %22s %10d %14d\n", want, cpu, (cpu-idle)/float64(want),
			(bytes1-bytes0)*8/window.Seconds()/1e6, strconv.FormatInt(lo, 10)+"-"+strconv.FormatInt(hi, 10), expected, gaps)
		for _, v := range vs {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = c.Do(ctx, "DELETE", v.location, nil, "", nil)
			cancel()
			_ = v.pc.Close()
		}
		time.Sleep(2 * time.Second)
	}
}

// liveBytes reads ronda_live_bytes_out_total for a camera from /metrics.
func liveBytes(c *demo.Client, id string) float64 {
	var raw []byte
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Do(ctx, "GET", "/metrics", nil, "", &raw)
	bu.Check(err)
	return metric(string(raw), `ronda_live_bytes_out_total{camera="`+id+`",stream="main"}`)
}

// metric finds a sample's value in Prometheus text format.
func metric(text, series string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			bu.Check(err)
			return f
		}
	}
	bu.Fatal("no %s in /metrics", series)
	return 0
}
