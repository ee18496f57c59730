package live

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/ronda-jakarta/ronda/node/media"
)

// chooseCodec picks the offer's payload type for the camera's codec.
func chooseCodec(offer string, t media.Track) (webrtc.RTPCodecParameters, error) {
	if t.Codec == media.CodecH265 {
		return chooseH265(offer, t.SPS)
	}
	return chooseH264(offer, t.SPS)
}

// offeredCodecs lists, per rtpmap name (upper case, e.g. "H264/90000"), the
// payload types and their fmtp lines of the offer's video sections.
func offeredCodecs(offer string) (map[string]map[uint8]string, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal([]byte(offer)); err != nil {
		return nil, fmt.Errorf("live: the SDP offer does not parse: %w", err)
	}
	out := map[string]map[uint8]string{}
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "video" {
			continue
		}
		rtpmaps, fmtps := map[uint8]string{}, map[uint8]string{}
		for _, a := range m.Attributes {
			pt, rest, ok := strings.Cut(a.Value, " ")
			n, err := strconv.Atoi(pt)
			if !ok || err != nil || n < 0 || n > 127 {
				continue
			}
			switch a.Key {
			case "rtpmap":
				rtpmaps[uint8(n)] = strings.ToUpper(rest)
			case "fmtp":
				fmtps[uint8(n)] = rest
			}
		}
		for pt, name := range rtpmaps {
			if out[name] == nil {
				out[name] = map[uint8]string{}
			}
			out[name][pt] = fmtps[pt]
		}
	}
	return out, nil
}

// chooseH265 picks the offer's H.265 payload type, preferring the one whose
// profile-id is the camera's (general_profile_idc in the SPS). Browsers
// offer H.265 only where they can decode it (Chrome and Edge from 136 with
// hardware decoding, Safari from 18).
func chooseH265(offer string, sps []byte) (webrtc.RTPCodecParameters, error) {
	codecs, err := offeredCodecs(offer)
	if err != nil {
		return webrtc.RTPCodecParameters{}, err
	}
	profile := -1
	if len(sps) > 3 {
		profile = int(sps[3] & 0x1f) // after the 2-byte NAL header and vps_id/max_sub_layers/nesting
	}
	best, bestScore := -1, 0
	for pt, fmtp := range codecs["H265/90000"] {
		score := 1
		if p, err := strconv.Atoi(parseFmtp(fmtp)["profile-id"]); err == nil && p == profile {
			score = 2
		}
		if score > bestScore || (score == bestScore && int(pt) < best) {
			best, bestScore = int(pt), score
		}
	}
	if best < 0 {
		return webrtc.RTPCodecParameters{}, ErrNoH265
	}
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000, SDPFmtpLine: codecs["H265/90000"][uint8(best)],
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}},
		PayloadType: webrtc.PayloadType(best),
	}, nil
}

// chooseH264 picks, from the browser's offer, the H.264 payload type whose
// profile matches the camera's SPS (profile_idc and constraint flags, the
// part pion and browsers compare), with packetization-mode=1. Constrained
// Baseline cameras (profile 66 with constraint_set1) match the browser's
// 42e0xx; failing an exact match, the same profile_idc; failing that, any
// packetization-mode=1 H.264 (the browser may still decode it).
func chooseH264(offer string, sps []byte) (webrtc.RTPCodecParameters, error) {
	codecs, err := offeredCodecs(offer)
	if err != nil {
		return webrtc.RTPCodecParameters{}, err
	}
	if len(sps) < 4 {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("live: camera SPS too short")
	}
	profile, constraints := sps[1], sps[2]
	type cand struct {
		pt    uint8
		fmtp  string
		score int
	}
	var best *cand
	for pt, fmtp := range codecs["H264/90000"] {
		params := parseFmtp(fmtp)
		if params["packetization-mode"] != "1" {
			continue
		}
		pli := params["profile-level-id"]
		score := 1
		if len(pli) == 6 {
			p, _ := strconv.ParseUint(pli[0:2], 16, 8)
			c, _ := strconv.ParseUint(pli[2:4], 16, 8)
			switch {
			case byte(p) == profile && byte(c) == constraints:
				score = 4
			case profile == 66 && constraints&0x40 != 0 && p == 0x42 && c&0x40 != 0:
				score = 3 // constrained baseline either way
			case byte(p) == profile:
				score = 2
			}
		}
		if best == nil || score > best.score || (score == best.score && pt < best.pt) {
			best = &cand{pt: pt, fmtp: fmtp, score: score}
		}
	}
	if best == nil {
		return webrtc.RTPCodecParameters{}, ErrNoH264
	}
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: best.fmtp,
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}},
		PayloadType: webrtc.PayloadType(best.pt),
	}, nil
}

func parseFmtp(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok {
			out[strings.ToLower(k)] = v
		}
	}
	return out
}
