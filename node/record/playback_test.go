package record

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/node/media"
)

// probeFrames returns the presentation times ffprobe shows for a file.
func probeFrames(t *testing.T, mp4 []byte) []float64 {
	t.Helper()
	f := filepath.Join(t.TempDir(), "p.mp4")
	if err := os.WriteFile(f, mp4, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "frame=pts_time", "-of", "csv=p=0", f).Output()
	if err != nil {
		t.Fatal(err)
	}
	var ts []float64
	for _, l := range strings.Fields(string(out)) {
		v, err := strconv.ParseFloat(strings.TrimSuffix(l, ","), 64)
		if err == nil {
			ts = append(ts, v)
		}
	}
	return ts
}

// Playback shows exactly [from,to): it decodes from the keyframe before
// from but an edit list hides the frames before it, and it cuts at to.
func TestPlaybackTrimsToExactTimes(t *testing.T) {
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	st, err := Open(t.TempDir(), Options{Logger: quiet(), SyncInterval: time.Hour, SegmentDuration: 4 * time.Second, Now: func() time.Time { return base.Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFeeder(t, st, "c1", base)
	f.feed(12 * time.Second)
	st.syncOnce()
	k := st.keyframeAtOrBefore("c1", base.Add(5500*time.Millisecond))
	from, to := k.Add(600*time.Millisecond), k.Add(4*time.Second+300*time.Millisecond) // mid-GOP to mid-GOP, across a segment boundary
	m, err := st.OpenPlayback("c1", from, to)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !m.From.Equal(from) || !m.To.Equal(to) || !m.KeyframeFrom.Equal(k) {
		t.Fatalf("media %s–%s from keyframe %s, want %s–%s from %s", m.From, m.To, m.KeyframeFrom, from, to, k)
	}
	raw, err := io.ReadAll(m)
	if err != nil || int64(len(raw)) != m.Size {
		t.Fatalf("read %d of %d bytes: %v", len(raw), m.Size, err)
	}
	ffmpegCheck(t, raw)
	ts := probeFrames(t, raw)
	// The frames between the keyframe and from are decoded but carry
	// negative presentation times (players do not show them); the shown
	// ones start at 0 and stop before to-from. 15 fps.
	var shown []float64
	pre := 0
	for _, v := range ts {
		if v < -0.0005 {
			pre++
		} else {
			shown = append(shown, v)
		}
	}
	if wantPre := int(from.Sub(k).Seconds()*15 + 0.5); pre != wantPre {
		t.Fatalf("%d frames before from, want %d (%.1f s at 15 fps)", pre, wantPre, from.Sub(k).Seconds())
	}
	want := int(to.Sub(from).Seconds()*15 + 0.5)
	if len(shown) < want-1 || len(shown) > want+1 {
		t.Fatalf("%d frames shown, want %d (%.2f s at 15 fps)", len(shown), want, to.Sub(from).Seconds())
	}
	if shown[0] > 0.001 || shown[len(shown)-1] >= to.Sub(from).Seconds() {
		t.Fatalf("shown from %.3f s to %.3f s, want from 0 to before %.3f s", shown[0], shown[len(shown)-1], to.Sub(from).Seconds())
	}
}

// HTTP Range: any byte range of the file is the same bytes as in the whole.
func TestPlaybackServesRanges(t *testing.T) {
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	st, err := Open(t.TempDir(), Options{Logger: quiet(), SyncInterval: time.Hour, SegmentDuration: 3 * time.Second, Now: func() time.Time { return base.Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFeeder(t, st, "c1", base)
	f.feed(8 * time.Second)
	st.syncOnce()
	from, to := base.Add(1200*time.Millisecond), base.Add(7*time.Second)
	var whole bytes.Buffer
	if err := st.WritePlayback(context.Background(), &whole, "c1", from, to); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, err := st.OpenPlayback("c1", from, to)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer m.Close()
		http.ServeContent(w, r, "x.mp4", time.Time{}, m)
	}))
	defer srv.Close()
	n := int64(whole.Len())
	for _, rg := range [][2]int64{{0, 99}, {5, 4000}, {n / 3, n/3 + 100_000}, {n - 50, n - 1}, {1000, n - 1}} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("Range", "bytes="+strconv.FormatInt(rg[0], 10)+"-"+strconv.FormatInt(rg[1], 10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, whole.Bytes()[rg[0]:rg[1]+1]) {
			t.Fatalf("range %v: status %d, %d bytes, equal %v", rg, resp.StatusCode, len(body), bytes.Equal(body, whole.Bytes()[rg[0]:min(rg[1]+1, n)]))
		}
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ContentLength != n {
		t.Fatalf("Content-Length %d, want %d", resp.ContentLength, n)
	}
}

// Playback across a gap (the camera was offline for 10 s) crosses it: the
// answer says there is one gap, its frames jump in time by the gap's length
// (nothing is stretched or silently cut), and the recordings list the gap
// with its reason.
func TestPlaybackAcrossAGap(t *testing.T) {
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	st, err := Open(t.TempDir(), Options{Logger: quiet(), SyncInterval: time.Hour, SegmentDuration: 10 * time.Second, Now: func() time.Time { return base.Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFeeder(t, st, "c1", base)
	f.feed(4 * time.Second)
	lastBefore := f.wall()
	f.rec.OnStop(media.StopReason(media.StopCameraOffline, "camera unreachable: test"))
	f.offset = 10 * time.Second // back 10 s later, in a new session
	f.rec.OnTrack(media.Track{Codec: media.CodecH264, SPS: f.clip.SPS, PPS: f.clip.PPS, Width: 640, Height: 360})
	f.i = 0 // the new session starts at a keyframe
	f.feed(4 * time.Second)
	f.barrier()
	st.syncOnce()

	_, gaps, err := st.Spans("c1", base, f.wall())
	if err != nil || len(gaps) != 1 || gaps[0].Reason != ReasonCameraOffline || gaps[0].End.Sub(gaps[0].Start) < 9*time.Second {
		t.Fatalf("gaps %+v (%v): want one camera_offline gap of ~10 s", gaps, err)
	}
	from, to := base.Add(time.Second), f.wall().Add(-time.Second)
	m, err := st.OpenPlayback("c1", from, to)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Gaps != 1 || m.Truncated != "" {
		t.Fatalf("gaps %d truncated %q: want the one gap crossed and said", m.Gaps, m.Truncated)
	}
	raw, err := io.ReadAll(m)
	if err != nil {
		t.Fatal(err)
	}
	ffmpegCheck(t, raw)
	ts := probeFrames(t, raw)
	jump := 0.0
	for i := 1; i < len(ts); i++ {
		jump = max(jump, ts[i]-ts[i-1])
	}
	want := base.Add(14 * time.Second).Sub(lastBefore).Seconds() // first frame after minus last frame before
	if jump < want-0.2 || jump > want+0.2 {
		t.Fatalf("largest step between frames %.2f s, want the gap (%.2f s)", jump, want)
	}
	if last := ts[len(ts)-1]; last < to.Sub(from).Seconds()-0.3 || last > to.Sub(from).Seconds() {
		t.Fatalf("last frame at %.2f s, want just before %.2f s: the timeline keeps wall time across the gap", last, to.Sub(from).Seconds())
	}
}
