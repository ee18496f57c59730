package hub

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/ronda-jakarta/ronda/hub/evidence"
	"github.com/ronda-jakarta/ronda/internal/yamlconf"

	"github.com/ronda-jakarta/ronda/auth"
)

// Config is a hub member's configuration file (YAML). deploy/hub.yaml
// documents every field with its default.
type Config struct {
	MemberID string `yaml:"member_id"`
	DataDir  string `yaml:"data_dir"`

	GRPCListen string `yaml:"grpc_listen"` // nodes and other members dial this; default 127.0.0.1:7443
	RaftListen string `yaml:"raft_listen"` // Raft traffic (mutual TLS); default 127.0.0.1:7001
	HTTP       struct {
		Listen string `yaml:"listen"` // HTTPS API and UI; default 127.0.0.1:9443
	} `yaml:"http"`

	TLS struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
		CA   string `yaml:"ca"`
	} `yaml:"tls"`

	// Members are the initial voters, this member included. They bootstrap a
	// new cluster once; later changes go through membership commands.
	Members []Member `yaml:"members"`
	// Join: this member is added to a running cluster with 'ronda hub join'
	// instead of bootstrapping; Members then lists (some of) the existing
	// members and need not include this one.
	Join bool `yaml:"join"`

	Auth struct {
		TokenSecretFile string        `yaml:"token_secret_file"` // shared by all members: a token works on every member
		TokenTTL        time.Duration `yaml:"token_ttl"`
		Users           []auth.User   `yaml:"users"`
	} `yaml:"auth"`

	// Membership tunes autopilot (see docs/runbook.md); zero keeps the defaults.
	Membership struct {
		StabilizationTime time.Duration `yaml:"stabilization_time"` // default 10s
		DeadMemberAfter   time.Duration `yaml:"dead_member_after"`  // default 1h
		MinQuorum         int           `yaml:"min_quorum"`         // default 3
	} `yaml:"membership"`

	// NodeKeepalive: how often this member pings each node's connection; a
	// node silent for a third of it (at most 10 s) is disconnected, and shows
	// offline. Default 30s, at least 10s.
	NodeKeepalive time.Duration `yaml:"node_keepalive"`
	// NodeMaxInflightPushes: how many node pushes this member applies at
	// once; more queue up to 2 s, then are answered "retry after" (load
	// shedding). Default 256.
	NodeMaxInflightPushes int `yaml:"node_max_inflight_pushes"`

	// Cases and Reports: evidence cases and the city complaint system's
	// citizen reports (hub/cases.go).
	Cases   CasesConfig   `yaml:"cases"`
	Reports ReportsConfig `yaml:"reports"`

	// Enrollment: new nodes get their certificates from the hub with a
	// single-use join token (off unless ca_dir is set).
	Enrollment struct {
		// CADir holds the signing CA (ca.pem, ca-key.pem) node certificates
		// are issued from; the same on every member.
		CADir string `yaml:"ca_dir"`
		// NodeCertValidity: how long an enrolled or renewed node certificate
		// is valid (default 14 days). Nodes renew over their link when a
		// third of it is left, so a node survives a WAN outage of up to a
		// third of it without re-enrolling.
		NodeCertValidity time.Duration `yaml:"node_cert_validity"`
	} `yaml:"enrollment"`

	// TURN: the member's embedded TURN server for live view (off unless
	// turn.listen is set).
	TURN TURNConfig `yaml:"turn"`

	// NodeOfflineAfter: a node without a live tunnel for this long is offline.
	NodeOfflineAfter time.Duration `yaml:"node_offline_after"` // default 15s

	// Evidence: this member's copy of the evidence store (footage pulled
	// from nodes for cases), hub/evidence. Raft records which members hold
	// each blob; members copy blobs between them until each is on
	// min(min_copies, voters) members.
	Evidence struct {
		Dir       string `yaml:"dir"`        // default <data_dir>/evidence
		MinCopies int    `yaml:"min_copies"` // default 2
	} `yaml:"evidence"`
}

// Member is one hub member's addresses.
type Member struct {
	ID   string `yaml:"id"`
	Raft string `yaml:"raft"`
	GRPC string `yaml:"grpc"`
	HTTP string `yaml:"http"` // optional, for operators
}

// LoadConfig reads and validates a config file.
func LoadConfig(path string) (*Config, error) {
	var c Config
	if err := yamlconf.Load("hub config", path, &c); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("hub config %s: %w", path, err)
	}
	return &c, nil
}

// DefaultNodeCertValidity is how long node certificates are valid.
const DefaultNodeCertValidity = 14 * 24 * time.Hour

func (c *Config) validate() error {
	var errs []error
	bad := func(field, format string, a ...any) { errs = append(errs, fmt.Errorf(field+": "+format, a...)) }
	if c.MemberID == "" {
		bad("member_id", "required (e.g. h1)")
	}
	if c.DataDir == "" {
		bad("data_dir", "required")
	}
	if c.GRPCListen == "" {
		c.GRPCListen = "127.0.0.1:7443"
	}
	if c.Enrollment.NodeCertValidity == 0 {
		c.Enrollment.NodeCertValidity = DefaultNodeCertValidity
	} else if c.Enrollment.NodeCertValidity < 2*time.Minute {
		bad("enrollment.node_cert_validity", "%s is too short; at least 2m (default %s)", c.Enrollment.NodeCertValidity, DefaultNodeCertValidity)
	}
	if c.RaftListen == "" {
		c.RaftListen = "127.0.0.1:7001"
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:9443"
	}
	if c.TLS.Cert == "" || c.TLS.Key == "" || c.TLS.CA == "" {
		bad("tls", "cert, key and ca are required (see 'ronda certs')")
	}
	self := false
	ids := map[string]bool{}
	for i, m := range c.Members {
		if m.ID == "" || m.Raft == "" || m.GRPC == "" {
			bad(fmt.Sprintf("members[%d]", i), "id, raft and grpc are required")
		}
		if ids[m.ID] {
			bad(fmt.Sprintf("members[%d].id", i), "%q is listed twice", m.ID)
		}
		ids[m.ID] = true
		if m.ID == c.MemberID {
			self = true
			if m.Raft != c.RaftListen {
				bad(fmt.Sprintf("members[%d].raft", i), "%s differs from raft_listen %s", m.Raft, c.RaftListen)
			}
		}
	}
	if !self && !c.Join {
		bad("members", "must include this member %q (or set join: true to add it to a running cluster with 'ronda hub join')", c.MemberID)
	}
	c.TURN.validate(bad)
	if c.Auth.TokenSecretFile == "" {
		bad("auth.token_secret_file", "required (32+ random bytes, the same file on every member)")
	}
	if len(c.Auth.Users) == 0 {
		bad("auth.users", "at least one user is required to log in")
	}
	if m := c.Membership; m.StabilizationTime < 0 || m.DeadMemberAfter < 0 || m.MinQuorum < 0 {
		bad("membership", "durations and min_quorum must not be negative")
	} else if m.DeadMemberAfter > 0 && m.DeadMemberAfter < time.Minute {
		bad("membership.dead_member_after", "%s is too short: a member restarting for maintenance would be removed (at least 1m)", m.DeadMemberAfter)
	}
	if c.NodeMaxInflightPushes < 0 {
		bad("node_max_inflight_pushes", "%d: must be positive (0: the default, 256)", c.NodeMaxInflightPushes)
	}
	if c.NodeKeepalive != 0 && c.NodeKeepalive < 10*time.Second {
		bad("node_keepalive", "%s is too short (at least 10s)", c.NodeKeepalive)
	}
	if c.NodeOfflineAfter == 0 {
		c.NodeOfflineAfter = 15 * time.Second
	}
	if c.Evidence.Dir == "" && c.DataDir != "" {
		c.Evidence.Dir = filepath.Join(c.DataDir, "evidence")
	}
	switch {
	case c.Evidence.MinCopies == 0:
		c.Evidence.MinCopies = evidence.DefaultMinCopies
	case c.Evidence.MinCopies < 0:
		bad("evidence.min_copies", "%d: must be at least 1 (default %d)", c.Evidence.MinCopies, evidence.DefaultMinCopies)
	}
	return errors.Join(errs...)
}
