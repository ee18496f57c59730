package bundle

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/ronda-jakarta/ronda/api"
)

// wib is Jakarta's time (UTC+7, no daylight saving), so the page does not
// depend on the time zone database of the machine that makes it.
var wib = time.FixedZone("WIB", 7*3600)

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(wib).Format("2006-01-02 15:04:05 MST")
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB (%d bytes)", float64(n)/(1<<30), n)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB (%d bytes)", float64(n)/(1<<10), n)
	}
	return fmt.Sprintf("%d bytes", n)
}

// words says what an audit record records, in Bahasa Indonesia and English.
func words(r api.AuditRecord) (id, en string) {
	verb, arg, _ := strings.Cut(r.Action, " ")
	switch verb {
	case "case-create":
		id, en = "membuat kasus "+arg, "created case "+arg
	case "case-pull":
		id, en = "meminta rekaman kasus "+arg+" ditarik ke hub", "asked for case "+arg+"'s footage to be pulled to the hub"
	case "case-download":
		id, en = "mengunduh bundel bukti kasus "+arg, "downloaded the evidence bundle of case "+arg
	case "case-close":
		id, en = "menutup kasus "+arg, "closed case "+arg
	case "export":
		id, en = "mengekspor rekaman kamera "+r.CameraID, "exported footage of camera "+r.CameraID
		if r.From != nil && r.To != nil {
			span := fmt.Sprintf(" (%s – %s)", fmtTime(*r.From), fmtTime(*r.To))
			id, en = id+span, en+span
		}
	default:
		id, en = "tindakan “"+r.Action+"”", "action “"+r.Action+"”"
		if r.CameraID != "" {
			id, en = id+", kamera "+r.CameraID, en+", camera "+r.CameraID
		}
	}
	switch o := r.Outcome; {
	case o == "ok" || strings.HasPrefix(o, "ok:") || strings.HasPrefix(o, "ok "):
		id, en = id+": berhasil", en+": succeeded"
	case strings.HasPrefix(o, "denied"):
		id, en = id+": ditolak", en+": denied"
	case o != "":
		id, en = id+": "+o, en+": "+o
	}
	return id, en
}

type pageItem struct {
	N                                        int
	ID, Camera, Node, From, To, Export, File string
	Manifest, Size, SHA256                   string
}

type pageAudit struct {
	Time, User, ID, EN, Outcome, Reason, Where, File string
}

type pageData struct {
	L                                            Listing
	Created, Deadline, Closed, Generated, Status string
	Items                                        []pageItem
	Total                                        string
	Audit                                        []pageAudit
	Fingerprint, Key                             string
}

// renderPage makes index.html from what case.json lists and the audit records.
func renderPage(l Listing, audit []AuditProof) ([]byte, error) {
	d := pageData{L: l, Created: fmtTime(l.Case.Created), Deadline: fmtTime(l.Case.Deadline), Generated: fmtTime(l.Generated), Key: l.HubKey}
	if l.Case.Closed != nil {
		d.Closed = fmtTime(*l.Case.Closed)
	}
	switch l.Case.Status {
	case "open":
		d.Status = "terbuka / open"
	case "closed":
		d.Status = "ditutup / closed"
	default:
		d.Status = l.Case.Status
	}
	if k, err := base64.StdEncoding.DecodeString(l.HubKey); err == nil {
		d.Fingerprint = KeyFingerprint(k)
	}
	var total int64
	for n, e := range l.Items {
		total += e.Bytes
		d.Items = append(d.Items, pageItem{N: n + 1, ID: e.ID, Camera: e.Camera, Node: e.NodeID, From: fmtTime(e.From), To: fmtTime(e.To),
			Export: e.ExportID, File: e.File, Manifest: e.Manifest, Size: fmtBytes(e.Bytes), SHA256: e.SHA256})
	}
	d.Total = fmtBytes(total)
	for n, p := range audit {
		r := p.Record
		id, en := words(r)
		d.Audit = append(d.Audit, pageAudit{Time: fmtTime(r.Time), User: r.User, ID: id, EN: en, Outcome: r.Outcome, Reason: r.Reason,
			Where: fmt.Sprintf("%s #%d, leaf %d", r.NodeID, r.Seq, p.LeafIndex), File: l.Audit[n].File})
	}
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("bundle: index.html: %w", err)
	}
	return b.Bytes(), nil
}

var pageTemplate = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="id">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kasus {{.L.Case.ID}} — bundel bukti / evidence bundle</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#1b1b1b}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
.en{color:#555;font-style:italic}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}code,.hash{font-family:ui-monospace,monospace;font-size:.85em;word-break:break-all}
.note{background:#fff8e1;border:1px solid #e0c060;padding:.6em 1em}
</style>
</head>
<body>
<h1>Bundel bukti kasus {{.L.Case.ID}}<br><span class="en">Evidence case bundle {{.L.Case.ID}}</span></h1>
<p>Dibuat oleh hub Ronda pada {{.Generated}} untuk {{.L.GeneratedBy}}.
<span class="en">Made by the Ronda hub at {{.Generated}} for {{.L.GeneratedBy}}.</span>
Waktu dalam WIB (UTC+7). <span class="en">Times are in WIB (UTC+7).</span></p>
<p class="note">Halaman ini sendiri tidak membuktikan apa pun: periksa bundel dengan <code>ronda verify</code> (lihat di bawah).
<span class="en">This page on its own proves nothing: check the bundle with <code>ronda verify</code> (see below).</span></p>

<h2>Kasus <span class="en">/ Case</span></h2>
<table>
<tr><th>Nomor kasus <span class="en">/ Case</span></th><td>{{.L.Case.ID}}</td></tr>
<tr><th>Alasan <span class="en">/ Reason</span></th><td>{{.L.Case.Reason}}</td></tr>
<tr><th>Pemilik <span class="en">/ Owner</span></th><td>{{.L.Case.Owner}}</td></tr>
<tr><th>Dibuat <span class="en">/ Created</span></th><td>{{.Created}}</td></tr>
<tr><th>Tenggat <span class="en">/ Deadline</span></th><td>{{.Deadline}}</td></tr>
<tr><th>Status</th><td>{{.Status}}{{if .Closed}} ({{.Closed}}){{end}}</td></tr>
{{- if .L.Case.Report}}
<tr><th>Laporan warga <span class="en">/ Citizen report</span></th><td>{{.L.Case.Report}}</td></tr>
{{- end}}
</table>

<h2>Rekaman <span class="en">/ Footage</span>: {{len .Items}} item, {{.Total}}</h2>
{{- if .Items}}
<table>
<tr><th>#</th><th>Kamera <span class="en">/ Camera</span></th><th>Node</th><th>Dari – sampai <span class="en">/ From – to</span></th><th>Berkas <span class="en">/ File</span></th><th>Ukuran <span class="en">/ Size</span></th><th>SHA-256</th></tr>
{{- range .Items}}
<tr><td>{{.N}}<br><small>{{.ID}}</small></td><td>{{.Camera}}</td><td>{{.Node}}</td><td>{{.From}}<br>{{.To}}</td>
<td><a href="{{.File}}">{{.File}}</a><br><small>ekspor <span class="en">/ export</span> {{.Export}};
<a href="{{.Manifest}}">manifest</a></small></td><td>{{.Size}}</td><td class="hash">{{.SHA256}}</td></tr>
{{- end}}
</table>
{{- else}}
<p>Tidak ada rekaman. <span class="en">No footage.</span></p>
{{- end}}

<h2>Catatan audit <span class="en">/ Audit records</span></h2>
<p>Setiap catatan di bawah ini ada di log audit hub (pohon Merkle) dengan bukti inklusi dan checkpoint yang ditandatangani hub.
<span class="en">Each record below is in the hub's audit log (a Merkle tree), with an inclusion proof and a checkpoint signed by the hub.</span></p>
{{- if .Audit}}
<ol>
{{- range .Audit}}
<li>{{.Time}} — <b>{{.User}}</b> {{.ID}}<br><span class="en">{{.User}} {{.EN}}</span>
{{- if .Reason}}<br>Alasan <span class="en">/ reason</span>: {{.Reason}}{{end}}
<br><small>{{.Where}} — <a href="{{.File}}">{{.File}}</a>{{if .Outcome}} — <code>{{.Outcome}}</code>{{end}}</small></li>
{{- end}}
</ol>
{{- end}}

<h2>Cara memeriksa <span class="en">/ How to check</span></h2>
<ol>
<li>Dapatkan kunci publik hub dan sertifikat CA kota dari sumber resmi, bukan dari bundel ini.
<span class="en">Get the hub's public key and the city CA certificate from an official source, not from this bundle.</span>
Kunci hub dalam bundel ini <span class="en">/ The hub key in this bundle</span>: <code>{{.Key}}</code> (sidik jari <span class="en">/ fingerprint</span> <code>{{.Fingerprint}}</code>).</li>
<li>Jalankan <span class="en">/ Run</span>: <code>ronda verify CASE.zip --hub-key KUNCI_HUB --ca ca.pem</code><br>
Hasilnya VERIFIED atau NOT VERIFIED dengan setiap masalah. <span class="en">It prints VERIFIED, or NOT VERIFIED with each problem.</span></li>
<li>Tanpa ronda <span class="en">/ Without ronda</span>: <code>sha256sum media/*.mp4</code> harus sama dengan tabel di atas dan dengan <code>case.json</code>;
tanda tangan <code>case.sig</code> atas <code>case.json</code> dapat diperiksa dengan openssl (lihat DESIGN.md format bundel).
<span class="en"><code>sha256sum media/*.mp4</code> must match the table above and <code>case.json</code>; the signature <code>case.sig</code> over <code>case.json</code> can be checked with openssl (see the bundle format's DESIGN.md).</span></li>
</ol>
</body>
</html>
`))
