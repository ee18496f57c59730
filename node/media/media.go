// Package media holds the types every consumer of a camera's stream shares:
// one access unit, depacketized once per camera, handed to the recorder, the
// live engine and anything else that wants the stream.
package media

import (
	"sync"
	"time"
)

// Codec names as they appear in the API.
const (
	CodecH264 = "H264"
	CodecH265 = "H265"
)

// Track describes a camera's video track. Parameter sets are Annex-B-free NAL
// units (no start codes). Width/Height come from the SPS.
type Track struct {
	Codec  string
	SPS    []byte
	PPS    []byte
	VPS    []byte // H.265 only
	Width  int
	Height int
}

// AccessUnit is one frame's NAL units (no start codes, no AUD), with times.
// Consumers must treat NALUs as read-only: the same slices go to every consumer.
type AccessUnit struct {
	// PTS is the presentation time on the camera's media clock, monotonic and
	// continuous across the session (the ingest unwraps RTP timestamps).
	PTS time.Duration
	// Wall is the wall-clock time the frame was captured (the ingest anchors
	// the media clock to the wall clock at the first frame of a session).
	Wall  time.Time
	Key   bool // an IDR (H.264) / IRAP (H.265) frame
	NALUs [][]byte
}

// Consumer receives a camera's stream. OnTrack is called when a session starts
// (and whenever parameter sets change) before any OnAccessUnit of that track;
// OnAccessUnit must not block: a consumer with slow work queues it (bounded)
// and drops to its next keyframe when full. OnStop is called when the camera's
// session ends, with the reason.
type Consumer interface {
	OnTrack(t Track)
	OnAccessUnit(au *AccessUnit)
	OnStop(reason string)
}

// Fanout delivers one camera's stream to many consumers. The ingest calls its
// methods from one goroutine; Add/Remove may be called from any goroutine.
type Fanout struct {
	mu        sync.RWMutex
	track     *Track
	consumers map[Consumer]struct{}
	watchers  int
	// OnWatched, if set, is called when the first live viewer arrives
	// (true) and when the last one leaves (false): the ingest then trades
	// CPU for latency. Set it before the fan-out is used.
	OnWatched func(bool)
}

// Watch counts live viewers (+1 when one starts, -1 when one ends).
func (f *Fanout) Watch(delta int) {
	f.mu.Lock()
	defer f.mu.Unlock() // held across the hook so transitions arrive in order
	before := f.watchers
	f.watchers = max(0, f.watchers+delta)
	if f.OnWatched != nil && (before == 0) != (f.watchers == 0) {
		f.OnWatched(f.watchers > 0)
	}
}

// NewFanout returns an empty Fanout.
func NewFanout() *Fanout { return &Fanout{consumers: map[Consumer]struct{}{}} }

// Add registers c. If a track is known, c gets OnTrack at once.
func (f *Fanout) Add(c Consumer) {
	f.mu.Lock()
	f.consumers[c] = struct{}{}
	t := f.track
	f.mu.Unlock()
	if t != nil {
		c.OnTrack(*t)
	}
}

// Remove unregisters c.
func (f *Fanout) Remove(c Consumer) {
	f.mu.Lock()
	delete(f.consumers, c)
	f.mu.Unlock()
}

// Track returns the current track, if any.
func (f *Fanout) Track() (Track, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.track == nil {
		return Track{}, false
	}
	return *f.track, true
}

// OnTrack implements Consumer.
func (f *Fanout) OnTrack(t Track) {
	f.mu.Lock()
	f.track = &t
	f.mu.Unlock()
	f.each(func(c Consumer) { c.OnTrack(t) })
}

// OnAccessUnit implements Consumer.
func (f *Fanout) OnAccessUnit(au *AccessUnit) { f.each(func(c Consumer) { c.OnAccessUnit(au) }) }

// OnStop implements Consumer.
func (f *Fanout) OnStop(reason string) {
	f.mu.Lock()
	f.track = nil
	f.mu.Unlock()
	f.each(func(c Consumer) { c.OnStop(reason) })
}

func (f *Fanout) each(fn func(Consumer)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for c := range f.consumers {
		fn(c)
	}
}

// Why a camera's stream stopped: OnStop's reason starts with one of these
// codes, then ": " and a detail a person can act on.
const (
	StopCameraOffline = "camera_offline" // unreachable, refused us, or no such stream
	StopNetwork       = "network"        // the stream broke while it was flowing
	StopNodeDown      = "node_down"      // the node stopped
)

// StopReason joins a stop code and its detail.
func StopReason(code, detail string) string { return code + ": " + detail }

// SplitReason splits "code: detail"; a reason without a known code is
// (unknown, whole string).
func SplitReason(r string, known ...string) (code, detail string) {
	for _, k := range known {
		if len(r) > len(k)+1 && r[:len(k)] == k && r[len(k)] == ':' {
			return k, trimSpace(r[len(k)+1:])
		}
		if r == k {
			return k, ""
		}
	}
	return "", r
}

func trimSpace(s string) string {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	return s
}

// RTPTime converts a media-clock time to a 90 kHz RTP timestamp, rounded to
// the nearest tick (so ticks -> Duration -> ticks is exact), without
// overflowing int64 (d*90000 would after 28 hours).
func RTPTime(d time.Duration) uint32 {
	sec, rem := int64(d/time.Second), int64(d%time.Second)
	return uint32(sec*90000 + (rem*90000+int64(time.Second)/2)/int64(time.Second))
}
