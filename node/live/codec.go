package live

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// chooseH264 picks, from the browser's offer, the H.264 payload type whose
// profile matches the camera's SPS (profile_idc and constraint flags, the
// part pion and browsers compare), with packetization-mode=1. Constrained
// Baseline cameras (profile 66 with constraint_set1) match the browser's
// 42e0xx; failing an exact match, the same profile_idc; failing that, any
// packetization-mode=1 H.264 (the browser may still decode it).
func chooseH264(offer string, sps []byte) (webrtc.RTPCodecParameters, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal([]byte(offer)); err != nil {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("live: the SDP offer does not parse: %w", err)
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
				rtpmaps[uint8(n)] = rest
			case "fmtp":
				fmtps[uint8(n)] = rest
			}
		}
		for pt, codec := range rtpmaps {
			if !strings.EqualFold(codec, "H264/90000") {
				continue
			}
			params := parseFmtp(fmtps[pt])
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
				best = &cand{pt: pt, fmtp: fmtps[pt], score: score}
			}
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
