package auditchain

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

func chain(n int) []*rondav1.AuditEvent {
	var out []*rondav1.AuditEvent
	prev := Genesis
	for i := 1; i <= n; i++ {
		e := &rondav1.AuditEvent{AuditSeq: uint64(i), AtUnixNano: int64(i) * 1e9, User: "siti", Action: "playback", CameraId: "cam1", Outcome: "ok", PrevSha256: prev}
		prev = Hash(e)
		out = append(out, e)
	}
	return out
}

// A complete chain checks; a missing, replayed or altered event is named.
func TestChainDetectsMissingReplayedAndAlteredEvents(t *testing.T) {
	evs := chain(4)
	var seq uint64
	var head []byte
	for _, e := range evs {
		if why := Check(seq, head, e); why != "" {
			t.Fatalf("event %d of an intact chain: %s", e.AuditSeq, why)
		}
		seq, head = e.AuditSeq, Hash(e)
	}
	// Event 2 lost: event 3 arrives after 1.
	if why := Check(1, Hash(evs[0]), evs[2]); !strings.Contains(why, "events 2..2 are missing") {
		t.Fatalf("missing event: %q", why)
	}
	// Event 2 replayed after 3.
	if why := Check(3, Hash(evs[2]), evs[1]); !strings.Contains(why, "replayed") {
		t.Fatalf("replayed event: %q", why)
	}
	// Event 1's outcome rewritten after the fact: event 2 no longer follows it.
	altered := proto.CloneOf(evs[0])
	altered.Outcome = "denied"
	if why := Check(1, Hash(altered), evs[1]); !strings.Contains(why, "changed") {
		t.Fatalf("altered predecessor: %q", why)
	}
	// Every field is in the hash.
	base := Hash(evs[0])
	for name, mut := range map[string]func(e *rondav1.AuditEvent){
		"user": func(e *rondav1.AuditEvent) { e.User = "x" }, "action": func(e *rondav1.AuditEvent) { e.Action = "x" },
		"camera": func(e *rondav1.AuditEvent) { e.CameraId = "x" }, "remote": func(e *rondav1.AuditEvent) { e.Remote = "x" },
		"reason": func(e *rondav1.AuditEvent) { e.Reason = "x" }, "outcome": func(e *rondav1.AuditEvent) { e.Outcome = "x" },
		"at": func(e *rondav1.AuditEvent) { e.AtUnixNano++ }, "from": func(e *rondav1.AuditEvent) { e.FromUnixNano++ },
		"to": func(e *rondav1.AuditEvent) { e.ToUnixNano++ }, "seq": func(e *rondav1.AuditEvent) { e.AuditSeq++ },
		"prev": func(e *rondav1.AuditEvent) { e.PrevSha256 = Hash(evs[3]) },
		// Length prefixes: moving a byte between adjacent fields changes the hash.
		"boundary": func(e *rondav1.AuditEvent) { e.User, e.Action = "siti"+"p", "layback" },
	} {
		e := proto.CloneOf(evs[0])
		mut(e)
		if string(Hash(e)) == string(base) {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
}
