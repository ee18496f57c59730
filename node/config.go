package node

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ronda-jakarta/ronda/internal/yamlconf"

	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/kelurahan"
)

// Config is a node's configuration file (YAML). deploy/node.yaml documents
// every field with its default.
type Config struct {
	NodeID    string `yaml:"node_id"`
	Kelurahan string `yaml:"kelurahan"` // code, e.g. 31.71.01.1001
	DataDir   string `yaml:"data_dir"`

	HTTP struct {
		Listen    string `yaml:"listen"`     // default 127.0.0.1:8443
		PublicURL string `yaml:"public_url"` // how operators reach this node's API; default https://<listen>
	} `yaml:"http"`

	TLS TLSFiles `yaml:"tls"`

	Hub struct {
		Members []string `yaml:"members"` // gRPC addresses of hub members
		// Keepalive: ping interval on each hub link; a link silent for a
		// third of it (at most 10 s) is redialled. Default 30s, at least 10s.
		Keepalive time.Duration `yaml:"keepalive"`
		// PushBatch: records per push to the hub (default 500, at most 1000).
		PushBatch int `yaml:"push_batch"`
		// MaxPushRate caps the bytes per second the node sends the hub while
		// draining (0: no cap), e.g. 250000 for a quarter of a 8 Mbit/s uplink.
		MaxPushRate int `yaml:"max_push_rate"`
		// FixedMembers: dial only Members. By default the node also dials
		// members the hub names in its answer to Hello (members joined
		// later); fix them when the node must reach the hub through
		// addresses of its own (a proxy, NAT).
		FixedMembers bool `yaml:"fixed_members"`
	} `yaml:"hub"`

	Live struct {
		UDP         string   `yaml:"udp"`          // single UDP port for WebRTC, default 127.0.0.1:8189
		AnnounceIPs []string `yaml:"announce_ips"` // addresses put in ICE candidates
		// RelayViaHub: this node is behind NAT (browsers and the hub cannot
		// reach its UDP port); for live view through the hub it allocates a
		// relay candidate on the member's TURN server (one round trip more
		// before the answer).
		RelayViaHub bool `yaml:"relay_via_hub"`
	} `yaml:"live"`

	// RTSP re-streams the cameras as RTSPS (TLS with the node's
	// certificate, node users with Basic auth) for video walls and other
	// systems: rtsps://host:port/<camera id>[/sub]. Off unless listen is set.
	RTSP struct {
		Listen string `yaml:"listen"` // e.g. 0.0.0.0:8322
	} `yaml:"rtsp"`

	Recording struct {
		SegmentDuration time.Duration `yaml:"segment_duration"` // default 5m
		SyncInterval    time.Duration `yaml:"sync_interval"`    // default 2s
	} `yaml:"recording"`

	Retention struct {
		MaxAge     time.Duration `yaml:"max_age"`     // 0: keep until space runs out
		ReserveMiB uint64        `yaml:"reserve_mib"` // kept free on top of Headroom of writes; default 1024
		Headroom   time.Duration `yaml:"headroom"`    // this long of measured writes is kept free too; default 1h
		Interval   time.Duration `yaml:"interval"`    // how often retention runs; default 30s
	} `yaml:"retention"`

	Auth AuthConfig `yaml:"auth"`

	Cameras []CameraConfig `yaml:"cameras"`
}

// TLSFiles are the PEM files of a certificate issued by the city CA.
type TLSFiles struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"`
	// RenewBefore: renew the certificate over the hub link when less than
	// this is left (default: a third of its lifetime). The new key and
	// certificate replace the files and take effect at once, without
	// dropping connections.
	RenewBefore time.Duration `yaml:"renew_before"`
}

// AuthConfig holds local users and the token secret.
type AuthConfig struct {
	TokenSecretFile string        `yaml:"token_secret_file"` // at least 32 bytes
	TokenTTL        time.Duration `yaml:"token_ttl"`         // default 1h
	Users           []auth.User   `yaml:"users"`
}

// CameraConfig is one camera.
type CameraConfig struct {
	Name      string `yaml:"name"` // local name; the camera id is <kelurahan digits>-<name>
	URL       string `yaml:"url"`  // rtsp://user:pass@host/path
	Transport string `yaml:"transport"`
	// SubURL is the camera's sub stream (lower resolution), if it has one:
	// live view in grids and video walls uses it, a single view and the
	// recording use the main stream. Not recorded.
	SubURL string `yaml:"sub_url"`
	// MaxAge overrides retention.max_age for this camera.
	MaxAge time.Duration `yaml:"max_age"`
	// Where the camera is and what it watches, for the city's search:
	// WGS84 degrees, the RT/RW numbers, free tags (park, school, ...).
	Lat  float64  `yaml:"lat"`
	Lon  float64  `yaml:"lon"`
	RT   string   `yaml:"rt"`
	RW   string   `yaml:"rw"`
	Tags []string `yaml:"tags"`
}

// LoadConfig reads and validates a config file.
func LoadConfig(path string) (*Config, error) {
	var c Config
	if err := yamlconf.Load("node config", path, &c); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("node config %s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) validate() error {
	var errs []error
	bad := func(field, format string, a ...any) { errs = append(errs, fmt.Errorf(field+": "+format, a...)) }
	if c.NodeID == "" {
		bad("node_id", "required (e.g. n1)")
	}
	if _, ok := kelurahan.ByCode(c.Kelurahan); !ok {
		bad("kelurahan", "%q is not a Jakarta kelurahan code (e.g. 31.71.01.1001)", c.Kelurahan)
	}
	if c.DataDir == "" {
		bad("data_dir", "required")
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8443"
	}
	if c.HTTP.PublicURL == "" {
		c.HTTP.PublicURL = "https://" + c.HTTP.Listen
	}
	if c.TLS.Cert == "" || c.TLS.Key == "" || c.TLS.CA == "" {
		bad("tls", "cert, key and ca are required (see 'ronda certs')")
	}
	if c.Live.UDP == "" {
		c.Live.UDP = "127.0.0.1:8189"
	}
	if c.Hub.PushBatch < 0 || c.Hub.PushBatch > 1000 {
		bad("hub.push_batch", "%d must be between 1 and 1000 (0: default 500)", c.Hub.PushBatch)
	}
	if c.Hub.MaxPushRate < 0 || (c.Hub.MaxPushRate > 0 && c.Hub.MaxPushRate < 1000) {
		bad("hub.max_push_rate", "%d bytes/s: use 0 (no cap) or at least 1000", c.Hub.MaxPushRate)
	}
	if c.Hub.Keepalive != 0 && c.Hub.Keepalive < 10*time.Second {
		bad("hub.keepalive", "%s is too short (at least 10s)", c.Hub.Keepalive)
	}
	if c.Recording.SegmentDuration == 0 {
		c.Recording.SegmentDuration = 5 * time.Minute
	}
	if c.Recording.SyncInterval == 0 {
		c.Recording.SyncInterval = 2 * time.Second
	}
	if c.Recording.SegmentDuration < 10*time.Second {
		bad("recording.segment_duration", "%s is too short (at least 10s)", c.Recording.SegmentDuration)
	}
	if c.Retention.ReserveMiB == 0 {
		c.Retention.ReserveMiB = 1024
	}
	if c.Retention.Headroom == 0 {
		c.Retention.Headroom = time.Hour
	}
	if c.Retention.Interval == 0 {
		c.Retention.Interval = 30 * time.Second
	}
	if c.Retention.Headroom < 0 {
		bad("retention.headroom", "%s must not be negative", c.Retention.Headroom)
	}
	if c.Retention.Interval < time.Second {
		bad("retention.interval", "%s is too short (at least 1s)", c.Retention.Interval)
	}
	if c.Retention.MaxAge < 0 {
		bad("retention.max_age", "%s must not be negative", c.Retention.MaxAge)
	}
	if c.Auth.TokenSecretFile == "" {
		bad("auth.token_secret_file", "required (32+ random bytes)")
	}
	if len(c.Auth.Users) == 0 {
		bad("auth.users", "at least one user is required to log in")
	}
	seen := map[string]bool{}
	for i, cam := range c.Cameras {
		switch {
		case cam.Name == "":
			bad(fmt.Sprintf("cameras[%d].name", i), "required")
		case seen[cam.Name]:
			bad(fmt.Sprintf("cameras[%d].name", i), "%q is used twice", cam.Name)
		}
		seen[cam.Name] = true
		if cam.URL == "" {
			bad(fmt.Sprintf("cameras[%d].url", i), "required (rtsp://...)")
		}
		if cam.SubURL != "" && !strings.HasPrefix(cam.SubURL, "rtsp://") && !strings.HasPrefix(cam.SubURL, "rtsps://") {
			bad(fmt.Sprintf("cameras[%d].sub_url", i), "%q is not an rtsp:// URL", cam.SubURL)
		}
		if cam.Transport != "" && cam.Transport != "tcp" && cam.Transport != "udp" {
			bad(fmt.Sprintf("cameras[%d].transport", i), "%q must be tcp or udp", cam.Transport)
		}
		if cam.Lat < -90 || cam.Lat > 90 || cam.Lon < -180 || cam.Lon > 180 {
			bad(fmt.Sprintf("cameras[%d].lat/lon", i), "%g,%g is not a position in degrees (Jakarta is about -6.2, 106.8)", cam.Lat, cam.Lon)
		}
		if (cam.Lat == 0) != (cam.Lon == 0) {
			bad(fmt.Sprintf("cameras[%d].lat/lon", i), "give both lat and lon, or neither")
		}
		for j, tag := range cam.Tags {
			if tag == "" || strings.TrimSpace(tag) != tag || len(tag) > 64 {
				bad(fmt.Sprintf("cameras[%d].tags[%d]", i, j), "%q: a tag is a short word without surrounding spaces", tag)
			}
		}
	}
	return errors.Join(errs...)
}

// CameraID is the globally unique id of a node's camera.
func CameraID(kelurahanCode, name string) string {
	return kelurahan.CompactCode(kelurahanCode) + "-" + name
}
