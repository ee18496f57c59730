package store

// The area catalog: Jakarta's kota/kabupaten, kecamatan and kelurahan,
// seeded into the replicated state from the table embedded in the binary
// (kelurahan package, ODbL; see its ATTRIBUTION.md), so every member, every
// backup and every API answer names areas the same way.

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/ronda-jakarta/ronda/kelurahan"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// CommandSeedAreas carries a rondav1.AreaSeed.
const CommandSeedAreas CommandType = 4

var keyAreasVersion = []byte("m/areas")

// AreaSeedFromTable builds the seed from the embedded kelurahan table.
func AreaSeedFromTable() *rondav1.AreaSeed {
	seed := &rondav1.AreaSeed{Version: kelurahan.Version(), Source: kelurahan.Source}
	type acc struct {
		area     *rondav1.Area
		lat, lon float64
		n        int
	}
	var order []string
	parents := map[string]*acc{}
	add := func(code, name, level, parent string, lat, lon float64) {
		a, ok := parents[code]
		if !ok {
			a = &acc{area: &rondav1.Area{Code: code, Name: name, Level: level, Parent: parent}}
			parents[code] = a
			order = append(order, code)
		}
		a.lat += lat
		a.lon += lon
		a.n++
	}
	var kel []*rondav1.Area
	for _, k := range kelurahan.All() {
		add(k.KotaCode, k.Kota, "kota", "", k.Lat, k.Lon)
		add(k.KecamatanCode, k.Kecamatan, "kecamatan", k.KotaCode, k.Lat, k.Lon)
		kel = append(kel, &rondav1.Area{Code: k.Code, Name: k.Name, Level: "kelurahan", Parent: k.KecamatanCode, Lat: k.Lat, Lon: k.Lon})
	}
	for _, code := range order {
		a := parents[code]
		a.area.Lat, a.area.Lon = a.lat/float64(a.n), a.lon/float64(a.n)
		seed.Areas = append(seed.Areas, a.area)
	}
	seed.Areas = append(seed.Areas, kel...)
	return seed
}

func decodeAreaSeed(payload []byte) (*rondav1.AreaSeed, error) {
	m := new(rondav1.AreaSeed)
	if err := proto.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("%w: SeedAreas: %v", ErrBadCommand, err)
	}
	if m.GetVersion() == "" || len(m.GetAreas()) == 0 {
		return nil, fmt.Errorf("%w: SeedAreas: a version and at least one area are required", ErrBadCommand)
	}
	for i, a := range m.GetAreas() {
		if err := validID("area", a.GetCode()); err != nil {
			return nil, fmt.Errorf("%w: SeedAreas: area %d: %v", ErrBadCommand, i, err)
		}
		switch a.GetLevel() {
		case "kota", "kecamatan", "kelurahan":
		default:
			return nil, fmt.Errorf("%w: SeedAreas: area %s: level %q is not kota, kecamatan or kelurahan", ErrBadCommand, a.GetCode(), a.GetLevel())
		}
	}
	return m, nil
}

// applyAreaSeed replaces the area catalog unless this version is already
// there. The result is the number of areas written (0: already seeded).
func applyAreaSeed(b *pebble.Batch, payload []byte, _ *slog.Logger) (uint64, error) {
	m, err := decodeAreaSeed(payload)
	if err != nil {
		return 0, err
	}
	cur := new(rondav1.AreaSeed)
	if _, err := getProto(b, keyAreasVersion, cur); err != nil {
		return 0, err
	}
	if cur.GetVersion() == m.GetVersion() {
		return 0, nil
	}
	if err := b.DeleteRange(prefixArea, prefixUpperBound(prefixArea), nil); err != nil {
		return 0, err
	}
	for _, a := range m.GetAreas() {
		if err := putProto(b, areaKey(a.GetCode()), a); err != nil {
			return 0, err
		}
	}
	if err := putProto(b, keyAreasVersion, &rondav1.AreaSeed{Version: m.GetVersion(), Source: m.GetSource()}); err != nil {
		return 0, err
	}
	return uint64(len(m.GetAreas())), nil
}

// Areas lists the seeded areas in code order.
func (s *Store) Areas() []*rondav1.Area {
	return scanAll(s, prefixArea, func() *rondav1.Area { return new(rondav1.Area) })
}

// AreasVersion is the seeded table's version and source ("" before seeding).
func (s *Store) AreasVersion() (version, source string) {
	m := new(rondav1.AreaSeed)
	if _, err := s.fsm.getProto(keyAreasVersion, m); err != nil {
		s.log.Error("read areas version", "error", err)
	}
	return m.GetVersion(), m.GetSource()
}

// seedAreas runs on the leader: it proposes the embedded table when the
// replicated one is another version (a new cluster, or a binary with a newer
// table). Bootstrapping happens once; so does seeding per table version.
func (s *Store) seedAreas() {
	if v, _ := s.AreasVersion(); v == kelurahan.Version() {
		return
	}
	cmd, err := EncodeCommand(CommandSeedAreas, AreaSeedFromTable())
	if err != nil {
		s.log.Error("encode area seed", "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, n, err := s.ApplyLeader(ctx, cmd); err != nil {
		s.log.Warn("seed areas; retrying", "error", err)
	} else if n > 0 {
		s.log.Info("seeded the area catalog", "areas", n, "version", kelurahan.Version())
	}
}
