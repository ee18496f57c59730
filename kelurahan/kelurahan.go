// Package kelurahan is the table of Jakarta's 267 kelurahan with their
// kecamatan and kota (ODbL; see ATTRIBUTION.md), embedded in the binary.
package kelurahan

import (
	"crypto/sha256"
	_ "embed"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

//go:embed jakarta-kelurahan.csv
var csvData string

// Kelurahan is one row of the table.
type Kelurahan struct {
	Code          string // e.g. 31.71.01.1001
	Name          string
	KecamatanCode string
	Kecamatan     string
	KotaCode      string
	Kota          string
	Lat, Lon      float64
}

var (
	once   sync.Once
	all    []Kelurahan
	byCode map[string]int
)

func load() {
	r := csv.NewReader(strings.NewReader(csvData))
	rows, err := r.ReadAll()
	if err != nil {
		panic(fmt.Sprintf("kelurahan: embedded table is corrupt: %v", err))
	}
	byCode = make(map[string]int, len(rows))
	for _, row := range rows[1:] {
		lat, _ := strconv.ParseFloat(row[6], 64)
		lon, _ := strconv.ParseFloat(row[7], 64)
		byCode[row[0]] = len(all)
		all = append(all, Kelurahan{Code: row[0], Name: row[1], KecamatanCode: row[2], Kecamatan: row[3],
			KotaCode: row[4], Kota: row[5], Lat: lat, Lon: lon})
	}
}

// All returns every kelurahan in code order. The slice must not be modified.
func All() []Kelurahan { once.Do(load); return all }

// ByCode looks a kelurahan up by its code (with dots, e.g. 31.71.01.1001).
func ByCode(code string) (Kelurahan, bool) {
	once.Do(load)
	i, ok := byCode[code]
	if !ok {
		return Kelurahan{}, false
	}
	return all[i], true
}

// CompactCode is the code without dots (3171011001), used in camera ids.
func CompactCode(code string) string { return strings.ReplaceAll(code, ".", "") }

// Kecamatan returns the distinct kecamatan codes, sorted.
func Kecamatan() []string { return distinct(func(k Kelurahan) string { return k.KecamatanCode }) }

// Kota returns the distinct kota/kabupaten codes, sorted.
func Kota() []string { return distinct(func(k Kelurahan) string { return k.KotaCode }) }

func distinct(f func(Kelurahan) string) []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range All() {
		if c := f(k); !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// Version identifies this table's contents (the first 16 hex digits of the
// SHA-256 of the embedded CSV): the hub seeds its replicated area catalog
// once per version.
func Version() string {
	sum := sha256.Sum256([]byte(csvData))
	return hex.EncodeToString(sum[:8])
}

// Source is the table's attribution in one line (ATTRIBUTION.md has it all).
const Source = "idn-area-data 4.0.1 (ODbL 1.0, github.com/fityannugroho/idn-area-data); office locations from github.com/dianmustofa/buffer"
