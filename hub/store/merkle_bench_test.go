package store

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/internal/auditlog"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// BenchmarkAuditLog: the hub's audit events through the FSM (each stored,
// chained and appended to the Merkle log; 500 per command, as the members'
// batches), a checkpoint every 10,000, then proofs served and the whole log
// verified as `ronda audit verify` does. go test ./hub/store -run '^$'
// -bench BenchmarkAuditLog -benchtime 1x
func BenchmarkAuditLog(b *testing.B) {
	b.Run("baseline: events stored and chained, no Merkle log", func(b *testing.B) {
		merkleLog = false
		defer func() { merkleLog = true }()
		for range b.N {
			f, err := openFSM(filepath.Join(b.TempDir(), "fsm"), testLogger())
			if err != nil {
				b.Fatal(err)
			}
			var applyTime time.Duration
			for i, idx := 0, uint64(1); i < auditBenchEvents; i, idx = i+MaxHubAuditBatch, idx+1 {
				cmd := auditBenchCommand(i)
				t0 := time.Now()
				if r := applyAt(b, f, idx, cmd); r.err != nil {
					b.Fatal(r.err)
				}
				applyTime += time.Since(t0)
			}
			b.ReportMetric(float64(auditBenchEvents)/applyTime.Seconds(), "events/s")
			b.Logf("baseline: %d audit events applied without the Merkle log: %.0f events/s in FSM apply, %s per 500-event command",
				auditBenchEvents, float64(auditBenchEvents)/applyTime.Seconds(), (applyTime / (auditBenchEvents / MaxHubAuditBatch)).Round(time.Microsecond))
			f.close()
		}
	})
	b.Run("Merkle log", benchmarkAuditMerkle)
}

const auditBenchEvents = 100_000

func auditBenchCommand(i int) []byte {
	evs := make([]*rondav1.AuditEvent, 0, MaxHubAuditBatch)
	for j := 0; j < MaxHubAuditBatch; j++ {
		evs = append(evs, &rondav1.AuditEvent{AtUnixNano: int64(i + j), User: "operator-17", Action: "playback",
			CameraId: fmt.Sprintf("3171011001-cam%d", j%110), FromUnixNano: 1, ToUnixNano: 2, Remote: "10.1.2.3:5555", Outcome: "ok"})
	}
	cmd, _ := EncodeCommand(CommandHubAudit, &rondav1.HubAuditCommand{Member: "h1", Events: evs})
	return cmd
}

func benchmarkAuditMerkle(b *testing.B) {
	const events = auditBenchEvents
	for range b.N {
		f, err := openFSM(filepath.Join(b.TempDir(), "fsm"), testLogger())
		if err != nil {
			b.Fatal(err)
		}
		s := &Store{fsm: f, log: testLogger()}
		key := auth.DeriveSigningKey([]byte(strings.Repeat("s", 32)))
		idx := uint64(0)
		start := time.Now()
		var applyTime time.Duration
		for i := 0; i < events; i += MaxHubAuditBatch {
			cmd := auditBenchCommand(i)
			idx++
			t0 := time.Now()
			if r := applyAt(b, f, idx, cmd); r.err != nil {
				b.Fatal(r.err)
			}
			applyTime += time.Since(t0)
			if (i+MaxHubAuditBatch)%10_000 == 0 {
				idx++
				checkpoint(b, f, s, key, idx)
			}
		}
		ingest := time.Since(start)
		t0 := time.Now()
		const proofs = 1000
		for i := uint64(0); i < proofs; i++ {
			if _, err := s.AuditProof(i*97%events, events, false); err != nil {
				b.Fatal(err)
			}
		}
		proofTime := time.Since(t0) / proofs
		t0 = time.Now()
		rep, err := auditlog.Verify(context.Background(), storeSource{s}, key.Public().(ed25519.PublicKey), nil)
		if err != nil || !rep.OK() || rep.Leaves != events {
			b.Fatalf("verify: %v %+v", err, rep.Findings)
		}
		verify := time.Since(t0)
		b.ReportMetric(float64(events)/applyTime.Seconds(), "events/s")
		b.ReportMetric(float64(proofTime.Microseconds()), "µs/proof")
		b.ReportMetric(verify.Seconds(), "s/verify")
		b.Logf("%d audit events applied in %s (%.0f events/s in FSM apply, %s per 500-event command); inclusion proof %s; full verification of %d leaves, %d checkpoints, %d inclusion + %d consistency proofs: %s",
			events, ingest.Round(time.Millisecond), float64(events)/applyTime.Seconds(), (applyTime / (events / MaxHubAuditBatch)).Round(time.Microsecond),
			proofTime, rep.Leaves, rep.Checkpoints, rep.Inclusion, rep.Consistency, verify.Round(time.Millisecond))
		f.close()
	}
}
