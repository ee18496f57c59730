package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/camsim"
	"github.com/ronda-jakarta/ronda/certs"
	"github.com/ronda-jakarta/ronda/evidence"
	"github.com/ronda-jakarta/ronda/node/ingest"
	"github.com/ronda-jakarta/ronda/node/record"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
	"github.com/ronda-jakarta/ronda/replication"
)

const pullCam = "3171011001-cam1"

// pullNode is a node (as much of one as MakeExport needs: a certificate
// from a city CA, a recording store with a few seconds of one camera from
// the simulator, the audit log) and the span it recorded.
func pullNode(t *testing.T) (*Node, record.Span) {
	t.Helper()
	dir := t.TempDir()
	if err := certs.InitCA(filepath.Join(dir, "ca"), "jakarta"); err != nil {
		t.Fatal(err)
	}
	ca, err := certs.LoadCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Issue(filepath.Join(dir, "n1"), certs.IssueOptions{Identity: certs.Identity{Kind: certs.KindNode, Kelurahan: "31.71.01.1001", NodeID: "n1"}}); err != nil {
		t.Fatal(err)
	}
	bundle, err := certs.LoadBundle(filepath.Join(dir, "n1", certs.CertFile), filepath.Join(dir, "n1", certs.KeyFile), filepath.Join(dir, "n1", certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	st, err := record.Open(filepath.Join(data, "recordings"), record.Options{SegmentDuration: 3 * time.Second, SyncInterval: 300 * time.Millisecond, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	outbox, err := replication.OpenOutbox(filepath.Join(data, "outbox"), discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { outbox.Close() })

	sim, err := camsim.New(camsim.Config{Addr: "127.0.0.1:0", Cameras: 1, ClipPath: "../testdata/clip.h264", Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	cam := ingest.New(ingest.Config{CameraID: pullCam, URL: sim.URL(1), Logger: discard}, st.Recorder(pullCam))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { cam.Run(ctx); close(done) }()
	var span record.Span
	deadline := time.Now().Add(30 * time.Second)
	for {
		spans, _, _ := st.Spans(pullCam, time.Now().Add(-time.Minute), time.Now().Add(time.Minute))
		if len(spans) > 0 && spans[0].End.Sub(spans[0].Start) >= 3*time.Second {
			span = spans[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no durable footage after 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	<-done
	n := &Node{cfg: &Config{NodeID: "n1", Kelurahan: "31.71.01.1001", DataDir: data}, log: discard, bundle: bundle, store: st, outbox: outbox,
		byID: map[string]*camera{pullCam: {id: pullCam}}}
	return n, span
}

// The hub's pull RPCs against a real node: MakeExport twice for one case
// item makes one export (audited once, as the API's exports are), and
// ReadExport from an offset returns the file's tail.
func TestNodeHubPullRPCs(t *testing.T) {
	n, span := pullNode(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	rpcv1.RegisterNodeControlServer(srv, &control{n: n})
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctl := rpcv1.NewNodeControlClient(conn)
	ctx := t.Context()

	from, to := span.Start.Add(500*time.Millisecond), span.End
	req := &rondav1.MakeExportRequest{CaseId: "CASE-1", ItemId: "item-1", CameraId: pullCam, FromUnixNano: from.UnixNano(), ToUnixNano: to.UnixNano(),
		Reason: "JAKI-2026-0042", User: "auditor"}
	m1, err := ctl.MakeExport(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ctl.MakeExport(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m1, m2) {
		t.Fatalf("MakeExport twice for one item: %s and %s", m1.ExportId, m2.ExportId)
	}
	mp4s, _ := filepath.Glob(filepath.Join(n.exportDir(), "*.mp4"))
	if len(mp4s) != 1 {
		t.Fatalf("%d export files for one item", len(mp4s))
	}
	file, err := os.ReadFile(filepath.Join(n.exportDir(), m1.ExportId+".mp4"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(file)
	if m1.Sha256 != hex.EncodeToString(sum[:]) || m1.Bytes != int64(len(file)) || m1.CameraId != pullCam || m1.FromUnixNano > from.UnixNano() || m1.ToUnixNano == 0 {
		t.Fatalf("ExportMeta %s %d bytes sha %s for a %d-byte file", m1.ExportId, m1.Bytes, m1.Sha256, len(file))
	}
	stored, _ := os.ReadFile(filepath.Join(n.exportDir(), m1.ExportId+".manifest.json"))
	if !bytes.Equal(m1.Manifest, stored) {
		t.Fatal("the manifest is not the one the node stores, byte for byte")
	}
	man, err := evidence.Load(filepath.Join(n.exportDir(), m1.ExportId+".manifest.json"))
	if err != nil || man.SHA256 != m1.Sha256 || man.RequestedBy != "hub:auditor" || man.Reason != "JAKI-2026-0042" || man.Signature == "" {
		t.Fatalf("manifest %+v, %v", man, err)
	}
	if problems := evidence.Verify(man, filepath.Join(n.exportDir(), m1.ExportId+".mp4"), evidence.Options{Roots: n.bundle.Pool}); len(problems) != 0 {
		t.Fatalf("the export does not verify: %v", problems)
	}
	evs, err := n.outbox.AuditEvents(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var exports []*rondav1.AuditEvent
	for _, e := range evs {
		if e.Action == "export" {
			exports = append(exports, e)
		}
	}
	if len(exports) != 1 {
		t.Fatalf("%d export audit events for one export", len(exports))
	}
	if e := exports[0]; e.User != "hub:auditor" || e.Outcome != api.ExportOutcome(m1.ExportId, m1.Sha256) || e.Reason != "JAKI-2026-0042" ||
		e.CameraId != pullCam || e.FromUnixNano != from.UnixNano() || e.ToUnixNano != to.UnixNano() || !strings.HasPrefix(e.Remote, "hub") {
		t.Fatalf("audit event %+v", e)
	}

	read := func(part string, off int64, limit int32) ([]byte, error) {
		s, err := ctl.ReadExport(ctx, &rondav1.ReadExportRequest{ExportId: m1.ExportId, Part: part, Offset: off, MaxChunk: limit})
		if err != nil {
			return nil, err
		}
		var out []byte
		for {
			c, err := s.Recv()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			if c.Offset != off+int64(len(out)) || (limit > 0 && len(c.Data) > int(limit)) || len(c.Data) > maxChunk {
				t.Fatalf("chunk at %d of %d bytes after %d bytes from %d", c.Offset, len(c.Data), len(out), off)
			}
			out = append(out, c.Data...)
		}
	}
	off := int64(len(file)) / 3
	tail, err := read("file", off, 64<<10)
	if err != nil || !bytes.Equal(tail, file[off:]) {
		t.Fatalf("ReadExport from %d: %d bytes, %v; want the file's last %d bytes", off, len(tail), err, int64(len(file))-off)
	}
	if whole, err := read("", 0, 0); err != nil || !bytes.Equal(whole, file) {
		t.Fatalf("ReadExport of the whole file: %d bytes, %v", len(whole), err)
	}
	if end, err := read("file", int64(len(file)), 0); err != nil || len(end) != 0 {
		t.Fatalf("ReadExport at the end: %d bytes, %v", len(end), err)
	}
	if m, err := read("manifest", 0, 0); err != nil || !bytes.Equal(m, stored) {
		t.Fatalf("ReadExport of the manifest: %v", err)
	}

	for _, c := range []struct {
		name string
		err  func() error
		code codes.Code
		says string
	}{
		{"unknown export", func() error {
			s, err := ctl.ReadExport(ctx, &rondav1.ReadExportRequest{ExportId: "20261122T100000-ffffffff"})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.NotFound, "20261122T100000-ffffffff"},
		{"offset past the end", func() error { _, err := read("file", int64(len(file))+1, 0); return err }, codes.InvalidArgument, "offset"},
		{"negative offset", func() error { _, err := read("file", -1, 0); return err }, codes.InvalidArgument, "offset"},
		{"unknown part", func() error { _, err := read("thumbnail", 0, 0); return err }, codes.InvalidArgument, "thumbnail"},
		{"the item asked again with another range", func() error {
			r := proto.Clone(req).(*rondav1.MakeExportRequest)
			r.FromUnixNano -= int64(time.Second)
			_, err := ctl.MakeExport(ctx, r)
			return err
		}, codes.InvalidArgument, "was exported as"},
		{"no reason", func() error {
			r := proto.Clone(req).(*rondav1.MakeExportRequest)
			r.ItemId, r.Reason = "item-2", ""
			_, err := ctl.MakeExport(ctx, r)
			return err
		}, codes.InvalidArgument, "reason"},
	} {
		err := c.err()
		if status.Code(err) != c.code || !strings.Contains(status.Convert(err).Message(), c.says) {
			t.Errorf("%s: %v, want %s saying %q", c.name, err, c.code, c.says)
		}
	}

	// Another item of the case is another export.
	r := proto.Clone(req).(*rondav1.MakeExportRequest)
	r.ItemId = "item-3"
	m3, err := ctl.MakeExport(ctx, r)
	if err != nil || m3.ExportId == m1.ExportId {
		t.Fatalf("another item: %v, %v", m3.GetExportId(), err)
	}
}
