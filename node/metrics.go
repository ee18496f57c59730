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
	reconnects                                *prometheus.Desc
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
	}
}

func (c *cameraCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.fps, c.bitrate, c.gop, c.keyframe, c.recUntil, c.reconnects} {
		ch <- d
	}
}

func (c *cameraCollector) Collect(ch chan<- prometheus.Metric) {
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
		if !st.LastKeyframe.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.keyframe, prometheus.GaugeValue, unixSeconds(st.LastKeyframe), cam.id)
		}
		if end, ok := c.n.store.RecordedUntil(cam.id); ok {
			ch <- prometheus.MustNewConstMetric(c.recUntil, prometheus.GaugeValue, unixSeconds(end), cam.id)
		}
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
