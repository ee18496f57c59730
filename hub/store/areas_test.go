package store_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ronda-jakarta/ronda/hub/store"
	"github.com/ronda-jakarta/ronda/kelurahan"
)

// A new cluster's first leader seeds the 6 kota/kabupaten, 44 kecamatan and
// 267 kelurahan into the replicated state, once: every member holds them,
// and proposing the same table again changes nothing.
func TestAreasSeededOnceIntoEveryMember(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	lead := c.leader(converge)
	eventually(t, converge, "areas on every member", func() error {
		for _, m := range c.running() {
			levels := map[string]int{}
			for _, a := range m.st.Areas() {
				levels[a.GetLevel()]++
			}
			if levels["kota"] != 6 || levels["kecamatan"] != 44 || levels["kelurahan"] != 267 {
				return fmt.Errorf("%s has %v", m.id, levels)
			}
			if v, src := m.st.AreasVersion(); v != kelurahan.Version() || src == "" {
				return fmt.Errorf("%s: version %q source %q", m.id, v, src)
			}
		}
		return nil
	})
	byCode := map[string]string{}
	for _, a := range lead.st.Areas() {
		byCode[a.GetCode()] = a.GetName() + "/" + a.GetParent()
		mainland := a.GetLevel() == "kelurahan" && !strings.HasPrefix(a.GetCode(), "31.01")
		if mainland && (a.GetLat() < -6.40 || a.GetLat() > -6.05 || a.GetLon() < 106.65 || a.GetLon() > 107.0) {
			t.Fatalf("kelurahan %s on the mainland placed at %.4f,%.4f", a.GetCode(), a.GetLat(), a.GetLon())
		}
	}
	if byCode["31.71"] != "Kota Administrasi Jakarta Pusat/" || byCode["31.71.01"] != "Gambir/31.71" || byCode["31.71.01.1001"] != "Gambir/31.71.01" {
		t.Fatalf("areas: 31.71=%q 31.71.01=%q 31.71.01.1001=%q", byCode["31.71"], byCode["31.71.01"], byCode["31.71.01.1001"])
	}
	cmd, err := store.EncodeCommand(store.CommandSeedAreas, store.AreaSeedFromTable())
	if err != nil {
		t.Fatal(err)
	}
	_, n, err := c.followers(lead)[0].st.Apply(t.Context(), cmd)
	if err != nil || n != 0 {
		t.Fatalf("seeding the same table again wrote %d areas (err %v), want none", n, err)
	}
}
