package store

import (
	"errors"
	"testing"
	"time"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

func placedCams(seq uint64, cams ...*rondav1.Camera) *rondav1.Record {
	return &rondav1.Record{Seq: seq, Body: &rondav1.Record_Cameras{Cameras: &rondav1.CameraInventory{Cameras: cams}}}
}

func ids(r Result) []string {
	var out []string
	for _, c := range r.Cameras {
		out = append(out, c.ID)
	}
	return out
}

// City-wide questions answered from the catalog index: by area, tag,
// distance and footage window; the index follows every applied command and
// is rebuilt identically when the member restarts.
func TestCatalogQuery(t *testing.T) {
	dir := t.TempDir()
	f := newTestFSM(t, dir)
	// Two nodes: Gambir (31.71.01.1001, Jakarta Pusat) and a kelurahan of
	// Jakarta Selatan (31.74.01.1001).
	monas := [2]float64{-6.1754, 106.8272}
	base := int64(20_000) * nsPerDay
	span := func(seq uint64, cam string, fromS, toS int64) *rondav1.Record {
		return &rondav1.Record{Seq: seq, Body: &rondav1.Record_Span{Span: &rondav1.Span{CameraId: cam, StartUnixNano: base + fromS*sec, EndUnixNano: base + toS*sec}}}
	}
	applyAt(t, f, 1, nodeCmd(t, "gambir", 1, regRec(1, "gambir", "31.71.01.1001"),
		placedCams(2,
			&rondav1.Camera{Id: "3171011001-monas", Name: "monas", Lat: monas[0], Lon: monas[1], Rt: "001", Rw: "002", Tags: []string{"park", "landmark"}},
			&rondav1.Camera{Id: "3171011001-pasar", Name: "pasar", Lat: -6.1700, Lon: 106.8200, Tags: []string{"market"}},
			&rondav1.Camera{Id: "3171011001-gang", Name: "gang"}), // no position
		span(3, "3171011001-monas", 0, 3600),
		span(4, "3171011001-pasar", 1800, 1900),
		span(5, "3171011001-gang", 7200, 9000)))
	applyAt(t, f, 2, nodeCmd(t, "selatan", 1, regRec(1, "selatan", "31.74.01.1001"),
		placedCams(2, &rondav1.Camera{Id: "3174011001-taman", Name: "taman", Lat: -6.2600, Lon: 106.8100, Tags: []string{"park"}}),
		span(3, "3174011001-taman", 0, 86400*2)))

	at := func(s int64) time.Time { return time.Unix(0, base+s*sec) }
	check := func(name string, q Query, want ...string) {
		t.Helper()
		r, err := f.cat.query(q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := ids(r); len(got) != len(want) || r.Total != len(want) {
			t.Fatalf("%s: got %v (total %d), want %v", name, got, r.Total, want)
		} else {
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s: got %v, want %v", name, got, want)
				}
			}
		}
	}
	check("everything", Query{}, "3171011001-gang", "3171011001-monas", "3171011001-pasar", "3174011001-taman")
	check("kota Jakarta Pusat", Query{Kota: "31.71"}, "3171011001-gang", "3171011001-monas", "3171011001-pasar")
	check("kecamatan", Query{Kecamatan: "31.74.01"}, "3174011001-taman")
	check("kelurahan", Query{Kelurahan: "31.71.01.1001"}, "3171011001-gang", "3171011001-monas", "3171011001-pasar")
	check("tag park", Query{Tags: []string{"Park"}}, "3171011001-monas", "3174011001-taman")
	check("footage in the first half hour", Query{From: at(0), To: at(1800)}, "3171011001-monas", "3174011001-taman")
	check("footage 30:00-31:00", Query{From: at(1800), To: at(1860)}, "3171011001-monas", "3171011001-pasar", "3174011001-taman")
	check("no footage anywhere", Query{From: at(-7200), To: at(-3600)})
	// Monas to the market is ~1 km; to Jakarta Selatan ~10 km.
	check("within 500 m of Monas", Query{Lat: monas[0], Lon: monas[1], RadiusM: 500}, "3171011001-monas")
	check("within 2 km, nearest first", Query{Lat: monas[0], Lon: monas[1], RadiusM: 2000}, "3171011001-monas", "3171011001-pasar")
	check("within 2 km with footage at 2 h", Query{Lat: monas[0], Lon: monas[1], RadiusM: 2000, From: at(7200), To: at(7300)})
	check("park within 15 km with footage next day", Query{Tags: []string{"park"}, Lat: monas[0], Lon: monas[1], RadiusM: 15000, From: at(90000), To: at(90100)}, "3174011001-taman")

	r, _ := f.cat.query(Query{Kelurahan: "31.71.01.1001", From: at(0), To: at(7200)})
	if c := r.Cameras[0]; c.ID != "3171011001-monas" || c.RecordedSeconds != 3600 || c.RT != "001" || c.Kota != "31.71" || c.Kecamatan != "31.71.01" {
		t.Fatalf("monas in the answer: %+v", c)
	}
	if r, _ := f.cat.query(Query{Limit: 2}); len(r.Cameras) != 2 || r.Total != 4 {
		t.Fatalf("limit 2: %d cameras, total %d", len(r.Cameras), r.Total)
	}
	for _, bad := range []Query{{RadiusM: 100}, {From: at(10), To: at(5)}, {RadiusM: 1e6, Lat: 1, Lon: 1}, {Limit: -1}} {
		if _, err := f.cat.query(bad); !errors.Is(err, ErrBadQuery) {
			t.Fatalf("query %+v: %v, want ErrBadQuery", bad, err)
		}
	}

	// The index follows the log: the market camera leaves the inventory, new
	// footage arrives for the alley camera.
	applyAt(t, f, 3, nodeCmd(t, "gambir", 2,
		placedCams(6, &rondav1.Camera{Id: "3171011001-monas", Name: "monas", Lat: monas[0], Lon: monas[1], Tags: []string{"park"}},
			&rondav1.Camera{Id: "3171011001-gang", Name: "gang"}),
		span(7, "3171011001-gang", 0, 600)))
	check("after the inventory changed", Query{Kota: "31.71"}, "3171011001-gang", "3171011001-monas")
	check("new footage is found", Query{From: at(100), To: at(200)}, "3171011001-gang", "3171011001-monas", "3174011001-taman")
	check("a tag removed", Query{Tags: []string{"landmark"}})

	// A restart rebuilds the same index from Pebble.
	before, _ := f.cat.query(Query{From: at(0), To: at(86400 * 3)})
	f.close()
	f = newTestFSM(t, dir)
	after, _ := f.cat.query(Query{From: at(0), To: at(86400 * 3)})
	if len(before.Cameras) != len(after.Cameras) {
		t.Fatalf("after restart %d cameras, before %d", len(after.Cameras), len(before.Cameras))
	}
	for i := range before.Cameras {
		if b, a := before.Cameras[i], after.Cameras[i]; b.ID != a.ID || b.RecordedSeconds != a.RecordedSeconds || !b.LastRecorded.Equal(a.LastRecorded) {
			t.Fatalf("camera %d before restart %+v, after %+v", i, b, a)
		}
	}
}
