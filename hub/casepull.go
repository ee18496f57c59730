package hub

// Pulling a case's footage to the hub: the leader hands each wanted item
// to this member's puller (hub/pull: earliest deadline first, capped per
// node, resumable); a verified export and its node-signed manifest go into
// the evidence store (hub/evidence: content-addressed, copied to a second
// member), and the item's progress is committed to Raft at each state
// change and every few seconds while bytes flow.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/hub/pull"
	"github.com/ronda-jakarta/ronda/hub/store"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	rpcv1 "github.com/ronda-jakarta/ronda/proto/ronda/v1/rpc"
)

// pullCommitEvery: how often a running pull's progress is committed.
const pullCommitEvery = 5 * time.Second

type casePuller struct {
	p       *pull.Puller
	mu      sync.Mutex
	leading bool                 // this member submitted jobs as leader
	cases   map[string]bool      // cases with submitted jobs
	commits map[string]time.Time // "case/item" -> last progress commit
	last    map[string]string    // "case/item" -> last committed state
	manif   map[string]string    // "case/item" -> the stored manifest's sha256
	done    chan struct{}        // closed when the puller has stopped
}

// startPuller makes this member's puller (every member has one; only the
// leader's gets work).
func (h *Hub) startPuller(ctx context.Context) error {
	rate := h.cfg.Cases.PullRatePerNode
	if rate == 0 {
		rate = 500_000 // 4 Mbit/s: a kelurahan's uplink stays usable
	}
	cp := &casePuller{cases: map[string]bool{}, commits: map[string]time.Time{}, last: map[string]string{}, manif: map[string]string{}}
	b := &backend{h: h}
	p, err := pull.New(pull.Options{
		Dir:         filepath.Join(h.cfg.DataDir, "pull"),
		RatePerNode: rate,
		Member:      h.cfg.MemberID,
		Logger:      h.log.With("part", "pull"),
		Dial: func(ctx context.Context, nodeID string) (rpcv1.NodeControlClient, error) {
			return b.nodeControl(nodeID)
		},
		Sink:       evidenceSink{h: h, cp: cp},
		OnProgress: func(j pull.Job, p api.PullProgress) { h.pullProgress(j, p) },
	})
	if err != nil {
		return err
	}
	cp.p = p
	cp.done = make(chan struct{})
	h.puller = cp
	go func() {
		defer close(cp.done)
		if err := p.Run(ctx); err != nil {
			h.log.Error("puller stopped", "err", err)
		}
	}()
	return nil
}

// evidenceSink puts a verified export and its manifest into the evidence store.
type evidenceSink struct {
	h  *Hub
	cp *casePuller
}

func (s evidenceSink) Put(ctx context.Context, path, sha string, size int64) error {
	job, meta, ok := pull.ExportOf(ctx)
	if !ok {
		return fmt.Errorf("evidence sink: no export in the context")
	}
	ref := "case/" + job.CaseID + "/" + job.ItemID
	// The node-signed manifest first: the bundle needs both.
	sum := sha256.Sum256(meta.GetManifest())
	msha := hex.EncodeToString(sum[:])
	tmp := path + ".manifest.json"
	if err := os.WriteFile(tmp, meta.GetManifest(), 0o600); err != nil {
		return err
	}
	if err := s.h.StoreEvidence(ctx, tmp, msha, int64(len(meta.GetManifest())), "application/json", ref); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := s.h.StoreEvidence(ctx, path, sha, size, "video/mp4", ref); err != nil {
		return err
	}
	s.cp.mu.Lock()
	s.cp.manif[job.CaseID+"/"+job.ItemID] = msha
	s.cp.mu.Unlock()
	return nil
}

// pullProgress keeps the newest progress for the API and commits it to
// Raft at each state change and every pullCommitEvery.
func (h *Hub) pullProgress(j pull.Job, p api.PullProgress) {
	key := j.CaseID + "/" + j.ItemID
	if p.Updated.IsZero() {
		p.Updated = time.Now()
	}
	rt := h.caseRuntime()
	rt.mu.Lock()
	rt.progress[key] = p
	rt.mu.Unlock()
	cp := h.puller
	cp.mu.Lock()
	due := cp.last[key] != p.State || time.Since(cp.commits[key]) >= pullCommitEvery
	if due {
		cp.last[key], cp.commits[key] = p.State, time.Now()
	}
	msha := cp.manif[key]
	cp.mu.Unlock()
	if !due {
		return
	}
	ps := &rondav1.PullStatus{State: p.State, ExportId: p.ExportID, Bytes: p.Bytes, Total: p.Total, Sha256: p.SHA256, Error: p.Error,
		Attempts: int32(p.Attempts), Member: h.cfg.MemberID, UpdatedUnixNano: p.Updated.UnixNano(), ManifestSha256: msha}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.store.UpdatePull(ctx, j.CaseID, j.ItemID, ps); err != nil {
			h.log.Warn("recording pull progress", "case", j.CaseID, "item", j.ItemID, "state", p.State, "err", err)
			cp.mu.Lock()
			delete(cp.last, key) // try again with the next report
			cp.mu.Unlock()
		}
	}()
}

// pullTick (the leader's case loop) hands wanted items to the puller; a
// member that lost the leadership stops its jobs (the new leader's puller
// takes them over).
func (h *Hub) pullTick(ctx context.Context, now time.Time) {
	cp := h.puller
	if cp == nil {
		return
	}
	for _, sc := range h.store.Cases() {
		if !sc.GetPull() || sc.GetStatus() != store.CaseOpen {
			if cp.cases[sc.GetId()] {
				cp.p.Cancel(sc.GetId())
				delete(cp.cases, sc.GetId())
			}
			continue
		}
		for _, it := range sc.GetItems() {
			if it.GetPull().GetState() == api.PullStored {
				continue
			}
			err := cp.p.Submit(pull.Job{CaseID: sc.GetId(), ItemID: it.GetId(), NodeID: it.GetNodeId(), Camera: it.GetCameraId(),
				From: time.Unix(0, it.GetFromUnixNano()), To: time.Unix(0, it.GetToUnixNano()), Deadline: time.Unix(0, sc.GetDeadlineUnixNano()),
				Reason: "case " + sc.GetId() + ": " + sc.GetReason(), User: sc.GetOwner()})
			if err != nil {
				h.log.Warn("queueing a pull", "case", sc.GetId(), "item", it.GetId(), "err", err)
				continue
			}
			cp.cases[sc.GetId()] = true
		}
	}
	cp.leading = true
}

// pullStepDown cancels this member's jobs when it is no longer the leader.
func (h *Hub) pullStepDown() {
	cp := h.puller
	if cp == nil || !cp.leading {
		return
	}
	for id := range cp.cases {
		cp.p.Cancel(id)
	}
	cp.cases = map[string]bool{}
	cp.leading = false
}
