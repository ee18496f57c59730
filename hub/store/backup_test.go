package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ronda-jakarta/ronda/hub/store"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// A backup taken online from a follower of a live cluster, restored into
// three empty members, gives a cluster whose catalog equals the original's;
// the new cluster elects a leader, takes new writes (indexes go on after
// the backup's), and a node's retried push is still applied once.
func TestBackupRestoreIntoNewCluster(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	lead := c.leader(converge)
	ctx, cancel := context.WithTimeout(t.Context(), converge)
	defer cancel()
	recs := []*rondav1.Record{registration(1), inventory(2)}
	for i := range 40 {
		recs = append(recs, spanAt(uint64(3+i), i))
	}
	if _, err := lead.st.ApplyNodeRecords(ctx, node, recs); err != nil {
		t.Fatal(err)
	}
	c.converged(converge, wantAcked(42, 40))
	// Compact the log on one member so the backup is not just "the log".
	if err := lead.st.Snapshot(); err != nil {
		t.Fatal(err)
	}

	src := c.followers(lead)[0]
	if _, err := src.st.ReadBarrier(ctx, store.Linearizable); err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	info, err := src.st.Backup(&backup)
	if err != nil {
		t.Fatalf("backup from %s: %v", src.id, err)
	}
	if info.AppliedIndex != src.st.Cluster().AppliedIndex || info.Bytes != int64(backup.Len()) || info.Bytes == 0 {
		t.Fatalf("backup info %+v, member applied %d, %d bytes written", info, src.st.Cluster().AppliedIndex, backup.Len())
	}
	want := state(src.st)

	// A damaged backup is refused and leaves the data dir empty.
	bad := bytes.Clone(backup.Bytes())
	bad[len(bad)/2] ^= 0xff
	badDir := t.TempDir()
	_, err = store.RestoreBackup(store.Config{ID: "x", RaftAddr: "127.0.0.1:1", DataDir: badDir, Peers: []store.Peer{{ID: "x", RaftAddr: "127.0.0.1:1"}}}, bytes.NewReader(bad), logger())
	if err == nil {
		t.Fatal("a corrupted backup was restored")
	}
	if ents, _ := os.ReadDir(badDir); len(ents) != 0 {
		names := []string{}
		for _, e := range ents {
			names = append(names, e.Name())
		}
		// The raft snapshot store makes its snapshots/ dir; nothing else may remain.
		if len(names) != 1 || names[0] != "snapshots" {
			t.Fatalf("a refused restore left %v in the data dir", names)
		}
		if sn, _ := os.ReadDir(filepath.Join(badDir, "snapshots")); len(sn) != 0 {
			t.Fatalf("a refused restore left a raft snapshot: %v", sn)
		}
	}

	restored := newClusterPrepared(t, 3, nil, nil, func(cfg store.Config) {
		ri, err := store.RestoreBackup(cfg, bytes.NewReader(backup.Bytes()), logger())
		if err != nil {
			t.Fatalf("restore into %s: %v", cfg.ID, err)
		}
		if ri.AppliedIndex != info.AppliedIndex || ri.Members != 3 {
			t.Fatalf("restore info %+v, backup at %d", ri, info.AppliedIndex)
		}
		// A second restore into the same dir is refused.
		if _, err := store.RestoreBackup(cfg, bytes.NewReader(backup.Bytes()), logger()); !errors.Is(err, store.ErrNotEmpty) {
			t.Fatalf("restore into a member with state: %v, want ErrNotEmpty", err)
		}
	})
	newLead := restored.leader(converge)
	for _, m := range restored.running() {
		if got := state(m.st); !bytes.Equal(got, want) {
			t.Fatalf("restored member %s's catalog differs from the backup's source", m.id)
		}
		if len(m.st.Cluster().Members) != 3 {
			t.Fatalf("restored member %s sees members %+v", m.id, m.st.Cluster().Members)
		}
	}

	// New writes continue; the node's already-applied records are skipped.
	f := restored.followers(newLead)[0]
	wctx, wcancel := context.WithTimeout(t.Context(), converge)
	defer wcancel()
	acked, err := f.st.ApplyNodeRecords(wctx, node, append(recs[len(recs)-2:], spanAt(43, 40)))
	if err != nil || acked != 43 {
		t.Fatalf("write to the restored cluster: acked %d, err %v", acked, err)
	}
	if got := f.st.Cluster().AppliedIndex; got <= info.AppliedIndex {
		t.Fatalf("restored cluster applied index %d, not past the backup's %d", got, info.AppliedIndex)
	}
	restored.converged(converge, wantAcked(43, 41))

	// And a restored member restarts from its own state.
	restored.stop(f)
	restored.start(f, nil)
	restored.converged(converge, wantAcked(43, 41))
}
