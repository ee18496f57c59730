//go:build e2e

package system_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	"github.com/ronda-jakarta/ronda/demo"
)

func hubNode(t *testing.T, c *demo.Client, id string) (api.Node, error) {
	nodes, err := c.Nodes(ctx(t))
	if err != nil {
		return api.Node{}, err
	}
	for _, n := range nodes {
		if n.NodeID == id {
			return n, nil
		}
	}
	return api.Node{}, fmt.Errorf("node %s not listed", id)
}

func outbox(t *testing.T, c *demo.Client) (last, acked uint64, err error) {
	cl, err := c.Cluster(ctx(t))
	if err != nil {
		return 0, 0, err
	}
	ob, _ := cl["outbox"].(map[string]any)
	l, _ := ob["last_seq"].(float64)
	a, _ := ob["acked_seq"].(float64)
	return uint64(l), uint64(a), nil
}

// checkPartition cuts one node off the hub (every link blackholed, like a
// cut cable) for outage, checks the node keeps serving its own staff and
// the hub shows it offline, heals the link, and checks the hub then holds
// exactly what the node recorded: every record committed once (acked seq =
// the node's last seq), the same coverage with no gap in the outage, and
// the same segment manifests.
func checkPartition(t *testing.T, f *federation, outage time.Duration) {
	m := f.m
	n := m.Nodes[0]
	nc := f.client(t, n.URL)
	hub := liveHub(t, f)
	cams, err := nc.Cameras(ctx(t))
	if err != nil || len(cams) == 0 {
		t.Fatalf("node cameras: %v %v", cams, err)
	}
	before, _, err := outbox(t, nc)
	if err != nil {
		t.Fatal(err)
	}

	cut := time.Now()
	if _, err := demo.SetLink(context.Background(), f.dir, n.NodeID, "down", 0); err != nil {
		t.Fatal(err)
	}
	healed := false
	defer func() {
		if !healed {
			demo.SetLink(context.Background(), f.dir, n.NodeID, "up", 0)
		}
	}()
	took := poll(t, 30*time.Second, n.NodeID+" shown offline at the hub", func() error {
		hn, err := hubNode(t, hub, n.NodeID)
		if err != nil {
			return err
		}
		if hn.Online {
			return fmt.Errorf("still online")
		}
		return nil
	})
	t.Logf("%s cut off; the hub shows it offline after %.1f s", n.NodeID, time.Since(cut).Seconds())
	_ = took

	// The node's own staff: a fresh login, live view and recorded footage.
	local := f.client(t, n.URL)
	checkWhep(t, local, cams[0].ID)
	checkMedia(t, local, cams[len(cams)-1].ID)
	if rest := outage - time.Since(cut); rest > 0 {
		time.Sleep(rest)
	}
	// Still cut off: the hub has not seen anything recorded after the cut.
	for _, c := range cams {
		rec, err := hub.Recordings(ctx(t), c.ID, cut.Add(5*time.Second), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if rec.RecordedSeconds > 0 {
			t.Fatalf("the hub got %.1f s of %s's footage while the node was cut off", rec.RecordedSeconds, c.ID)
		}
	}
	last, acked, err := outbox(t, nc)
	if err != nil || last <= before || acked >= last {
		t.Fatalf("node outbox during the outage: last %d (before %d), acked %d, %v; want records waiting", last, before, acked, err)
	}
	t.Logf("after %.0f s cut off, %d records wait in %s's outbox", time.Since(cut).Seconds(), last-acked, n.NodeID)

	healAt := time.Now()
	if _, err := demo.SetLink(context.Background(), f.dir, n.NodeID, "up", 0); err != nil {
		t.Fatal(err)
	}
	healed = true
	poll(t, 60*time.Second, n.NodeID+" back and drained", func() error {
		hn, err := hubNode(t, hub, n.NodeID)
		if err != nil {
			return err
		}
		last, acked, err := outbox(t, nc)
		if err != nil {
			return err
		}
		if !hn.Online || acked < last || hn.AckedSeq < last {
			return fmt.Errorf("online %v, node outbox last %d acked %d, hub acked %d", hn.Online, last, acked, hn.AckedSeq)
		}
		return nil
	})
	t.Logf("%s back online and its backlog committed %.1f s after healing", n.NodeID, time.Since(healAt).Seconds())

	// Hub equals node over the outage: same recorded seconds, no gap the
	// node does not have, same segment manifests.
	from, to := cut.Add(-10*time.Second), healAt.Add(-2*time.Second)
	for _, c := range cams {
		poll(t, 20*time.Second, "the hub's coverage of "+c.ID+" equals the node's", func() error {
			atNode, err := nc.Recordings(ctx(t), c.ID, from, to)
			if err != nil {
				return err
			}
			atHub, err := hub.Recordings(ctx(t), c.ID, from, to)
			if err != nil {
				return err
			}
			if d := atNode.RecordedSeconds - atHub.RecordedSeconds; d > 1 || d < -1 {
				return fmt.Errorf("recorded %.1f s at the node, %.1f s at the hub", atNode.RecordedSeconds, atHub.RecordedSeconds)
			}
			if len(atHub.Gaps) > len(atNode.Gaps) {
				return fmt.Errorf("gaps at the hub %+v, at the node %+v", atHub.Gaps, atNode.Gaps)
			}
			day := from.UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
			mn, err := nc.Recordings(ctx(t), c.ID, day, time.Now())
			if err != nil {
				return err
			}
			mh, err := hub.Recordings(ctx(t), c.ID, day, time.Now())
			if err != nil {
				return err
			}
			if !slices.Equal(mn.Manifests, mh.Manifests) {
				return fmt.Errorf("manifests: node %+v, hub %+v", mn.Manifests, mh.Manifests)
			}
			return nil
		})
	}
	if a, _ := nc.Recordings(ctx(t), cams[0].ID, from, to); a.RecordedSeconds < to.Sub(from).Seconds()-3 {
		t.Fatalf("the node itself recorded only %.1f s of the %.0f s window: it did not keep recording through the outage", a.RecordedSeconds, to.Sub(from).Seconds())
	}
}

// liveHub returns a client of a hub member that answers (the leader-kill
// test leaves one member down).
func liveHub(t *testing.T, f *federation) *demo.Client {
	t.Helper()
	for _, h := range f.m.Hubs {
		c, err := demo.NewClient(h.URL, f.m.CAFile)
		if err != nil {
			continue
		}
		lctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = c.Login(lctx, f.m.Users[0].User, f.m.Users[0].Password)
		cancel()
		if err == nil {
			return c
		}
	}
	t.Fatal("no hub member answers")
	return nil
}
