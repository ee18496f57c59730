package replication

import (
	"strconv"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/ronda-jakarta/ronda/api"
)

// Playback metadata: a node's Playback stream says in its header what the
// file covers, so the hub can answer with the same X-Ronda-* headers as the
// node's own API.
const (
	mdPlaybackFrom     = "ronda-playback-from"
	mdPlaybackTo       = "ronda-playback-to"
	mdPlaybackKeyframe = "ronda-playback-keyframe-from"
	mdPlaybackGaps     = "ronda-playback-gaps"
	mdPlaybackTrunc    = "ronda-playback-truncated"
)

// PlaybackInfoMD is the stream header for a playback.
func PlaybackInfoMD(info api.PlaybackInfo) metadata.MD {
	md := metadata.Pairs(
		mdPlaybackFrom, strconv.FormatInt(info.From.UnixNano(), 10),
		mdPlaybackTo, strconv.FormatInt(info.To.UnixNano(), 10),
		mdPlaybackKeyframe, strconv.FormatInt(info.KeyframeFrom.UnixNano(), 10),
		mdPlaybackGaps, strconv.Itoa(info.Gaps))
	if info.Truncated != "" {
		md.Set(mdPlaybackTrunc, info.Truncated)
	}
	return md
}

// PlaybackInfoFromMD reads PlaybackInfoMD's header; ok is false when the
// node sent none (an older node).
func PlaybackInfoFromMD(md metadata.MD) (api.PlaybackInfo, bool) {
	ns := func(k string) (time.Time, bool) {
		v := md.Get(k)
		if len(v) != 1 {
			return time.Time{}, false
		}
		n, err := strconv.ParseInt(v[0], 10, 64)
		return time.Unix(0, n).UTC(), err == nil
	}
	var info api.PlaybackInfo
	var ok1, ok2, ok3 bool
	info.From, ok1 = ns(mdPlaybackFrom)
	info.To, ok2 = ns(mdPlaybackTo)
	info.KeyframeFrom, ok3 = ns(mdPlaybackKeyframe)
	if !ok1 || !ok2 || !ok3 {
		return api.PlaybackInfo{}, false
	}
	if v := md.Get(mdPlaybackGaps); len(v) == 1 {
		info.Gaps, _ = strconv.Atoi(v[0])
	}
	if v := md.Get(mdPlaybackTrunc); len(v) == 1 {
		info.Truncated = v[0]
	}
	return info, true
}
