package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ronda-jakarta/ronda/kelurahan"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// syntheticCity writes RONDA_CITY_CAMERAS cameras (default 30,000) spread
// over the 267 kelurahan with RONDA_CITY_DAYS (90) days of coverage into a
// fresh FSM directory. Each camera-day has 1–3 outages of 5–30 minutes, so a
// camera holds about 180 spans.
type city struct {
	dir        string
	cameras    int
	days       int
	start, end time.Time
	tags       []string
	rng        *rand.Rand
}

func syntheticCity(b *testing.B) *city {
	cameras, days := envInt("RONDA_CITY_CAMERAS", 30000), envInt("RONDA_CITY_DAYS", 90)
	dir := b.TempDir()
	end := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	start := end.AddDate(0, 0, -days)
	kels := kelurahan.All()
	rng := rand.New(rand.NewPCG(1, 2))
	tags := []string{"park", "school", "market", "flood-prone", "mosque", "intersection", "river", "station"}

	t0 := time.Now()
	db, err := pebble.Open(dir, pebbleOptions(testLogger()))
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Set(keySchemaVersion, encodeUint32(SchemaVersion), pebble.Sync); err != nil {
		b.Fatal(err)
	}
	spans := 0
	batch := db.NewBatch()
	for i := range cameras {
		k := kels[i%len(kels)]
		id := fmt.Sprintf("%s-cam%03d", kelurahan.CompactCode(k.Code), i/len(kels))
		cam := &rondav1.Camera{Id: id, Name: id, State: "streaming",
			Lat: k.Lat + (rng.Float64()-0.5)*0.01, Lon: k.Lon + (rng.Float64()-0.5)*0.01,
			Tags: []string{tags[rng.IntN(len(tags))], tags[rng.IntN(len(tags))]}}
		if err := putProto(batch, cameraKey(id), &rondav1.StoredCamera{Camera: cam, NodeId: "node-" + k.Code, KelurahanCode: k.Code}); err != nil {
			b.Fatal(err)
		}
		for d := range days {
			lo := start.AddDate(0, 0, d).UnixNano()
			var ivs []interval
			cur := lo
			for range 1 + rng.IntN(3) {
				gap := lo + rng.Int64N(nsPerDay-int64(time.Hour))
				if gap <= cur {
					continue
				}
				ivs = append(ivs, interval{cur, gap})
				cur = gap + int64(5*time.Minute) + rng.Int64N(int64(25*time.Minute))
			}
			if cur < lo+nsPerDay {
				ivs = append(ivs, interval{cur, lo + nsPerDay})
			}
			spans += len(ivs)
			if err := putProto(batch, coverageDayKey(id, dayOf(lo)), coverageFromIntervals(ivs)); err != nil {
				b.Fatal(err)
			}
		}
		if batch.Len() > 4<<20 {
			if err := batch.Commit(pebble.NoSync); err != nil {
				b.Fatal(err)
			}
			batch = db.NewBatch()
		}
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("synthetic city: %d cameras x %d days = %d spans, written in %s", cameras, days, spans, time.Since(t0).Round(time.Second))

	return &city{dir: dir, cameras: cameras, days: days, start: start, end: end, tags: tags, rng: rng}
}

// BenchmarkCatalogQuery builds a synthetic city (syntheticCity) and
// measures the time to rebuild the index when a member opens and the
// index's heap, then the latency of the questions the control room and
// auditors ask, at p50 and p99 per kind. Run with -benchtime 200x (queries
// per kind).
func BenchmarkCatalogQuery(b *testing.B) {
	c := syntheticCity(b)
	dir, start, end, rng, tags := c.dir, c.start, c.end, c.rng, c.tags
	kels := kelurahan.All()
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t1 := time.Now()
	f, err := openFSM(dir, testLogger())
	if err != nil {
		b.Fatal(err)
	}
	defer f.close()
	rebuild := time.Since(t1)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	b.Logf("opening the FSM and building its catalog index took %s; the index holds %.0f MiB of heap",
		rebuild.Round(time.Millisecond), float64(m1.HeapAlloc-m0.HeapAlloc)/(1<<20))

	hour := func() (time.Time, time.Time) {
		from := start.Add(time.Duration(rng.Int64N(int64(end.Sub(start) - time.Hour))))
		return from, from.Add(time.Hour)
	}
	kinds := []struct {
		name string
		q    func() Query
	}{
		{"kelurahan-1h", func() Query { f, t := hour(); return Query{Kelurahan: kels[rng.IntN(len(kels))].Code, From: f, To: t} }},
		{"kecamatan-1h", func() Query {
			f, t := hour()
			return Query{Kecamatan: kels[rng.IntN(len(kels))].KecamatanCode, From: f, To: t}
		}},
		{"kota-1day", func() Query {
			f, _ := hour()
			return Query{Kota: kels[rng.IntN(len(kels))].KotaCode, From: f, To: f.Add(24 * time.Hour)}
		}},
		{"radius500m-1h", func() Query {
			f, t := hour()
			k := kels[rng.IntN(len(kels))]
			return Query{Lat: k.Lat, Lon: k.Lon, RadiusM: 500, From: f, To: t}
		}},
		{"radius2km-tag-1h", func() Query {
			f, t := hour()
			k := kels[rng.IntN(len(kels))]
			return Query{Lat: k.Lat, Lon: k.Lon, RadiusM: 2000, Tags: []string{tags[rng.IntN(len(tags))]}, From: f, To: t}
		}},
		{"city-tag-1h", func() Query { f, t := hour(); return Query{Tags: []string{tags[rng.IntN(len(tags))]}, From: f, To: t} }},
		{"city-all-1h", func() Query { f, t := hour(); return Query{From: f, To: t, Limit: 1000} }},
		{"city-all-30days", func() Query {
			f, _ := hour()
			return Query{From: f.Add(-30 * 24 * time.Hour), To: f, Limit: 1000}
		}},
	}
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			matched := 0
			for b.Loop() {
				q := k.q()
				t := time.Now()
				r, err := f.cat.query(q)
				lat = append(lat, time.Since(t))
				if err != nil {
					b.Fatal(err)
				}
				matched += r.Total
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(matched)/float64(len(lat)), "cameras/query")
		})
	}
}
