package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ronda-jakarta/ronda/node/ingest"
)

// cameraCollector exports every camera's health at scrape time from the
// ingest status: nothing is added to the per-frame path.
type cameraCollector struct {
	n                                         *Node
	up, fps, bitrate, gop, keyframe, recUntil *prometheus.Desc
	reconnects, dropped, lost                 *prometheus.Desc
	alarm                                     *prometheus.Desc
}

func newCameraCollector(n *Node) *cameraCollector {
	l := []string{"camera"}
	return &cameraCollector{n: n,
		up:         prometheus.NewDesc("ronda_camera_up", "1 if the camera is streaming, 0 if connecting or failing.", l, nil),
		fps:        prometheus.NewDesc("ronda_camera_fps", "Frames per second received from the camera.", l, nil),
		bitrate:    prometheus.NewDesc("ronda_camera_bitrate_bps", "Bits per second received from the camera.", l, nil),
		gop:        prometheus.NewDesc("ronda_camera_gop_frames", "Frames between the last two keyframes.", l, nil),
		keyframe:   prometheus.NewDesc("ronda_camera_last_keyframe_timestamp_seconds", "Wall time of the last keyframe.", l, nil),
		recUntil:   prometheus.NewDesc("ronda_camera_recorded_until_timestamp_seconds", "End of the newest durable (fsynced and indexed) footage.", l, nil),
		reconnects: prometheus.NewDesc("ronda_camera_reconnects_total", "Times the camera's stream failed and was reconnected.", l, nil),
		dropped:    prometheus.NewDesc("ronda_camera_dropped_frames_total", "Frames the camera sent that could not be used (see last_drop in the API).", l, nil),
		lost:       prometheus.NewDesc("ronda_camera_rtp_packets_lost_total", "RTP sequence gaps (UDP loss, or a camera skipping packets).", l, nil),
		alarm:      prometheus.NewDesc("ronda_recording_alarm", "1 while retention cannot keep the free-space floor because footage is held (recording_alarm says more).", nil, nil),
	}
}

func (c *cameraCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.fps, c.bitrate, c.gop, c.keyframe, c.recUntil, c.reconnects, c.dropped, c.lost, c.alarm} {
		ch <- d
	}
}

func (c *cameraCollector) Collect(ch chan<- prometheus.Metric) {
	alarm := 0.0
	if c.n.store.Alarm() != "" {
		alarm = 1
	}
	ch <- prometheus.MustNewConstMetric(c.alarm, prometheus.GaugeValue, alarm)
	for _, cam := range c.n.cameras {
		st := cam.ingest.Status()
		up := 0.0
		if st.State == ingest.StateStreaming {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, cam.id)
		ch <- prometheus.MustNewConstMetric(c.fps, prometheus.GaugeValue, st.FPS, cam.id)
		ch <- prometheus.MustNewConstMetric(c.bitrate, prometheus.GaugeValue, st.BitrateBps, cam.id)
		ch <- prometheus.MustNewConstMetric(c.gop, prometheus.GaugeValue, float64(st.GOPFrames), cam.id)
		ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(st.Reconnects), cam.id)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(st.DroppedFrames), cam.id)
		ch <- prometheus.MustNewConstMetric(c.lost, prometheus.CounterValue, float64(st.PacketsLost), cam.id)
		if !st.LastKeyframe.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.keyframe, prometheus.GaugeValue, unixSeconds(st.LastKeyframe), cam.id)
		}
		if end, ok := c.n.store.RecordedUntil(cam.id); ok {
			ch <- prometheus.MustNewConstMetric(c.recUntil, prometheus.GaugeValue, unixSeconds(end), cam.id)
		}
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
