package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigErrorsNameTheField(t *testing.T) {
	base := "node_id: n1\nkelurahan: 31.71.01.1001\ndata_dir: /d\ntls: {cert: c, key: k, ca: a}\nauth: {token_secret_file: s, users: [{name: a, password_hash: h, role: admin}]}\n"
	cases := []struct{ name, yaml, want string }{
		{"unknown key", base + "bogus: 1\n", "field bogus not found"},
		{"bad kelurahan", strings.Replace(base, "31.71.01.1001", "31.99", 1), `kelurahan: "31.99" is not a Jakarta kelurahan code`},
		{"camera without url", base + "cameras: [{name: cam1}]\n", "cameras[0].url: required"},
		{"duplicate camera", base + "cameras: [{name: c, url: 'rtsp://a'}, {name: c, url: 'rtsp://b'}]\n", `cameras[1].name: "c" is used twice`},
		{"bad transport", base + "cameras: [{name: c, url: 'rtsp://a', transport: http}]\n", `cameras[0].transport: "http" must be tcp or udp`},
		{"position out of range", base + "cameras: [{name: c, url: 'rtsp://a', lat: 106.8, lon: -6.2}]\n", "cameras[0].lat/lon: 106.8,-6.2 is not a position"},
		{"half a position", base + "cameras: [{name: c, url: 'rtsp://a', lat: -6.2}]\n", "cameras[0].lat/lon: give both lat and lon"},
		{"empty tag", base + "cameras: [{name: c, url: 'rtsp://a', tags: [park, '']}]\n", `cameras[0].tags[1]: ""`},
		{"short segments", base + "recording: {segment_duration: 1s}\n", "recording.segment_duration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "node.yaml")
			os.WriteFile(p, []byte(c.yaml), 0o600)
			_, err := LoadConfig(p)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestDeployExampleIsValid(t *testing.T) {
	c, err := LoadConfig("../deploy/node.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Recording.SegmentDuration != 5*time.Minute || c.Recording.SyncInterval != 2*time.Second || len(c.Hub.Members) != 3 {
		t.Fatalf("deploy/node.yaml parsed as %+v", c)
	}
	if id := CameraID(c.Kelurahan, "cam1"); id != "3171011001-cam1" {
		t.Fatalf("camera id %q", id)
	}
}
