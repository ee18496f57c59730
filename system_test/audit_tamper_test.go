//go:build e2e

package system_test

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// auditVerify runs `ronda audit verify` against one demo member.
func auditVerify(t *testing.T, f *federation, member, state string) (string, error) {
	args := []string{"audit", "verify", "--demo", f.dir, "--member", member}
	if state != "" {
		args = append(args, "--state", state)
	}
	out, err := exec.Command(binary(t, repoRoot(t)), args...).CombinedOutput()
	return string(out), err
}

// checkAuditTamper: one audit record edited and another deleted in a
// stopped member's store; `ronda audit verify` names both at that member,
// and the others still verify.
func checkAuditTamper(t *testing.T, f *federation, outer *testing.T) {
	state := filepath.Join(t.TempDir(), "audit-state.json")
	hub := liveHub(t, f)
	cl, err := hub.Cluster(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	leader, _ := cl["leader"].(string)
	var victim, witness string
	for _, h := range f.m.Hubs {
		if h.Name != leader && victim == "" {
			victim = h.Name
		} else if witness == "" {
			witness = h.Name
		}
	}
	// A clean log first, with at least one signed checkpoint (the leader
	// signs one every 10 s while the log grows); the key and checkpoint are
	// pinned in the state file.
	var out string
	poll(t, 60*time.Second, "a clean verification with a checkpoint at "+witness, func() error {
		out, err = auditVerify(t, f, witness, state)
		if err != nil || strings.Contains(out, "0 signed checkpoints") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	t.Logf("before: %s", strings.TrimSpace(out))
	poll(t, 30*time.Second, "a clean verification at "+victim, func() error {
		out, err = auditVerify(t, f, victim, state)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})

	// Stop the member (SIGTERM: a clean close of its store).
	pid := findHub(t, f, victim).PID
	if cmd := restartedHubs[victim]; cmd != nil {
		pid = cmd.Process.Pid
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if cmd := restartedHubs[victim]; cmd != nil {
		_ = cmd.Wait()
	}
	poll(t, 30*time.Second, victim+" stopped", func() error {
		if syscall.Kill(pid, 0) == nil {
			return errors.New("still running")
		}
		return nil
	})

	// Edit one record — a refused access becomes "ok" — and delete another.
	db, err := pebble.Open(filepath.Join(f.dir, victim, "data", "fsm"), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var edited, deleted string
	it, _ := db.NewIter(&pebble.IterOptions{LowerBound: []byte("u/"), UpperBound: []byte("u0")})
	var editKey, delKey []byte
	var ev *rondav1.StoredAuditEvent
	for ok := it.First(); ok; ok = it.Next() {
		e := new(rondav1.StoredAuditEvent)
		if proto.Unmarshal(it.Value(), e) != nil {
			continue
		}
		denied := strings.HasPrefix(e.GetEvent().GetOutcome(), "denied")
		switch {
		case editKey == nil && denied && e.GetNodeId() != "hub":
			editKey, ev = bytes.Clone(it.Key()), e
			edited = fmt.Sprintf("(%s audit event #%d)", e.GetNodeId(), e.GetEvent().GetAuditSeq())
		case delKey == nil && denied && e.GetNodeId() == "hub":
			delKey = bytes.Clone(it.Key())
			deleted = fmt.Sprintf("(hub audit event #%d)", e.GetEvent().GetAuditSeq())
		}
	}
	it.Close()
	if editKey == nil || delKey == nil {
		db.Close()
		t.Fatalf("no refused access to edit (%q) or delete (%q) in %s's store", editKey, delKey, victim)
	}
	t.Logf("in %s's store: %s %s %q %s -> outcome \"ok\"; deleting %s (key %x)", victim, edited, ev.GetEvent().GetUser(), ev.GetEvent().GetCameraId(),
		ev.GetEvent().GetOutcome(), deleted, delKey[len(delKey)-8:])
	ev.Event.Outcome = "ok"
	v, _ := proto.MarshalOptions{Deterministic: true}.Marshal(ev)
	if err := db.Set(editKey, v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(delKey, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	restartedHubs[victim] = restartProcess(t, outer, f, victim, "hub", "--config", filepath.Join(f.dir, victim, "hub.yaml"))
	poll(t, 60*time.Second, "ronda audit verify names both at "+victim, func() error {
		out, err = auditVerify(t, f, victim, state)
		if err == nil {
			return fmt.Errorf("verification passed: %s", out)
		}
		if !strings.Contains(out, edited+": the record was rewritten") || !strings.Contains(out, deleted+": the audit record is missing") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	t.Logf("at %s:\n%s", victim, out)
	out, err = auditVerify(t, f, witness, state)
	if err != nil {
		t.Fatalf("the untouched member %s no longer verifies: %v\n%s", witness, err, out)
	}
	t.Logf("at %s: %s", witness, strings.TrimSpace(out))
}
