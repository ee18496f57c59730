package kelurahan

import "testing"

func TestTable(t *testing.T) {
	if n := len(All()); n != 267 {
		t.Fatalf("kelurahan: %d, want 267", n)
	}
	if n := len(Kecamatan()); n != 44 {
		t.Fatalf("kecamatan: %d, want 44", n)
	}
	if n := len(Kota()); n != 6 {
		t.Fatalf("kota: %d, want 6", n)
	}
	k, ok := ByCode("31.71.01.1001")
	if !ok || k.Kota == "" || k.Kecamatan == "" || k.Lat > -5 || k.Lon < 106 {
		t.Fatalf("31.71.01.1001: %+v %v", k, ok)
	}
	if _, ok := ByCode("99.99.99.9999"); ok {
		t.Fatal("unknown code found")
	}
	if CompactCode("31.71.01.1001") != "3171011001" {
		t.Fatal("compact code")
	}
}
