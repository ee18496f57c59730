package record

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ronda-jakarta/ronda/node/media"
)

// BenchmarkPlaybackSeek measures playback time-to-first-byte for a random
// 1-minute range of a random camera out of 30 days of footage of 110
// cameras (RONDA_SEEK_CAMERAS, RONDA_SEEK_DAYS to change), through HTTP on
// loopback exactly as a node serves media.mp4 (OpenPlayback, then
// http.ServeContent). It reports p50/p99 of the time to the first byte and
// to the first 256 KiB (the init and the first GOP: what a player needs to
// show a picture), with a warm cache and with a cold one (the page cache
// dropped and the index reopened before each request).
//
// The index is built synthetically but with the store's own encodings: one
// real 5-minute segment is recorded through the recorder (1 s GOPs), and its
// GOP table and segment record are repeated for every camera and every 5
// minutes of 30 days (950,400 segments, 285 million GOPs, ~3 GB of index
// before compression). Only the segment files a query touches are created,
// as hard links to the recorded one. Set RONDA_SEEK_DIR to keep the index
// between runs (it is rebuilt when absent).
//
//	go test ./node/record -run '^$' -bench BenchmarkPlaybackSeek -benchtime 400x -timeout 60m
func BenchmarkPlaybackSeek(b *testing.B) {
	cams, days := envInt("RONDA_SEEK_CAMERAS", 110), envInt("RONDA_SEEK_DAYS", 30)
	dir := os.Getenv("RONDA_SEEK_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	base := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	tmpl := seekIndex(b, dir, cams, days, base)

	open := func() *Store {
		st, err := Open(dir, Options{Logger: quiet(), SyncInterval: time.Hour,
			Retention: Retention{Interval: time.Hour, FreeSpace: func() (uint64, error) { return 1 << 50, nil }}})
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	var st *Store
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		from, _ := time.Parse(time.RFC3339Nano, q.Get("from"))
		to, _ := time.Parse(time.RFC3339Nano, q.Get("to"))
		m, err := st.OpenPlayback(q.Get("camera"), from, to)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		defer m.Close()
		w.Header().Set("Content-Type", "video/mp4")
		http.ServeContent(w, r, "", time.Time{}, m)
	}))
	defer srv.Close()
	client := srv.Client()

	span := time.Duration(days) * 24 * time.Hour
	rng := rand.New(rand.NewPCG(1, 2))
	query := func() (cam string, from, to time.Time) {
		cam = fmt.Sprintf("cam%03d", rng.IntN(cams)+1)
		from = base.Add(time.Duration(rng.Int64N(int64(span - 2*time.Minute))))
		return cam, from, from.Add(time.Minute)
	}
	get := func(cam string, from, to time.Time) (first, gop time.Duration) {
		// The files this range touches exist (hard links to the template).
		tmpl.link(b, dir, cam, from, to)
		u := srv.URL + "/media.mp4?" + url.Values{"camera": {cam}, "from": {from.Format(time.RFC3339Nano)}, "to": {to.Format(time.RFC3339Nano)}}.Encode()
		t0 := time.Now()
		resp, err := client.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(resp.Body)
			b.Fatalf("%s: %s: %s", u, resp.Status, msg)
		}
		buf := make([]byte, 256<<10)
		if _, err := io.ReadFull(resp.Body, buf[:1]); err != nil {
			b.Fatal(err)
		}
		first = time.Since(t0)
		if _, err := io.ReadFull(resp.Body, buf[1:]); err != nil {
			b.Fatal(err)
		}
		gop = time.Since(t0)
		if resp.ContentLength < 1<<20 {
			b.Fatalf("a minute of footage is %d bytes", resp.ContentLength)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return first, gop
	}
	report := func(b *testing.B, firsts, gops []time.Duration) {
		slices.Sort(firsts)
		slices.Sort(gops)
		pct := func(d []time.Duration, p float64) float64 {
			return float64(d[min(len(d)-1, int(float64(len(d))*p))].Microseconds()) / 1000
		}
		b.ReportMetric(pct(firsts, 0.50), "ttfb-p50-ms")
		b.ReportMetric(pct(firsts, 0.99), "ttfb-p99-ms")
		b.ReportMetric(pct(gops, 0.50), "first256KiB-p50-ms")
		b.ReportMetric(pct(gops, 0.99), "first256KiB-p99-ms")
		b.ReportMetric(0, "ns/op")
	}

	t0 := time.Now()
	st = open()
	opened := time.Since(t0)
	defer st.Close()
	// Once: a whole answer plays, and is the minute asked for.
	{
		cam, from, to := query()
		tmpl.link(b, dir, cam, from, to)
		q := url.Values{"camera": {cam}, "from": {from.Format(time.RFC3339Nano)}, "to": {to.Format(time.RFC3339Nano)}}
		resp, err := client.Get(srv.URL + "/media.mp4?" + q.Encode())
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("%s %v", resp.Status, err)
		}
		f := filepath.Join(b.TempDir(), "minute.mp4")
		if err := os.WriteFile(f, body, 0o600); err != nil {
			b.Fatal(err)
		}
		out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", f).CombinedOutput()
		d, perr := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
		if err != nil || perr != nil || d < 59 || d > 61 {
			b.Fatalf("the answer for a minute of %s plays for %q (%v)", cam, out, err)
		}
	}
	b.Run("warm", func(b *testing.B) {
		for range 20 { // warm the index's upper levels and the client's connection
			get(query())
		}
		var firsts, gops []time.Duration
		for b.Loop() {
			f, g := get(query())
			firsts, gops = append(firsts, f), append(gops, g)
		}
		report(b, firsts, gops)
		b.ReportMetric(opened.Seconds(), "store-open-s")
	})
	// Cold: the page cache is dropped before every request, so the index
	// blocks and segment files come from the disk. (Pebble's own 8 MB block
	// cache stays, as in a running node; it holds a sliver of this index.)
	b.Run("cold", func(b *testing.B) {
		var firsts, gops []time.Duration
		for b.Loop() {
			b.StopTimer()
			cam, from, to := query()
			tmpl.link(b, dir, cam, from, to)
			dropCaches(b)
			b.StartTimer()
			f, g := get(cam, from, to)
			firsts, gops = append(firsts, f), append(gops, g)
		}
		report(b, firsts, gops)
	})
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// dropCaches empties the page cache (root only; else the run says so).
func dropCaches(b *testing.B) {
	f, err := os.OpenFile("/proc/sys/vm/drop_caches", os.O_WRONLY, 0)
	if err != nil {
		b.Skipf("cannot drop the page cache (%v): the cold numbers need root", err)
	}
	defer f.Close()
	if _, err := f.WriteString("3\n"); err != nil {
		b.Skipf("cannot drop the page cache: %v", err)
	}
}

// seekTemplate is the recorded segment every synthetic one copies.
type seekTemplate struct {
	file     string // absolute path of the recorded segment file
	seg      segment
	duration time.Duration // the segment's length (5 min)
	base     time.Time
	ids      map[string]uint64 // camera -> id of its first synthetic segment
	perCam   int
}

// link hard-links the template file under the names of the segments
// [from, to) of cam lies in.
func (t *seekTemplate) link(b *testing.B, dir, cam string, from, to time.Time) {
	b.Helper()
	first := int(from.Add(-t.duration).Sub(t.base) / t.duration) // the keyframe may be in the previous one
	last := int(to.Sub(t.base) / t.duration)
	for i := max(0, first); i <= min(last, t.perCam-1); i++ {
		id := t.ids[cam] + uint64(i)
		p := filepath.Join(dir, "segments", cam, fmt.Sprintf("%016d.mp4", id))
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			b.Fatal(err)
		}
		if err := os.Link(t.file, p); err != nil {
			b.Fatal(err)
		}
	}
}

// seekIndex builds (or finds) the synthetic index in dir.
func seekIndex(b *testing.B, dir string, cams, days int, base time.Time) *seekTemplate {
	b.Helper()
	tdir := filepath.Join(dir, "template")
	marker := filepath.Join(dir, "built.json")
	t := &seekTemplate{base: base, ids: map[string]uint64{}}
	type built struct {
		Cameras, Days int
		Seg           segment
		Table         []byte
		Params        []byte
		ParamsKey     []byte
	}
	var bt built
	if raw, err := os.ReadFile(marker); err == nil && json.Unmarshal(raw, &bt) == nil && bt.Cameras == cams && bt.Days == days {
		b.Logf("reusing the synthetic index in %s", dir)
	} else {
		start := time.Now()
		// One real segment: 12 minutes through the recorder, keep the
		// second (a whole 5-minute one; the first is staggered).
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		st, err := Open(tdir, Options{Logger: quiet(), SyncInterval: time.Hour, Now: func() time.Time { return base.Add(time.Hour) }})
		if err != nil {
			b.Fatal(err)
		}
		// A 4 Mbit/s camera: each frame padded with filler of a random
		// size, so GOP sizes vary as a real camera's do and the GOP table
		// has a real table's entropy (the clip alone repeats every 10 s).
		f := newFeeder(b, st, "tmpl", base.Add(-time.Hour))
		rng := rand.New(rand.NewPCG(3, 4))
		filler := make([]byte, 48<<10)
		filler[0] = 12 // H.264 filler data
		for i := 1; i < len(filler); i++ {
			filler[i] = 0xff
		}
		frame := time.Second / 15
		for n := range 12 * 60 * 15 {
			au := f.clip.AUs[n%len(f.clip.AUs)]
			key := false
			for _, nalu := range au {
				key = key || nalu[0]&0x1f == 5
			}
			pad := filler[:20<<10+rng.IntN(24<<10)]
			nalus := append(au[:len(au):len(au)], pad)
			pts := time.Duration(n) * frame
			f.rec.OnAccessUnit(&media.AccessUnit{PTS: pts, Wall: f.base.Add(pts), Key: key, NALUs: nalus})
			if n%300 == 299 {
				f.barrier() // in steps the recorder's queue holds
			}
		}
		f.barrier()
		f.rec.OnStop("node_down: template done")
		f.barrier()
		st.syncOnce()
		var best *segment
		it, err := st.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixSegment}, UpperBound: []byte{prefixSegment + 1}})
		if err != nil {
			b.Fatal(err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			sg, err := decodeSegment(it.Value())
			if err != nil {
				b.Fatal(err)
			}
			if sg.Status == SegClosed && (best == nil || sg.EndNs-sg.StartNs > best.EndNs-best.StartNs) {
				best = sg
			}
		}
		it.Close()
		if best == nil {
			b.Fatal("the template recording has no closed segment")
		}
		tbl, ok, err := st.get(tableKey(best.Camera, best.StartNs))
		if err != nil || !ok {
			b.Fatalf("no GOP table for the template segment: %v", err)
		}
		var h [8]byte
		if n, err := hex.Decode(h[:], []byte(best.Params)); err != nil || n != 8 {
			b.Fatalf("template params hash %q: %v", best.Params, err)
		}
		pv, _, _ := st.get(paramsKey(h))
		bt = built{Cameras: cams, Days: days, Seg: *best, Table: tbl, Params: pv, ParamsKey: paramsKey(h)}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}

		// The synthetic index, written with the store's encodings.
		st, err = Open(dir, Options{Logger: quiet(), SyncInterval: time.Hour,
			Retention: Retention{Interval: time.Hour, FreeSpace: func() (uint64, error) { return 1 << 50, nil }}})
		if err != nil {
			b.Fatal(err)
		}
		dur := time.Duration(best.EndNs - best.StartNs)
		per := int(time.Duration(days) * 24 * time.Hour / dur)
		_, n := uvarint(tbl) // version
		_, m := uvarint(tbl[n:])
		entries := tbl[n+m:] // count and GOP entries, shared by all
		id := uint64(1)
		batch := st.db.NewBatch()
		tmplSeg := *best
		for c := 1; c <= cams; c++ {
			cam := fmt.Sprintf("cam%03d", c)
			for i := range per {
				s0 := base.Add(time.Duration(i) * dur).UnixNano()
				sg := tmplSeg
				sg.Camera, sg.ID, sg.File = cam, id, filepath.Join(cam, fmt.Sprintf("%016d.mp4", id))
				sg.StartNs, sg.EndNs = s0, s0+(best.EndNs-best.StartNs)
				v := binary.AppendUvarint(binary.AppendUvarint(make([]byte, 0, len(tbl)+8), 1), id)
				v = append(v, entries...)
				_ = batch.Set(segmentKey(cam, id), encodeSegment(&sg), nil)
				_ = batch.Set(tableKey(cam, s0), v, nil)
				_ = batch.Set(orderKey(id), []byte(cam), nil)
				id++
				if batch.Len() > 32<<20 {
					if err := batch.Commit(pebble.NoSync); err != nil {
						b.Fatal(err)
					}
					batch = st.db.NewBatch()
				}
			}
		}
		_ = batch.Set(bt.ParamsKey, bt.Params, nil)
		_ = batch.Set(keyNextSeg, binary.BigEndian.AppendUint64(nil, id), nil)
		if err := batch.Commit(pebble.Sync); err != nil {
			b.Fatal(err)
		}
		if err := st.db.Compact(b.Context(), []byte{0}, []byte{0xff}, true); err != nil {
			b.Fatal(err)
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		raw, _ := json.Marshal(bt)
		if err := os.WriteFile(marker, raw, 0o600); err != nil {
			b.Fatal(err)
		}
		var size int64
		_ = filepath.Walk(filepath.Join(dir, "index"), func(_ string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				size += fi.Size()
			}
			return nil
		})
		gops, _ := uvarint(entries)
		b.Logf("built a synthetic index of %d cameras x %d days = %d segments (%d GOPs each, a %d-byte table) in %s; %.2f GB on disk",
			cams, days, id-1, gops, len(tbl), time.Since(start).Round(time.Second), float64(size)/1e9)
	}
	t.file = filepath.Join(tdir, "segments", bt.Seg.File)
	t.seg = bt.Seg
	t.duration = time.Duration(bt.Seg.EndNs - bt.Seg.StartNs)
	t.perCam = int(time.Duration(days) * 24 * time.Hour / t.duration)
	for c := 1; c <= cams; c++ {
		t.ids[fmt.Sprintf("cam%03d", c)] = uint64((c-1)*t.perCam + 1)
	}
	return t
}
