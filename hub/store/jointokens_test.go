package store

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

func TestJoinTokenWorksOnceAndNotAfterItExpires(t *testing.T) {
	f := newTestFSM(t, filepath.Join(t.TempDir(), "fsm"))
	id := strings.Repeat("ab", 32)
	create := func(id string, expires int64) []byte {
		cmd, err := EncodeCommand(CommandJoinToken, &rondav1.JoinTokenCommand{Create: &rondav1.StoredJoinToken{
			Id: id, KelurahanCode: "31.71.01.1001", CreatedUnixNano: 10, ExpiresUnixNano: expires, CreatedBy: "admin"}})
		if err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	consume := func(id, node string, at int64) []byte {
		cmd, err := EncodeCommand(CommandJoinToken, &rondav1.JoinTokenCommand{ConsumeId: id, NodeId: node, AtUnixNano: at})
		if err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	applyAt(t, f, 1, create(id, 100))
	if r := applyAt(t, f, 2, consume(id, "n9", 50)); r.err != nil {
		t.Fatalf("first use: %v", r.err)
	}
	if r := applyAt(t, f, 3, consume(id, "n10", 60)); !errors.Is(r.err, ErrBadCommand) || !strings.Contains(r.err.Error(), "already used by node n9") {
		t.Fatalf("second use: %v, want refused as used by n9", r.err)
	}
	late := strings.Repeat("cd", 32)
	applyAt(t, f, 4, create(late, 100))
	if r := applyAt(t, f, 5, consume(late, "n9", 101)); !errors.Is(r.err, ErrBadCommand) || !strings.Contains(r.err.Error(), "expired") {
		t.Fatalf("expired token: %v, want refused as expired", r.err)
	}
	if r := applyAt(t, f, 6, consume(strings.Repeat("ef", 32), "n9", 50)); !errors.Is(r.err, ErrBadCommand) || !strings.Contains(r.err.Error(), "unknown join token") {
		t.Fatalf("unknown token: %v", r.err)
	}
	var tok rondav1.StoredJoinToken
	if found, _ := f.getProto(joinTokenKey(id), &tok); !found || tok.UsedByNode != "n9" || tok.UsedUnixNano != 50 {
		t.Fatalf("used token %v", &tok)
	}
}
