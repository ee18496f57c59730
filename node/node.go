// Package node is a kelurahan node: it pulls its cameras over RTSP, records
// them, serves live view and playback, serves the HTTP API for its own
// cameras, and replicates its catalog and coverage to the city hub. A node
// runs alone: nothing here needs the hub to be reachable.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/certs"
	"github.com/ronda-jakarta/ronda/internal/auditchain"
	"github.com/ronda-jakarta/ronda/internal/manifest"
	"github.com/ronda-jakarta/ronda/kelurahan"
	"github.com/ronda-jakarta/ronda/node/ingest"
	"github.com/ronda-jakarta/ronda/node/live"
	"github.com/ronda-jakarta/ronda/node/media"
	"github.com/ronda-jakarta/ronda/node/record"
	"github.com/ronda-jakarta/ronda/node/restream"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	"github.com/ronda-jakarta/ronda/replication"
	"github.com/ronda-jakarta/ronda/web"
)

// Version is the build's version, shown to the hub.
var Version = "dev"

// Node is a running kelurahan node.
type Node struct {
	cfg    *Config
	log    *slog.Logger
	kel    kelurahan.Kelurahan
	bundle *certs.Bundle

	store   *record.Store
	live    *live.Engine
	rtsp    *restream.Server // nil unless rtsp.listen is set
	outbox  *replication.PebbleOutbox
	client  *replication.NodeClient
	users   *users
	certs   certStatus
	cameras []*camera // in config order
	byID    map[string]*camera

	httpSrv *http.Server
	httpLis net.Listener

	spansMu sync.Mutex
	spans   map[string]*rondav1.Span // coverage not yet in the outbox, per camera

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type camera struct {
	id     string
	name   string
	cfg    CameraConfig
	fanout *media.Fanout
	ingest *ingest.Camera
	// the sub stream (live view only), when configured
	subFanout *media.Fanout
	subIngest *ingest.Camera
}

// startRestream serves the cameras as RTSPS when rtsp.listen is set.
func (n *Node) startRestream(authn *auth.Authenticator) error {
	if n.cfg.RTSP.Listen == "" {
		return nil
	}
	rs, err := restream.New(restream.Options{Listen: n.cfg.RTSP.Listen, TLS: n.bundle.HTTPSTLS(), Logger: n.log.With("part", "rtsp"),
		Login: func(user, pass string) error { _, _, err := authn.Login(user, pass); return err },
		Allow: n.allowLive,
		Audit: func(user, camera, stream, remote, outcome string) {
			n.onAudit(api.AuditEvent{Time: time.Now(), User: user, Action: "live-rtsp " + stream, CameraID: camera, Remote: remote, Outcome: outcome})
		}})
	if err != nil {
		return err
	}
	for _, c := range n.cameras {
		rs.Add(c.id, "main", c.fanout)
		if c.subFanout != nil {
			rs.Add(c.id, "sub", c.subFanout)
		}
	}
	if err := rs.Start(); err != nil {
		rs.Close()
		return err
	}
	n.rtsp = rs
	return nil
}

// New opens the node's storage and prepares every part; Start runs them.
func New(cfg *Config, log *slog.Logger) (*Node, error) {
	kel, _ := kelurahan.ByCode(cfg.Kelurahan)
	if err := certs.RecoverRenewal(cfg.TLS.Cert, cfg.TLS.Key); err != nil {
		return nil, fmt.Errorf("node: finishing an interrupted certificate renewal: %w", err)
	}
	bundle, err := certs.LoadBundle(cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.CA)
	if err != nil {
		return nil, err
	}
	if bundle.Identity.Kind != certs.KindNode || bundle.Identity.NodeID != cfg.NodeID || bundle.Identity.Kelurahan != cfg.Kelurahan {
		return nil, fmt.Errorf("node: certificate %s is not for node %q of kelurahan %s; issue one with 'ronda certs issue --node %s --kelurahan %s'",
			bundle.Identity, cfg.NodeID, cfg.Kelurahan, cfg.NodeID, cfg.Kelurahan)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: log, kel: kel, bundle: bundle, byID: map[string]*camera{}, spans: map[string]*rondav1.Span{}}
	localUsers := slices.Clone(cfg.Auth.Users)
	for i, u := range localUsers {
		if u.Role == auth.RoleNodeAdmin && len(u.Scope.Areas) == 0 {
			localUsers[i].Scope.Areas = []string{cfg.Kelurahan} // a node admin is this kelurahan's
		}
	}
	local, err := auth.NewStaticUsers(localUsers)
	if err != nil {
		return nil, fmt.Errorf("node: auth.users: %w", err)
	}
	n.users = newUsers(cfg.DataDir, cfg.Kelurahan, local, log.With("part", "users"))
	perCamera := map[string]time.Duration{}
	for _, cc := range cfg.Cameras {
		if cc.MaxAge > 0 {
			perCamera[CameraID(cfg.Kelurahan, cc.Name)] = cc.MaxAge
		}
	}
	n.store, err = record.Open(filepath.Join(cfg.DataDir, "recordings"), record.Options{
		SegmentDuration: cfg.Recording.SegmentDuration,
		SyncInterval:    cfg.Recording.SyncInterval,
		Retention: record.Retention{MaxAge: cfg.Retention.MaxAge, PerCamera: perCamera,
			Reserve: cfg.Retention.ReserveMiB << 20, Headroom: cfg.Retention.Headroom, Interval: cfg.Retention.Interval},
		Logger: log.With("part", "record"),
	})
	if err != nil {
		return nil, err
	}
	n.live, err = live.New(live.Options{UDPAddr: cfg.Live.UDP, AnnounceIPs: cfg.Live.AnnounceIPs, Logger: log.With("part", "live")})
	if err != nil {
		n.store.Close()
		return nil, err
	}
	n.outbox, err = replication.OpenOutbox(filepath.Join(cfg.DataDir, "outbox"), log.With("part", "outbox"))
	if err != nil {
		n.live.Close()
		n.store.Close()
		return nil, err
	}
	for _, cc := range cfg.Cameras {
		c := &camera{id: CameraID(cfg.Kelurahan, cc.Name), name: cc.Name, cfg: cc, fanout: media.NewFanout()}
		c.ingest = ingest.New(ingest.Config{CameraID: c.id, URL: cc.URL, Transport: cc.Transport, Logger: log.With("camera", c.id)}, c.fanout)
		c.fanout.OnWatched = c.ingest.SetLive
		c.fanout.Add(n.store.Recorder(c.id))
		n.live.AddCamera(c.id, c.fanout)
		if cc.SubURL != "" {
			c.subFanout = media.NewFanout()
			c.subIngest = ingest.New(ingest.Config{CameraID: c.id + "~sub", URL: cc.SubURL, Transport: cc.Transport, Logger: log.With("camera", c.id, "stream", "sub")}, c.subFanout)
			c.subFanout.OnWatched = c.subIngest.SetLive
			n.live.AddStream(c.id, live.StreamSub, c.subFanout)
		}
		n.cameras = append(n.cameras, c)
		n.byID[c.id] = c
	}
	n.store.SubscribeCoverage(n.onCoverage)
	n.store.SubscribeManifest(record.ManifestSubscriber{Segment: n.onSegment, Event: n.onGapEvent})
	info := n.info()
	n.client = replication.NewNodeClient(replication.NodeClientConfig{
		Members: cfg.Hub.Members, TLS: bundle.ClientTLS(certs.KindHub), Info: info,
		Control: &control{n: n}, Outbox: n.outbox, Logger: log.With("part", "replication"), Resync: n, Directives: n, Users: n.users,
		Storage:   n.storageStatus,
		Keepalive: cfg.Hub.Keepalive, BatchSize: cfg.Hub.PushBatch, MaxBytesPerSecond: cfg.Hub.MaxPushRate, LearnMembers: !cfg.Hub.FixedMembers,
	})
	return n, nil
}

func (n *Node) info() *rondav1.NodeInfo {
	return &rondav1.NodeInfo{NodeId: n.cfg.NodeID, KelurahanCode: n.cfg.Kelurahan, ApiUrl: n.cfg.HTTP.PublicURL, Version: Version}
}

// Start runs ingest, replication and the HTTP API. It returns once the API
// listens.
func (n *Node) Start() error {
	secret, err := os.ReadFile(n.cfg.Auth.TokenSecretFile)
	if err != nil {
		return fmt.Errorf("auth.token_secret_file: %w", err)
	}
	authn, err := auth.New(auth.Options{Issuer: "node:" + n.cfg.NodeID, Secret: secret, HubKey: n.users.HubKey, Users: n.users.list, TTL: n.cfg.Auth.TokenTTL})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newCameraCollector(n), n.live)
	handler := api.New(api.Options{Backend: &backend{n: n}, Auth: authn, UI: web.Handler(), Registry: reg, Logger: n.log.With("part", "api"), Audit: n.onAudit})
	if err := n.startRestream(authn); err != nil {
		return err
	}
	n.httpLis, err = net.Listen("tcp", n.cfg.HTTP.Listen)
	if err != nil {
		if n.rtsp != nil {
			n.rtsp.Close()
		}
		return fmt.Errorf("http.listen %s: %w", n.cfg.HTTP.Listen, err)
	}
	n.httpSrv = &http.Server{Handler: handler, TLSConfig: n.bundle.HTTPSTLS(), ReadHeaderTimeout: 10 * time.Second}

	// The node registers (again) on every start; the hub applies it idempotently.
	if err := n.outbox.Append(&rondav1.Record{Body: &rondav1.Record_Registration{Registration: n.info()}}); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	for _, c := range n.cameras {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); c.ingest.Run(ctx) }()
		if c.subIngest != nil {
			n.wg.Add(1)
			go func() { defer n.wg.Done(); c.subIngest.Run(ctx) }()
		}
	}
	n.wg.Add(4)
	go func() { defer n.wg.Done(); n.client.Run(ctx) }()
	go func() { defer n.wg.Done(); n.renewCerts(ctx) }()
	go func() { defer n.wg.Done(); n.runInventory(ctx) }()
	go func() {
		defer n.wg.Done()
		if err := n.httpSrv.ServeTLS(n.httpLis, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server stopped", "err", err)
		}
	}()
	n.log.Info("node started", "node", n.cfg.NodeID, "kelurahan", n.kel.Name, "api", n.cfg.HTTP.PublicURL, "cameras", len(n.cameras))
	return nil
}

// Addr is the API's listening address.
func (n *Node) Addr() string { return n.httpLis.Addr().String() }

// Close stops everything and flushes recordings.
func (n *Node) Close() error {
	if n.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = n.httpSrv.Shutdown(ctx)
		cancel()
	}
	if n.rtsp != nil {
		n.rtsp.Close()
	}
	if n.cancel != nil {
		n.cancel()
	}
	n.wg.Wait()
	n.live.Close()
	err := n.store.Close()
	n.flushSpans()
	n.outbox.Close()
	return err
}

// onCoverage collects newly durable footage; runInventory moves it into the
// outbox every few seconds as one record per camera.
func (n *Node) onCoverage(cameraID string, start, end time.Time) {
	n.spansMu.Lock()
	defer n.spansMu.Unlock()
	s := n.spans[cameraID]
	if s == nil {
		n.spans[cameraID] = &rondav1.Span{CameraId: cameraID, StartUnixNano: start.UnixNano(), EndUnixNano: end.UnixNano()}
		return
	}
	if start.UnixNano() < s.StartUnixNano {
		s.StartUnixNano = start.UnixNano()
	}
	if end.UnixNano() > s.EndUnixNano {
		s.EndUnixNano = end.UnixNano()
	}
}

// onSegment reports a closed segment's manifest entry to the hub. It goes
// into the outbox at once (a segment closes every few minutes per camera),
// after the coverage it belongs to, so the hub folds a camera's segments in
// the order they closed.
func (n *Node) onSegment(seg record.SegmentInfo) {
	n.flushSpans()
	rec := &rondav1.Record{Body: &rondav1.Record_Segment{Segment: &rondav1.SegmentManifest{CameraId: seg.Camera, SegmentId: seg.ID,
		StartUnixNano: seg.Start.UnixNano(), EndUnixNano: seg.End.UnixNano(), Bytes: seg.Bytes, Sha256: seg.SHA256}}}
	if err := n.outbox.Append(rec); err != nil {
		n.log.Error("outbox append failed; the hub misses this segment in its manifest", "camera", seg.Camera, "segment", seg.ID, "err", err)
	}
}

// Resync re-sends the node's history to a hub that lost records it had
// acknowledged (restored from an older backup; replication.Resyncer): its
// registration and inventory, every camera's recorded spans, segment
// manifests and gap events as the index holds them, and its audit events
// after auditSeq (the originals, so the hub's chain continues). The hub
// folds what it already has only once. The history goes into the outbox
// ahead of what the node queued since it started (a segment recovered at
// start must not overtake the earlier segments of its day).
func (n *Node) Resync(hubAcked, auditSeq uint64) {
	start := time.Now()
	count, err := n.resync(auditSeq)
	if err != nil {
		n.log.Error("re-sending history to the hub failed; restart the node to try again", "err", err, "records", count)
		return
	}
	n.log.Info("history queued for the hub", "records", count, "took", time.Since(start).Round(time.Millisecond))
	n.client.Kick()
}

func (n *Node) resync(auditSeq uint64) (int, error) {
	var batch []*rondav1.Record
	count := 0
	flush := func(force bool) error {
		if len(batch) == 0 || (!force && len(batch) < 1000) {
			return nil
		}
		count += len(batch)
		err := n.outbox.InsertBeforeUnsent(batch...)
		batch = batch[:0]
		return err
	}
	add := func(r *rondav1.Record) error {
		batch = append(batch, r)
		return flush(false)
	}
	if err := add(&rondav1.Record{Body: &rondav1.Record_Registration{Registration: n.info()}}); err != nil {
		return count, err
	}
	if err := add(&rondav1.Record{Body: &rondav1.Record_Cameras{Cameras: n.inventory()}}); err != nil {
		return count, err
	}
	now := time.Now()
	for _, c := range n.cameras {
		spans, _, err := n.store.Spans(c.id, time.Unix(0, 0), now)
		if err != nil && !errors.Is(err, record.ErrNoRecordings) {
			return count, err
		}
		for _, sp := range spans {
			if err := add(&rondav1.Record{Body: &rondav1.Record_Span{Span: &rondav1.Span{CameraId: c.id, StartUnixNano: sp.Start.UnixNano(), EndUnixNano: sp.End.UnixNano()}}}); err != nil {
				return count, err
			}
		}
		// Segments go as one manifest per camera-day (the hub may already
		// hold some of them, maybe out of order: it adopts a fuller day).
		var days []*rondav1.SegmentDay
		err = n.store.History(c.id, func(seg record.SegmentInfo) error {
			day := seg.Start.UTC().Truncate(24 * time.Hour).UnixNano()
			if len(days) == 0 || days[len(days)-1].DayUnixNano != day {
				days = append(days, &rondav1.SegmentDay{CameraId: c.id, DayUnixNano: day})
			}
			d := days[len(days)-1]
			d.ManifestSha256 = manifest.Chain(d.ManifestSha256, seg.ID, seg.Start.UnixNano(), seg.End.UnixNano(), seg.Bytes, seg.SHA256)
			d.Segments++
			d.LastSegmentId = seg.ID
			return nil
		}, func(e record.Event) error {
			return add(&rondav1.Record{Body: &rondav1.Record_Gap{Gap: &rondav1.GapEvent{CameraId: e.Camera, AtUnixNano: e.At.UnixNano(), Reason: e.Reason, Detail: e.Detail}}})
		})
		if err != nil {
			return count, err
		}
		for _, d := range days {
			if err := add(&rondav1.Record{Body: &rondav1.Record_SegmentDay{SegmentDay: d}}); err != nil {
				return count, err
			}
		}
	}
	for after := auditSeq; ; {
		evs, err := n.outbox.AuditEvents(after, 1000)
		if err != nil {
			return count, err
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			if err := add(&rondav1.Record{Body: &rondav1.Record_Audit{Audit: e}}); err != nil {
				return count, err
			}
		}
		after = evs[len(evs)-1].GetAuditSeq()
	}
	return count, flush(true)
}

// holdInfo is a hold as the hub knows it: a local hold's id is
// "<node id>-<its id here>", a hub hold keeps the hub's id.
func (n *Node) holdInfo(h record.Hold) *rondav1.HoldInfo {
	id := h.Origin
	if id == "" {
		id = fmt.Sprintf("%s-%d", n.cfg.NodeID, h.ID)
	}
	info := &rondav1.HoldInfo{HoldId: id, CameraId: h.Camera, Reason: h.Reason, CreatedBy: h.By}
	if !h.From.IsZero() {
		info.FromUnixNano, info.ToUnixNano = h.From.UnixNano(), h.To.UnixNano()
	}
	if !h.Expires.IsZero() {
		info.ExpiresUnixNano = h.Expires.UnixNano()
	}
	if !h.Created.IsZero() {
		info.CreatedUnixNano = h.Created.UnixNano()
	}
	return info
}

// reportHold tells the hub about a hold the node's own staff placed or
// released (offline too: it waits in the outbox).
func (n *Node) reportHold(h record.Hold, released bool) {
	rec := &rondav1.Record{Body: &rondav1.Record_Hold{Hold: &rondav1.HoldChange{Hold: n.holdInfo(h), Released: released}}}
	if err := n.outbox.Append(rec); err != nil {
		n.log.Error("outbox append failed; the hub's list of holds misses this change", "camera", h.Camera, "hold", h.ID, "err", err)
	}
}

// ApplyDirective applies what the hub tells this node (replication.
// DirectiveHandler): a hold placed or released centrally. Applying one
// twice changes nothing.
func (n *Node) ApplyDirective(d *rondav1.Directive) error {
	switch body := d.GetBody().(type) {
	case *rondav1.Directive_Hold:
		h := body.Hold
		if _, ok := n.byID[h.GetCameraId()]; !ok {
			return fmt.Errorf("node %s has no camera %s (any more); the hold cannot keep anything here", n.cfg.NodeID, h.GetCameraId())
		}
		rh := record.Hold{Camera: h.GetCameraId(), From: time.Unix(0, h.GetFromUnixNano()), To: time.Unix(0, h.GetToUnixNano()),
			Reason: h.GetReason(), By: h.GetCreatedBy(), Origin: h.GetHoldId()}
		if h.GetExpiresUnixNano() != 0 {
			rh.Expires = time.Unix(0, h.GetExpiresUnixNano())
		}
		if h.GetCreatedUnixNano() != 0 {
			rh.Created = time.Unix(0, h.GetCreatedUnixNano()).UTC()
		}
		_, err := n.store.PutHold(rh)
		if err == nil {
			n.log.Info("hold placed by the hub", "camera", rh.Camera, "hold", rh.Origin, "from", rh.From, "to", rh.To, "reason", rh.Reason)
		}
		return err
	case *rondav1.Directive_Release:
		r := body.Release
		if local, ok := strings.CutPrefix(r.GetHoldId(), n.cfg.NodeID+"-"); ok {
			id, err := strconv.ParseUint(local, 10, 64)
			if err != nil {
				return fmt.Errorf("hold id %q: %v", r.GetHoldId(), err)
			}
			if err := n.store.DeleteHold(r.GetCameraId(), id); err != nil && !errors.Is(err, record.ErrNoSuchHold) {
				return err
			}
			return nil
		}
		return n.store.DeleteHoldByOrigin(r.GetCameraId(), r.GetHoldId())
	default:
		return fmt.Errorf("directive %d has a kind this node does not know; upgrade the node", d.GetSeq())
	}
}

// onAudit records an audited API action in the node's audit log, which
// queues it for the hub in the same write (offline too: it is uploaded,
// chained, when the link returns).
func (n *Node) onAudit(e api.AuditEvent) {
	if err := n.outbox.AppendAudit(auditchain.Event(e)); err != nil {
		// The action already happened; keep it at least in the process log.
		n.log.Error("audit log append failed; the event is only in this log", "err", err, "user", e.User, "action", e.Action,
			"camera", e.CameraID, "remote", e.Remote, "outcome", e.Outcome)
	}
}

// onGapEvent tells the hub why a camera stopped recording.
func (n *Node) onGapEvent(e record.Event) {
	rec := &rondav1.Record{Body: &rondav1.Record_Gap{Gap: &rondav1.GapEvent{CameraId: e.Camera, AtUnixNano: e.At.UnixNano(), Reason: e.Reason, Detail: e.Detail}}}
	if err := n.outbox.Append(rec); err != nil {
		n.log.Error("outbox append failed; the hub will not know why this gap is there", "camera", e.Camera, "err", err)
	}
}

func (n *Node) flushSpans() {
	n.spansMu.Lock()
	pending := n.spans
	n.spans = map[string]*rondav1.Span{}
	n.spansMu.Unlock()
	if len(pending) == 0 {
		return
	}
	ids := make([]string, 0, len(pending))
	for id := range pending {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	recs := make([]*rondav1.Record, 0, len(ids))
	for _, id := range ids {
		recs = append(recs, &rondav1.Record{Body: &rondav1.Record_Span{Span: pending[id]}})
	}
	if err := n.outbox.AppendCoalescing(recs...); err != nil {
		n.log.Error("outbox append failed; coverage will be re-sent from the index later", "err", err)
	}
}

// runInventory appends the camera inventory when it changes and flushes
// coverage into the outbox.
func (n *Node) runInventory(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	var last string
	for {
		inv := n.inventory()
		if key := inventoryKey(inv); key != last {
			if err := n.outbox.Append(&rondav1.Record{Body: &rondav1.Record_Cameras{Cameras: inv}}); err != nil {
				n.log.Error("outbox append failed", "err", err)
			} else {
				last = key
			}
		}
		n.flushSpans()
		n.client.Kick()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) inventory() *rondav1.CameraInventory {
	inv := &rondav1.CameraInventory{}
	for _, c := range n.cameras {
		st := c.ingest.Status()
		inv.Cameras = append(inv.Cameras, &rondav1.Camera{Id: c.id, Name: c.name, Codec: st.Codec,
			Width: int32(st.Width), Height: int32(st.Height), State: st.State, Reason: st.Reason,
			Lat: c.cfg.Lat, Lon: c.cfg.Lon, Rt: c.cfg.RT, Rw: c.cfg.RW, Tags: c.cfg.Tags})
	}
	return inv
}

func inventoryKey(inv *rondav1.CameraInventory) string {
	s := ""
	for _, c := range inv.Cameras {
		s += fmt.Sprintf("%s|%s|%s|%d|%d|%s|%s|%g|%g|%s|%s|%q;", c.Id, c.Name, c.Codec, c.Width, c.Height, c.State, c.Reason, c.Lat, c.Lon, c.Rt, c.Rw, c.Tags)
	}
	return s
}

// storageStatus is the recording storage for the hub's overview.
func (n *Node) storageStatus() *rondav1.StorageStatus {
	st, err := n.store.Storage()
	if err != nil {
		return nil
	}
	return &rondav1.StorageStatus{FreeBytes: st.FreeBytes, WriteBytesPerSecond: st.WriteBytesPS, ReserveBytes: st.ReserveBytes, AtUnixNano: time.Now().UnixNano()}
}
