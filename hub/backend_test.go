package hub

import (
	"strings"
	"testing"
	"time"

	"github.com/ronda-jakarta/ronda/api"
	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
	"github.com/ronda-jakarta/ronda/replication"
)

func ev(at time.Time, reason string) *rondav1.GapEvent {
	return &rondav1.GapEvent{AtUnixNano: at.UnixNano(), Reason: reason, Detail: reason + " detail"}
}

// A hole in the hub's coverage takes its reasons from the node's gap events:
// the event at (or just before) its start, then each event inside it.
func TestExplainGapUsesTheNodesEvents(t *testing.T) {
	a := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	b := a.Add(20 * time.Second)
	events := []*rondav1.GapEvent{ev(a.Add(-time.Minute), "disk_full"), ev(a.Add(-2*time.Second), "camera_offline"), ev(a.Add(10*time.Second), "network"), ev(b.Add(time.Second), "node_down")}
	got := explainGap(nil, a, b, events)
	if len(got) != 2 || got[0].Reason != "camera_offline" || !got[0].End.Equal(a.Add(10*time.Second)) ||
		got[1].Reason != "network" || !got[1].End.Equal(b) || got[1].Detail != "network detail" {
		t.Fatalf("gaps %+v", got)
	}
	if got := explainGap(nil, a, b, nil); len(got) != 1 || got[0].Reason != "not_recorded" || got[0].Detail == "" {
		t.Fatalf("unexplained gap %+v", got)
	}
	// Same reason twice in a row is one gap.
	if got := explainGap(nil, a, b, []*rondav1.GapEvent{ev(a, "network"), ev(a.Add(5*time.Second), "network")}); len(got) != 1 {
		t.Fatalf("gaps %+v", got)
	}
}

// A node's status at the hub: offline since its last tunnel closed,
// degraded while its link flaps or it is far behind, else online; with how
// many records it still has to deliver.
func TestNodeStatus(t *testing.T) {
	down := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	n := api.Node{AckedSeq: 100}
	nodeStatus(&n, replication.LinkStatus{DownSince: down, LastSeq: 140})
	if n.Status != "offline" || n.OfflineSince == nil || !n.OfflineSince.Equal(down) || n.Behind != 40 || n.StatusDetail == "" {
		t.Fatalf("offline node: %+v", n)
	}
	n = api.Node{AckedSeq: 100}
	nodeStatus(&n, replication.LinkStatus{Connected: true, LastSeq: 100, Reconnects: replication.FlapOpens})
	if n.Status != "degraded" || n.Behind != 0 || n.OfflineSince != nil {
		t.Fatalf("flapping node: %+v", n)
	}
	n = api.Node{AckedSeq: 100}
	nodeStatus(&n, replication.LinkStatus{Connected: true, LastSeq: 100 + DegradedBehind + 1, Reconnects: 1})
	if n.Status != "degraded" || n.Behind != DegradedBehind+1 {
		t.Fatalf("node far behind: %+v", n)
	}
	n = api.Node{AckedSeq: 100}
	nodeStatus(&n, replication.LinkStatus{Connected: true, LastSeq: 105, Reconnects: 1})
	if n.Status != "online" || n.Behind != 5 {
		t.Fatalf("online node: %+v", n)
	}
	// Disk: 1 GiB free above a 1 GiB reserve at 10 MiB/s is 0.001 days.
	n = api.Node{AckedSeq: 100}
	nodeStatus(&n, replication.LinkStatus{Connected: true, LastSeq: 100,
		Storage: &rondav1.StorageStatus{FreeBytes: 2 << 30, ReserveBytes: 1 << 30, WriteBytesPerSecond: 10 << 20}})
	if n.Status != "degraded" || n.Storage == nil || n.Storage.DaysUntilFull == nil || *n.Storage.DaysUntilFull > 0.01 ||
		!strings.Contains(n.StatusDetail, "disk nearly full") {
		t.Fatalf("node with a nearly full disk: %+v %+v", n, n.Storage)
	}
	n = api.Node{AckedSeq: 100}
	nodeStatus(&n, replication.LinkStatus{Connected: true, LastSeq: 100,
		Storage: &rondav1.StorageStatus{FreeBytes: 500 << 30, ReserveBytes: 1 << 30, WriteBytesPerSecond: 1 << 20}})
	if n.Status != "online" || n.Storage.DaysUntilFull == nil || *n.Storage.DaysUntilFull < 5 {
		t.Fatalf("node with room: %+v %+v", n, n.Storage)
	}
}
