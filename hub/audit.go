package hub

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/auth"
	"github.com/ronda-jakarta/ronda/hub/store"
	"github.com/ronda-jakarta/ronda/internal/auditchain"
	"github.com/ronda-jakarta/ronda/internal/auditlog"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// auditQueue bounds the hub's own audit events waiting for a commit.
const auditQueue = 10000

// hubAuditor commits the member's API audit events through Raft, in
// batches of up to 100 ms; while there is no leader it retries the batch
// and new events wait in a bounded queue. An event that does not fit is
// kept in the process log, with everything it says.
type hubAuditor struct {
	h    *Hub
	ch   chan *rondav1.AuditEvent
	stop chan struct{}
	done chan struct{}
}

func newHubAuditor(h *Hub) *hubAuditor {
	return &hubAuditor{h: h, ch: make(chan *rondav1.AuditEvent, auditQueue), stop: make(chan struct{}), done: make(chan struct{})}
}

func (a *hubAuditor) add(e api.AuditEvent) {
	select {
	case a.ch <- auditchain.Event(e):
	default:
		a.h.log.Error("audit queue full (no hub leader for a long time?); the event is only in this log",
			"user", e.User, "action", e.Action, "camera", e.CameraID, "from", e.From, "to", e.To, "remote", e.Remote, "reason", e.Reason, "outcome", e.Outcome)
	}
}

func (a *hubAuditor) run() {
	defer close(a.done)
	var batch []*rondav1.AuditEvent
	for {
		if len(batch) == 0 {
			select {
			case e := <-a.ch:
				batch = append(batch, e)
			case <-a.stop:
				return
			}
		}
		linger := time.NewTimer(100 * time.Millisecond)
	collect:
		for len(batch) < store.MaxHubAuditBatch {
			select {
			case e := <-a.ch:
				batch = append(batch, e)
			case <-linger.C:
				break collect
			case <-a.stop:
				break collect
			}
		}
		linger.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := a.h.store.AddHubAudit(ctx, a.h.cfg.MemberID, batch)
		cancel()
		if err == nil {
			batch = batch[:0]
			continue
		}
		a.h.log.Warn("committing the hub's audit events failed; retrying", "events", len(batch), "err", err)
		select {
		case <-time.After(time.Second):
		case <-a.stop:
			for _, e := range batch {
				a.h.log.Error("audit event not committed at shutdown; it is only in this log", "user", e.GetUser(), "action", e.GetAction(),
					"camera", e.GetCameraId(), "remote", e.GetRemote(), "reason", e.GetReason(), "outcome", e.GetOutcome())
			}
			return
		}
	}
}

// close commits what is queued (up to a few seconds), then stops.
func (a *hubAuditor) close() {
	deadline := time.Now().Add(3 * time.Second)
	for len(a.ch) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	close(a.stop)
	<-a.done
}

// checkpointEvery is how often the leader signs a checkpoint of the audit
// log while it grows.
const checkpointEvery = 10 * time.Second

// checkpoints runs on every member; the leader signs (size, root) of the
// audit Merkle log with the hub key and commits it, whenever the log grew.
func (h *Hub) checkpoints() {
	defer close(h.cpDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var last uint64
	wasLeader := false
	for {
		select {
		case <-h.stopBeat:
			return
		case <-t.C:
		}
		if !h.store.IsLeader() {
			wasLeader = false
			continue
		}
		if !wasLeader {
			last = 0
			if cps := h.store.AuditCheckpoints(); len(cps) > 0 {
				last = cps[len(cps)-1].GetSize()
			}
			wasLeader = true
		}
		size, root, err := h.store.AuditLogHead()
		if err != nil || size <= last {
			continue
		}
		cp := &rondav1.AuditCheckpoint{Size: size, Root: root, AtUnixNano: time.Now().UnixNano(), Member: h.cfg.MemberID}
		cp.Signature = auth.Sign(h.lists.key, auditlog.SignPurpose, auditchain.CheckpointText(size, root, cp.AtUnixNano))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = h.store.ProposeCheckpoint(ctx, cp)
		cancel()
		if err != nil {
			h.log.Warn("committing an audit log checkpoint failed; retrying", "size", size, "err", err)
			continue
		}
		last = size
	}
}

// AuditCheckpoints implements api.AuditProver.
func (b *backend) AuditCheckpoints(ctx context.Context) (api.AuditCheckpoints, error) {
	size, root, err := b.h.store.AuditLogHead()
	if err != nil {
		return api.AuditCheckpoints{}, err
	}
	out := api.AuditCheckpoints{PublicKey: b.h.lists.pub, Size: size, Root: root, Member: b.h.cfg.MemberID}
	for _, c := range b.h.store.AuditCheckpoints() {
		out.Checkpoints = append(out.Checkpoints, api.AuditCheckpoint{Size: c.GetSize(), Root: c.GetRoot(), At: c.GetAtUnixNano(), Member: c.GetMember(), Signature: c.GetSignature()})
	}
	return out, nil
}

// AuditLeaves implements api.AuditProver.
func (b *backend) AuditLeaves(ctx context.Context, start uint64, count int) ([]api.AuditLeaf, error) {
	lrs, err := b.h.store.AuditLeaves(start, count)
	if err != nil {
		return nil, err
	}
	out := make([]api.AuditLeaf, 0, len(lrs))
	for _, lr := range lrs {
		l := api.AuditLeaf{Index: lr.Index, NodeID: lr.Leaf.GetNodeId(), Seq: lr.Leaf.GetAuditSeq(), LeafHash: lr.Leaf.GetLeafHash()}
		if lr.Event != nil {
			r := auditchain.Record(lr.Event.GetNodeId(), lr.Event.GetEvent())
			r.ChainError = lr.Event.GetChainError()
			committed := time.Unix(0, lr.Event.GetCommittedUnixNano()).UTC()
			r.Committed = &committed
			l.Record = &r
		}
		out = append(out, l)
	}
	return out, nil
}

// AuditProof implements api.AuditProver.
func (b *backend) AuditProof(ctx context.Context, index, size uint64, consistency bool) ([][]byte, error) {
	p, err := b.h.store.AuditProof(index, size, consistency)
	return p, storeErr(err)
}

// ExportProof implements api.ExportProver.
func (b *backend) ExportProof(ctx context.Context, nodeID, exportID string) (api.ExportProof, error) {
	ev, index, err := b.h.store.ExportEvent(nodeID, exportID)
	if err != nil {
		return api.ExportProof{}, storeErr(err)
	}
	cps := b.h.store.AuditCheckpoints()
	if len(cps) == 0 || cps[len(cps)-1].GetSize() <= index {
		return api.ExportProof{}, fmt.Errorf("%w: the export's audit event is leaf %d of the audit log, and no signed checkpoint covers it yet; try again in %s",
			api.ErrUnavailable, index, checkpointEvery)
	}
	cp := cps[len(cps)-1]
	incl, err := b.h.store.AuditProof(index, cp.GetSize(), false)
	if err != nil {
		return api.ExportProof{}, storeErr(err)
	}
	return api.ExportProof{Version: 1, NodeID: nodeID, ExportID: exportID, Record: auditchain.Record(nodeID, ev.GetEvent()), LeafIndex: index,
		Checkpoint: api.AuditCheckpoint{Size: cp.GetSize(), Root: cp.GetRoot(), At: cp.GetAtUnixNano(), Member: cp.GetMember(), Signature: cp.GetSignature()},
		Inclusion:  incl, PublicKey: b.h.lists.pub}, nil
}

// memberSource serves this member's audit log to the verifier in process,
// as the API serves it (GET /api/v1/audit/checkpoints, leaves, proofs).
type memberSource struct{ b *backend }

func (src memberSource) Checkpoints(ctx context.Context) ([]auditlog.Checkpoint, error) {
	cps, err := src.b.AuditCheckpoints(ctx)
	return cps.Checkpoints, err
}

func (src memberSource) Leaves(ctx context.Context, start uint64, count int) ([]auditlog.Leaf, error) {
	return src.b.AuditLeaves(ctx, start, count)
}

func (src memberSource) Proof(ctx context.Context, index, size uint64, consistency bool) ([][]byte, error) {
	return src.b.AuditProof(ctx, index, size, consistency)
}

// AuditVerification is a hub member's answer of GET /api/v1/audit/verify:
// the verifier's report (auditlog.Report) over this member's own store.
type AuditVerification struct {
	OK     bool   `json:"ok"`
	Member string `json:"member"`
	auditlog.Report
	HubKey  string    `json:"hub_key"` // its fingerprint (auditlog.KeyFingerprint)
	TookMS  int64     `json:"took_ms"`
	Checked time.Time `json:"checked"`
}

// VerifyAudit runs the audit log verifier (`ronda audit verify`) over this
// member's own store with the hub's public key (api.AuditVerifier).
func (b *backend) VerifyAudit(ctx context.Context) (any, error) {
	start := time.Now()
	rep, err := auditlog.Verify(ctx, memberSource{b}, ed25519.PublicKey(b.h.lists.pub), nil)
	if err != nil {
		return nil, fmt.Errorf("verifying the audit log of member %s: %w", b.h.cfg.MemberID, err)
	}
	if rep.Findings == nil {
		rep.Findings = []auditlog.Finding{}
	}
	return AuditVerification{OK: rep.OK(), Member: b.h.cfg.MemberID, Report: rep, HubKey: auditlog.KeyFingerprint(b.h.lists.pub),
		TookMS: time.Since(start).Milliseconds(), Checked: start.UTC()}, nil
}
