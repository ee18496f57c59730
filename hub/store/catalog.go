package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/ronda-jakarta/ronda/kelurahan"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// The catalog index answers city-wide questions ("which cameras had
// footage in [from,to) in this kecamatan / with this tag / within R metres
// of this point?") from memory. Pebble stays the source of truth; the index
// is rebuilt from it when the FSM opens or restores and is updated from the
// keys each applied batch wrote, so it is exactly the FSM's state at its
// applied index. Coverage is held as uint32 seconds (8 bytes a span), split
// at UTC midnight like the day buckets so one day can be replaced alone.

// span32 is a coverage span in Unix seconds, [start, end).
type span32 struct{ start, end uint32 }

type catCamera struct {
	id, name, node      string
	kel, kec, kota      string
	lat, lon            float64
	rt, rw              string
	tags                []string
	state, reason       string
	spans               []span32 // sorted, disjoint, split at UTC midnight
	hasCamera, hasSpans bool
}

type catalog struct {
	mu     sync.RWMutex
	cams   map[string]*catCamera
	sorted []*catCamera // cameras with a catalog record, by id; nil when stale
}

func newCatalog() *catalog { return &catalog{cams: map[string]*catCamera{}} }

func (c *catalog) entry(id string) *catCamera {
	e := c.cams[id]
	if e == nil {
		e = &catCamera{id: id}
		c.cams[id] = e
	}
	return e
}

// rebuild loads the whole index from r.
func (c *catalog) rebuild(r pebble.Reader) error {
	fresh := newCatalog()
	err := scanPrefix(r, prefixCamera, func(k, v []byte) error {
		var sc rondav1.StoredCamera
		if err := proto.Unmarshal(v, &sc); err != nil {
			return fmt.Errorf("%w: decode %q: %v", ErrSchema, k, err)
		}
		fresh.entry(string(k[len(prefixCamera):])).setCamera(&sc)
		return nil
	})
	if err != nil {
		return err
	}
	err = scanPrefix(r, prefixCoverage, func(k, v []byte) error {
		id, day, ok := parseCoverageDayKey(k)
		if !ok {
			return fmt.Errorf("%w: coverage key %q", ErrSchema, k)
		}
		var cov rondav1.StoredCoverage
		if err := proto.Unmarshal(v, &cov); err != nil {
			return fmt.Errorf("%w: decode %q: %v", ErrSchema, k, err)
		}
		e := fresh.entry(id)
		e.replaceDay(day, &cov) // keys come in day order: appends
		return nil
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.cams, c.sorted = fresh.cams, nil
	c.mu.Unlock()
	return nil
}

// update applies what a committed batch wrote: every camera record and
// coverage day it set or deleted is read back from r (the database after the
// commit).
func (c *catalog) update(r pebble.Reader, batch *pebble.Batch) error {
	type dayKey struct {
		id  string
		day uint32
	}
	cams := map[string]bool{}
	days := map[dayKey]bool{}
	br := batch.Reader()
	for {
		_, k, _, ok, err := br.Next()
		if err != nil {
			return fmt.Errorf("read back the applied batch: %w", err)
		}
		if !ok {
			break
		}
		switch {
		case bytes.HasPrefix(k, prefixCamera):
			cams[string(k[len(prefixCamera):])] = true
		case bytes.HasPrefix(k, prefixCoverage):
			if id, day, ok := parseCoverageDayKey(k); ok {
				days[dayKey{id, day}] = true
			}
		}
	}
	if len(cams) == 0 && len(days) == 0 {
		return nil
	}
	type camRead struct {
		sc    *rondav1.StoredCamera
		found bool
	}
	readCams := make(map[string]camRead, len(cams))
	for id := range cams {
		sc := new(rondav1.StoredCamera)
		found, err := getProto(r, cameraKey(id), sc)
		if err != nil {
			return err
		}
		readCams[id] = camRead{sc, found}
	}
	readDays := make(map[dayKey]*rondav1.StoredCoverage, len(days))
	for dk := range days {
		cov := new(rondav1.StoredCoverage)
		if _, err := getProto(r, coverageDayKey(dk.id, dk.day), cov); err != nil {
			return err
		}
		readDays[dk] = cov
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, cr := range readCams {
		e := c.entry(id)
		if cr.found {
			if !e.hasCamera {
				c.sorted = nil
			}
			e.setCamera(cr.sc)
		} else if e.hasCamera {
			e.hasCamera = false
			c.sorted = nil
		}
	}
	for dk, cov := range readDays {
		c.entry(dk.id).replaceDay(dk.day, cov)
	}
	return nil
}

func (e *catCamera) setCamera(sc *rondav1.StoredCamera) {
	cam := sc.GetCamera()
	e.hasCamera = true
	e.name, e.node = cam.GetName(), sc.GetNodeId()
	e.kel, e.kec, e.kota = sc.GetKelurahanCode(), "", ""
	if k, ok := kelurahan.ByCode(e.kel); ok {
		e.kec, e.kota = k.KecamatanCode, k.KotaCode
	}
	e.lat, e.lon, e.rt, e.rw = cam.GetLat(), cam.GetLon(), cam.GetRt(), cam.GetRw()
	e.tags = slices.Clone(cam.GetTags())
	e.state, e.reason = cam.GetState(), cam.GetReason()
}

// replaceDay sets the camera's spans within one UTC day.
func (e *catCamera) replaceDay(day uint32, cov *rondav1.StoredCoverage) {
	lo, hi := uint32(int64(day)*86400), uint32(int64(day+1)*86400)
	i := sort.Search(len(e.spans), func(k int) bool { return e.spans[k].start >= lo })
	j := sort.Search(len(e.spans), func(k int) bool { return e.spans[k].start >= hi })
	repl := make([]span32, 0, len(cov.GetSpans()))
	for _, s := range cov.GetSpans() {
		// Seconds, rounded outwards: a span never shrinks to nothing.
		st, en := uint32(s.GetStartUnixNano()/1e9), uint32((s.GetEndUnixNano()+1e9-1)/1e9)
		st, en = max(st, lo), min(en, hi)
		if en <= st {
			continue
		}
		if n := len(repl); n > 0 && st <= repl[n-1].end {
			repl[n-1].end = max(repl[n-1].end, en)
			continue
		}
		repl = append(repl, span32{st, en})
	}
	e.spans = slices.Replace(e.spans, i, j, repl...)
	e.hasSpans = len(e.spans) > 0
}

// recorded returns the seconds of footage in [from,to) and whether there is any.
func (e *catCamera) recorded(from, to uint32) (uint32, bool) {
	i := sort.Search(len(e.spans), func(k int) bool { return e.spans[k].end > from })
	var total uint32
	for _, s := range e.spans[i:] {
		if s.start >= to {
			break
		}
		total += min(s.end, to) - max(s.start, from)
	}
	return total, total > 0
}

// Query selects cameras; zero fields do not filter. With a radius, only
// cameras with a known position are considered.
type Query struct {
	From, To  time.Time // coverage window; zero To: any footage is not required
	Kota      string    // kota/kabupaten code, e.g. 31.71
	Kecamatan string    // e.g. 31.71.01
	Kelurahan string    // e.g. 31.71.01.1001
	Node      string
	Tags      []string // all of them
	Lat, Lon  float64
	RadiusM   float64
	Limit     int // at most this many cameras in Result.Cameras (0: DefaultQueryLimit)
}

// DefaultQueryLimit and MaxQueryLimit bound one answer; Result.Total counts all.
const (
	DefaultQueryLimit = 1000
	MaxQueryLimit     = 50000
)

// QueryCamera is one camera in a query's answer.
type QueryCamera struct {
	ID, Name, NodeID            string
	Kelurahan, Kecamatan        string
	Kota                        string
	Lat, Lon                    float64
	RT, RW                      string
	Tags                        []string
	State, Reason               string
	RecordedSeconds             float64 // within [From, To)
	FirstRecorded, LastRecorded time.Time
	DistanceM                   float64 // with a radius query
}

// Result is a query's answer. Cameras are ordered by distance for a radius
// query, else by id.
type Result struct {
	Cameras []QueryCamera
	Total   int // cameras that matched (Cameras may be cut at Limit)
	Scanned int // cameras in the catalog
}

// ErrBadQuery is wrapped by query validation errors.
var ErrBadQuery = errors.New("bad query")

func (q *Query) validate() error {
	switch {
	case q.RadiusM < 0 || q.RadiusM > 50_000:
		return fmt.Errorf("%w: radius %.0f m: give 1 to 50000 m", ErrBadQuery, q.RadiusM)
	case q.RadiusM > 0 && (q.Lat < -90 || q.Lat > 90 || q.Lon < -180 || q.Lon > 180 || (q.Lat == 0 && q.Lon == 0)):
		return fmt.Errorf("%w: a radius needs the point's lat and lon in degrees", ErrBadQuery)
	case !q.To.IsZero() && !q.To.After(q.From):
		return fmt.Errorf("%w: 'to' must be after 'from'", ErrBadQuery)
	case q.Limit < 0 || q.Limit > MaxQueryLimit:
		return fmt.Errorf("%w: limit %d: give 1 to %d", ErrBadQuery, q.Limit, MaxQueryLimit)
	}
	return nil
}

// distanceM is the great-circle distance in metres (haversine).
func distanceM(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6_371_000.0
	p1, p2 := lat1*math.Pi/180, lat2*math.Pi/180
	dp, dl := p2-p1, (lon2-lon1)*math.Pi/180
	a := math.Sin(dp/2)*math.Sin(dp/2) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl/2)*math.Sin(dl/2)
	return 2 * r * math.Asin(math.Sqrt(a))
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h string) bool { return strings.EqualFold(h, w) }) {
			return false
		}
	}
	return true
}

// query answers q from the index.
func (c *catalog) query(q Query) (Result, error) {
	if err := q.validate(); err != nil {
		return Result{}, err
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultQueryLimit
	}
	var from, to uint32
	window := !q.To.IsZero()
	if window {
		from = uint32(max(q.From.Unix(), 0))
		to = uint32(min(max(q.To.Add(time.Second-1).Unix(), 0), math.MaxUint32))
	}
	c.mu.RLock()
	if c.sorted == nil {
		c.mu.RUnlock()
		c.mu.Lock()
		if c.sorted == nil {
			c.sorted = make([]*catCamera, 0, len(c.cams))
			for _, e := range c.cams {
				if e.hasCamera {
					c.sorted = append(c.sorted, e)
				}
			}
			slices.SortFunc(c.sorted, func(a, b *catCamera) int { return strings.Compare(a.id, b.id) })
		}
		c.mu.Unlock()
		c.mu.RLock()
	}
	defer c.mu.RUnlock()
	res := Result{Scanned: len(c.sorted)}
	for _, e := range c.sorted {
		if (q.Kelurahan != "" && e.kel != q.Kelurahan) || (q.Kecamatan != "" && e.kec != q.Kecamatan) ||
			(q.Kota != "" && e.kota != q.Kota) || (q.Node != "" && e.node != q.Node) ||
			(len(q.Tags) > 0 && !hasAll(e.tags, q.Tags)) {
			continue
		}
		var dist float64
		if q.RadiusM > 0 {
			if e.lat == 0 && e.lon == 0 {
				continue
			}
			if dist = distanceM(q.Lat, q.Lon, e.lat, e.lon); dist > q.RadiusM {
				continue
			}
		}
		var secs uint32
		if window {
			var any bool
			if secs, any = e.recorded(from, to); !any {
				continue
			}
		}
		res.Total++
		if q.RadiusM == 0 && len(res.Cameras) >= limit {
			continue // ordered by id: the rest only count
		}
		qc := QueryCamera{ID: e.id, Name: e.name, NodeID: e.node, Kelurahan: e.kel, Kecamatan: e.kec, Kota: e.kota,
			Lat: e.lat, Lon: e.lon, RT: e.rt, RW: e.rw, Tags: e.tags, State: e.state, Reason: e.reason,
			RecordedSeconds: float64(secs), DistanceM: math.Round(dist)}
		if n := len(e.spans); n > 0 {
			qc.FirstRecorded = time.Unix(int64(e.spans[0].start), 0).UTC()
			qc.LastRecorded = time.Unix(int64(e.spans[n-1].end), 0).UTC()
		}
		res.Cameras = append(res.Cameras, qc)
	}
	if q.RadiusM > 0 {
		slices.SortStableFunc(res.Cameras, func(a, b QueryCamera) int { return int(a.DistanceM - b.DistanceM) })
		if len(res.Cameras) > limit {
			res.Cameras = res.Cameras[:limit]
		}
	}
	return res, nil
}
