package hub

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "member_id: h1\nbogus: 1\n", "field bogus not found"},
		{"missing member", "member_id: h1\ndata_dir: /d\ntls: {cert: c, key: k, ca: a}\nmembers: [{id: h2, raft: 'x:1', grpc: 'x:2'}]\nauth: {token_secret_file: s, users: [{name: a, password_hash: h, role: admin}]}\n", "members: must include this member"},
		{"no users", "member_id: h1\ndata_dir: /d\ntls: {cert: c, key: k, ca: a}\nmembers: [{id: h1, raft: '127.0.0.1:7001', grpc: 'x:2'}]\nauth: {token_secret_file: s}\n", "auth.users"},
		{"dead member too soon", "member_id: h1\ndata_dir: /d\ntls: {cert: c, key: k, ca: a}\nmembers: [{id: h1, raft: '127.0.0.1:7001', grpc: 'x:2'}]\nmembership: {dead_member_after: 5s}\nauth: {token_secret_file: s, users: [{name: a, password_hash: h, role: admin}]}\n", "membership.dead_member_after: 5s is too short"},
		{"raft mismatch", "member_id: h1\ndata_dir: /d\nraft_listen: 127.0.0.1:9\ntls: {cert: c, key: k, ca: a}\nmembers: [{id: h1, raft: '127.0.0.1:7001', grpc: 'x:2'}]\nauth: {token_secret_file: s, users: [{name: a, password_hash: h, role: admin}]}\n", "differs from raft_listen"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "hub.yaml")
			os.WriteFile(p, []byte(c.yaml), 0o600)
			_, err := LoadConfig(p)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestDeployExampleIsValid(t *testing.T) {
	c, err := LoadConfig("../deploy/hub.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPCListen != "127.0.0.1:7443" || len(c.Members) != 3 || c.NodeOfflineAfter.Seconds() != 15 || c.Join ||
		c.Membership.DeadMemberAfter != time.Hour || c.Membership.MinQuorum != 3 || c.Membership.StabilizationTime != 10*time.Second {
		t.Fatalf("deploy/hub.yaml parsed as %+v", c)
	}
}

// A member joining a running cluster is not among the initial members.
func TestJoiningMemberNeedNotBeListed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hub.yaml")
	os.WriteFile(p, []byte("member_id: h4\njoin: true\ndata_dir: /d\nraft_listen: 127.0.0.1:7004\ntls: {cert: c, key: k, ca: a}\n"+
		"members: [{id: h1, raft: '127.0.0.1:7001', grpc: 'x:2'}]\nauth: {token_secret_file: s, users: [{name: a, password_hash: h, role: admin}]}\n"), 0o600)
	c, err := LoadConfig(p)
	if err != nil || !c.Join {
		t.Fatalf("joining member's config: %v", err)
	}
}
