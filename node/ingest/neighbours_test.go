package ingest

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/camsim"
)

// listen starts a TCP server on loopback that handles each connection with fn.
func listen(t *testing.T, fn func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); fn(c) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// TestBadCamerasDoNotDisturbOthers runs a good camera next to cameras that
// fail in every way seen in the field — wrong password, wrong path, a
// server that answers garbage, one that accepts and never answers, one that
// is gone — and checks the good camera's frames keep flowing at full rate
// with no stall, while each bad one says what is wrong.
func TestBadCamerasDoNotDisturbOthers(t *testing.T) {
	good, err := camsim.New(camsim.Config{Addr: "127.0.0.1:0", Cameras: 1, ClipPath: clip264, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := good.Start(); err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	locked, err := camsim.New(camsim.Config{Addr: "127.0.0.1:0", Cameras: 1, ClipPath: clip264, Logger: quiet(), User: "admin", Pass: "right"})
	if err != nil {
		t.Fatal(err)
	}
	if err := locked.Start(); err != nil {
		t.Fatal(err)
	}
	defer locked.Close()
	garbage := listen(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			if _, err := c.Write([]byte("HTTP/1.0 200 OK\r\nthis is not RTSP\r\n\r\n\x00\xff\xfe")); err != nil {
				return
			}
		}
	})
	silent := listen(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })

	type cam struct {
		name, url string
		reason    string // what the failing state must say ("" = need not fail in time)
		cam       *Camera
		out       *sink
	}
	cams := []*cam{
		{name: "good", url: good.URL(1)},
		{name: "wrong password", url: strings.Replace(locked.URL(1), "admin:right@", "admin:wrong@", 1), reason: "credentials"},
		{name: "wrong path", url: "rtsp://" + good.Addr() + "/nope", reason: "no stream at this path"},
		{name: "garbage", url: "rtsp://" + garbage + "/cam1", reason: "does not answer in RTSP"},
		{name: "silent", url: "rtsp://" + silent + "/cam1"},
		{name: "offline", url: "rtsp://127.0.0.1:1/cam1", reason: "unreachable"},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for _, c := range cams {
		c.out = &sink{}
		c.cam = New(Config{CameraID: c.name, URL: c.url, Logger: quiet(), MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}, c.out)
		wg.Add(1)
		go func() { defer wg.Done(); c.cam.Run(ctx) }()
	}
	g := cams[0]
	waitFor(t, 10*time.Second, "the good camera's first frame", func() bool { return g.out.count() > 0 })
	n0 := g.out.count()
	time.Sleep(5 * time.Second)

	g.out.mu.Lock()
	aus := g.out.aus[n0:]
	var stall time.Duration
	for i := 1; i < len(aus); i++ {
		stall = max(stall, aus[i].Wall.Sub(aus[i-1].Wall))
	}
	g.out.mu.Unlock()
	// 15 fps for 5 s while five neighbours fail and reconnect every 20-100 ms.
	if len(aus) < 70 || stall > 300*time.Millisecond {
		t.Fatalf("good camera: %d frames in 5 s (want ~75), longest stall %s", len(aus), stall)
	}
	if st := g.cam.Status(); st.State != StateStreaming || st.Reconnects != 0 {
		t.Fatalf("good camera status %+v", st)
	}
	for _, c := range cams[1:] {
		st := c.cam.Status()
		t.Logf("%s: %s (%s), %d reconnects", c.name, st.State, st.Reason, st.Reconnects)
		if c.out.count() != 0 {
			t.Errorf("%s: %d frames handed on", c.name, c.out.count())
		}
		if c.name == "silent" {
			if st.State == StateStreaming {
				t.Errorf("%s: state %s", c.name, st.State)
			}
			continue
		}
		if st.State != StateFailing || st.Reconnects == 0 {
			t.Errorf("%s: state %s after %d reconnects, want failing and retrying", c.name, st.State, st.Reconnects)
		}
		if st.Reason == "" || !strings.Contains(st.Reason, c.reason) {
			t.Errorf("%s: reason %q, want it to say %q", c.name, st.Reason, c.reason)
		}
	}
}
