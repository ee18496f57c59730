package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
	"google.golang.org/grpc"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/internal/auditchain"
	"github.com/ronda-jakarta/ronda/node/live"
	"github.com/ronda-jakarta/ronda/node/record"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
	"github.com/ronda-jakarta/ronda/replication"
)

// recordingFresh is how recent durable footage must be for a camera to count
// as recording (sync interval + a GOP + slack).
const recordingFresh = 30 * time.Second

// backend serves the HTTP API for the node's own cameras.
type backend struct{ n *Node }

func (b *backend) Identity() (string, string) { return "node", "Kelurahan " + b.n.kel.Name }

func (b *backend) Nodes(ctx context.Context) ([]api.Node, error) {
	k := b.n.kel
	return []api.Node{{NodeID: b.n.cfg.NodeID, KelurahanCode: k.Code, Kelurahan: k.Name, Kecamatan: k.Kecamatan,
		Kota: k.Kota, Online: true, LastSeen: time.Now().UTC(), Cameras: len(b.n.cameras)}}, nil
}

func (b *backend) Cameras(ctx context.Context) ([]api.Camera, error) {
	now := time.Now()
	out := make([]api.Camera, 0, len(b.n.cameras))
	for _, c := range b.n.cameras {
		st := c.ingest.Status()
		cam := api.Camera{ID: c.id, Name: c.name, KelurahanCode: b.n.kel.Code, Kelurahan: b.n.kel.Name, NodeID: b.n.cfg.NodeID,
			State: st.State, Reason: st.Reason, Codec: st.Codec, Width: st.Width, Height: st.Height,
			Health: &api.CameraHealth{FPS: st.FPS, BitrateBps: st.BitrateBps, GOPFrames: st.GOPFrames,
				Reconnects: st.Reconnects, ClockSteps: st.ClockSteps, StateSince: st.Since.UTC(),
				LiveViewers: b.n.live.Viewers(c.id), LiveWarning: b.n.live.CameraWarning(c.id)}}
		if !st.LastKeyframe.IsZero() {
			k := st.LastKeyframe.UTC()
			cam.Health.LastKeyframe = &k
		}
		if c.subIngest != nil {
			ss := c.subIngest.Status()
			cam.SubStream = &api.StreamState{State: ss.State, Reason: ss.Reason, Codec: ss.Codec, Width: ss.Width, Height: ss.Height}
		}
		if end, ok := b.n.store.RecordedUntil(c.id); ok {
			end = end.UTC()
			cam.RecordedUntil = &end
			cam.Recording = now.Sub(end) < recordingFresh
		}
		out = append(out, cam)
	}
	return out, nil
}

func (b *backend) camera(id string) (*camera, error) {
	c, ok := b.n.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: no camera %q on this node; GET /api/v1/cameras lists them", api.ErrNotFound, id)
	}
	return c, nil
}

func (b *backend) Recordings(ctx context.Context, id string, from, to time.Time) (api.Recordings, error) {
	if _, err := b.camera(id); err != nil {
		return api.Recordings{}, err
	}
	spans, gaps, err := b.n.store.Spans(id, from, to)
	if err != nil && !errors.Is(err, record.ErrNoRecordings) {
		return api.Recordings{}, err
	}
	rec := api.Recordings{CameraID: id, From: from.UTC(), To: to.UTC(), Source: "node"}
	for _, s := range spans {
		rec.Spans = append(rec.Spans, api.Span{Start: s.Start.UTC(), End: s.End.UTC()})
		rec.RecordedSeconds += s.End.Sub(s.Start).Seconds()
	}
	for _, g := range gaps {
		rec.Gaps = append(rec.Gaps, api.Gap{Start: g.Start.UTC(), End: g.End.UTC(), Reason: g.Reason, Detail: g.Detail})
	}
	dayFrom := from.UTC().Truncate(24 * time.Hour)
	dayTo := to.UTC().Add(-1).Truncate(24 * time.Hour).Add(24 * time.Hour)
	sums, counts, err := b.n.store.DayManifests(id, dayFrom, dayTo)
	if err != nil {
		return api.Recordings{}, err
	}
	for day := dayFrom; day.Before(dayTo); day = day.Add(24 * time.Hour) {
		if counts[day] > 0 {
			rec.Manifests = append(rec.Manifests, api.DayManifest{Day: day.Format(time.DateOnly), Segments: counts[day], SHA256: hex.EncodeToString(sums[day])})
		}
	}
	return rec, nil
}

func holdOut(h record.Hold, now time.Time) api.Hold {
	id := strconv.FormatUint(h.ID, 10)
	if h.Origin != "" {
		id = h.Origin // placed at the hub: the hub's id
	}
	return api.Hold{ID: id, CameraID: h.Camera, From: h.From.UTC(), To: h.To.UTC(), Reason: h.Reason,
		Expires: h.Expires.UTC(), Created: h.Created.UTC(), CreatedBy: h.By, Active: h.Expires.IsZero() || h.Expires.After(now)}
}

// PutHold keeps footage from retention (api.HoldStore).
func (b *backend) PutHold(ctx context.Context, id string, req api.HoldRequest, user string) (api.Hold, error) {
	if _, err := b.camera(id); err != nil {
		return api.Hold{}, err
	}
	h, err := b.n.store.PutHold(record.Hold{Camera: id, From: req.From, To: req.To, Reason: req.Reason, Expires: req.Expires, By: user})
	if err != nil {
		return api.Hold{}, err
	}
	b.n.reportHold(h, false)
	return holdOut(h, time.Now()), nil
}

// Holds lists a camera's holds, expired ones included (api.HoldStore).
func (b *backend) Holds(ctx context.Context, id string) ([]api.Hold, error) {
	if _, err := b.camera(id); err != nil {
		return nil, err
	}
	hs, err := b.n.store.Holds(id)
	if err != nil {
		return nil, err
	}
	out := make([]api.Hold, 0, len(hs))
	now := time.Now()
	for _, h := range hs {
		out = append(out, holdOut(h, now))
	}
	return out, nil
}

// DeleteHold releases a hold (api.HoldStore).
func (b *backend) DeleteHold(ctx context.Context, id, hold string) error {
	if _, err := b.camera(id); err != nil {
		return err
	}
	if strings.HasPrefix(hold, "hub-") {
		return fmt.Errorf("%w: hold %s was placed at the hub (a case or an auditor's hold); release it there", api.ErrForbidden, hold)
	}
	n, err := strconv.ParseUint(hold, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: hold id %q is not a number; GET …/holds lists them", api.ErrBadRequest, hold)
	}
	if err := b.n.store.DeleteHold(id, n); errors.Is(err, record.ErrNoSuchHold) {
		return fmt.Errorf("%w: hold %s: %v", api.ErrNotFound, hold, err)
	} else if err != nil {
		return err
	}
	b.n.reportHold(record.Hold{ID: n, Camera: id}, true)
	return nil
}

func (b *backend) Playback(ctx context.Context, w io.Writer, id string, from, to time.Time, user string) error {
	if _, err := b.camera(id); err != nil {
		return err
	}
	err := b.n.store.WritePlayback(ctx, w, id, from, to)
	if errors.Is(err, record.ErrNoRecordings) {
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	}
	return err
}

// OpenPlayback plans a playback with a known length (HTTP Range).
func (b *backend) OpenPlayback(ctx context.Context, id string, from, to time.Time, user string) (api.PlaybackMedia, error) {
	if _, err := b.camera(id); err != nil {
		return nil, err
	}
	m, err := b.n.store.OpenPlayback(id, from, to)
	if errors.Is(err, record.ErrNoRecordings) {
		return nil, fmt.Errorf("%w: %v", api.ErrNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	return playbackMedia{m}, nil
}

type playbackMedia struct{ *record.Media }

func (m playbackMedia) Info() api.PlaybackInfo {
	return api.PlaybackInfo{From: m.From, To: m.To, KeyframeFrom: m.KeyframeFrom, Gaps: m.Gaps, Truncated: m.Truncated}
}

func (b *backend) Whep(ctx context.Context, o api.WhepOffer) (api.WhepAnswer, error) {
	if _, err := b.camera(o.CameraID); err != nil {
		return api.WhepAnswer{}, err
	}
	opt := live.OfferOptions{NoGOPCache: o.NoGOPCache, Stream: o.Stream}
	if b.n.cfg.Live.RelayViaHub {
		for _, s := range o.ICEServers {
			opt.ICEServers = append(opt.ICEServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
		}
	}
	answer, session, err := b.n.live.Offer(ctx, o.CameraID, o.SDP, opt)
	if err != nil {
		return api.WhepAnswer{}, liveError(err)
	}
	stream := live.StreamMain
	if in, err := b.n.live.Info(session); err == nil {
		stream = in.Stream
	}
	return api.WhepAnswer{SDP: answer, Session: session, Stream: stream, Warning: b.n.live.CameraWarning(o.CameraID)}, nil
}

// liveError maps the live engine's errors to the API's.
func liveError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, live.ErrUnknownCamera), errors.Is(err, live.ErrUnknownSession):
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	case errors.Is(err, live.ErrNoVideo), errors.Is(err, live.ErrClosed):
		return fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %v", api.ErrBadRequest, err)
}

func (b *backend) WhepPatch(ctx context.Context, session, frag string) error {
	return liveError(b.n.live.Patch(session, frag))
}

func (b *backend) WhepSession(ctx context.Context, session string) (api.LiveSession, error) {
	in, err := b.n.live.Info(session)
	if err != nil {
		return api.LiveSession{}, liveError(err)
	}
	return api.LiveSession{Session: in.ID, CameraID: in.CameraID, Stream: in.Stream, State: in.State, Path: in.Path, Offered: in.Offered,
		ConnectMS: in.ConnectMS, FirstFrame: in.FirstFrame, StartedFrom: in.StartedFrom, Packets: in.Packets, Bytes: in.Bytes,
		Dropped: in.Dropped, PLIs: in.PLIs, GOPReplays: in.GOPReplays, NodeID: b.n.cfg.NodeID, NodeCandidates: in.NodeCandidates}, nil
}

func (b *backend) WhepDelete(ctx context.Context, session string) error {
	return liveError(b.n.live.Delete(session))
}

func (b *backend) Cluster(ctx context.Context) (any, error) {
	last, acked := b.n.outbox.Stats()
	return map[string]any{"served_by": "node", "hub_links": b.n.client.Status(), "recording_alarm": b.n.store.Alarm(), "certificate": b.n.certInfo(),
		"outbox": map[string]uint64{"last_seq": last, "acked_seq": acked, "pending": last - acked}}, nil
}

// control serves the hub's calls into this node over the reverse tunnel.
type control struct {
	rpcv1.UnimplementedNodeControlServer
	n *Node
}

func (c *control) backend() *backend { return &backend{n: c.n} }

func (c *control) Whep(ctx context.Context, req *rondav1.WhepRequest) (*rondav1.WhepResponse, error) {
	o := api.WhepOffer{CameraID: req.CameraId, SDP: req.OfferSdp, User: req.User, NoGOPCache: req.NoGopCache, Stream: req.Stream}
	for _, s := range req.IceServers {
		o.ICEServers = append(o.ICEServers, api.ICEServer{URLs: s.Urls, Username: s.Username, Credential: s.Credential})
	}
	ans, err := c.backend().Whep(ctx, o)
	if err != nil {
		return nil, replication.ToStatus(err)
	}
	return &rondav1.WhepResponse{AnswerSdp: ans.SDP, SessionId: ans.Session, Warning: ans.Warning, Stream: ans.Stream}, nil
}

func (c *control) WhepPatch(ctx context.Context, req *rondav1.WhepPatchRequest) (*rondav1.WhepPatchResponse, error) {
	if err := c.backend().WhepPatch(ctx, req.SessionId, req.Fragment); err != nil {
		return nil, replication.ToStatus(err)
	}
	return &rondav1.WhepPatchResponse{}, nil
}

func (c *control) WhepSession(ctx context.Context, req *rondav1.WhepSessionRequest) (*rondav1.WhepSessionResponse, error) {
	in, err := c.backend().WhepSession(ctx, req.SessionId)
	if err != nil {
		return nil, replication.ToStatus(err)
	}
	return &rondav1.WhepSessionResponse{SessionId: in.Session, CameraId: in.CameraID, Stream: in.Stream, State: in.State, Path: in.Path,
		OfferedUnixNano: in.Offered.UnixNano(), ConnectMs: in.ConnectMS, FirstFrameMs: in.FirstFrame, StartedFrom: in.StartedFrom,
		Packets: in.Packets, Bytes: in.Bytes, DroppedFrames: in.Dropped, Pli: in.PLIs, GopReplays: in.GOPReplays, NodeCandidates: in.NodeCandidates}, nil
}

func (c *control) WhepDelete(ctx context.Context, req *rondav1.WhepDeleteRequest) (*rondav1.WhepDeleteResponse, error) {
	if err := c.backend().WhepDelete(ctx, req.SessionId); err != nil {
		return nil, replication.ToStatus(err)
	}
	return &rondav1.WhepDeleteResponse{}, nil
}

func (c *control) Recordings(ctx context.Context, req *rondav1.RecordingsRequest) (*rondav1.RecordingsResponse, error) {
	rec, err := c.backend().Recordings(ctx, req.CameraId, time.Unix(0, req.FromUnixNano), time.Unix(0, req.ToUnixNano))
	if err != nil {
		return nil, replication.ToStatus(err)
	}
	out := &rondav1.RecordingsResponse{}
	for _, s := range rec.Spans {
		out.Spans = append(out.Spans, &rondav1.Span{CameraId: req.CameraId, StartUnixNano: s.Start.UnixNano(), EndUnixNano: s.End.UnixNano()})
	}
	for _, g := range rec.Gaps {
		out.Gaps = append(out.Gaps, &rondav1.Gap{StartUnixNano: g.Start.UnixNano(), EndUnixNano: g.End.UnixNano(), Reason: g.Reason, Detail: g.Detail})
	}
	return out, nil
}

// chunkWriter sends playback bytes to the hub in chunks of at most 256 KiB.
type chunkWriter struct {
	s grpc.ServerStreamingServer[rondav1.PlaybackChunk]
}

const maxChunk = 256 << 10

func (w chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), maxChunk)
		if err := w.s.Send(&rondav1.PlaybackChunk{Data: p[:k]}); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

func (c *control) Playback(req *rondav1.PlaybackRequest, s grpc.ServerStreamingServer[rondav1.PlaybackChunk]) error {
	from, to := time.Unix(0, req.FromUnixNano), time.Unix(0, req.ToUnixNano)
	m, err := c.backend().OpenPlayback(s.Context(), req.CameraId, from, to, req.User)
	if err != nil {
		return replication.ToStatus(err)
	}
	defer m.Close()
	// What the file covers goes ahead of its bytes, so the hub answers
	// with the same X-Ronda-From (the file's time 0) as the node does.
	if err := s.SendHeader(replication.PlaybackInfoMD(m.Info())); err != nil {
		return err
	}
	buf := make([]byte, maxChunk)
	if _, err := io.CopyBuffer(chunkWriter{s: s}, struct{ io.Reader }{m}, buf); err != nil {
		return replication.ToStatus(err)
	}
	return nil
}

// Audit lists the node's own audit log (every action taken at this node,
// whether or not the hub has it yet).
func (b *backend) Audit(ctx context.Context, q api.AuditQuery) ([]api.AuditRecord, error) {
	if q.NodeID != "" && q.NodeID != b.n.cfg.NodeID {
		return nil, fmt.Errorf("%w: this is node %s; ask the hub for node %s's audit log", api.ErrNotFound, b.n.cfg.NodeID, q.NodeID)
	}
	evs, err := b.n.outbox.AuditEvents(q.After, q.Limit)
	if err != nil {
		return nil, err
	}
	out := make([]api.AuditRecord, 0, len(evs))
	for _, e := range evs {
		out = append(out, auditchain.Record(b.n.cfg.NodeID, e))
	}
	return out, nil
}
