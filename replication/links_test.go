package replication

import (
	"slices"
	"testing"
	"time"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// The leader's book merges every member's links into one status per node,
// and forgets a member that stopped reporting.
func TestLinkBookMergesMembersAndForgetsSilentOnes(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	b := NewLinkBook(func() time.Time { return now })
	ns := func(d time.Duration) int64 { return now.Add(d).UnixNano() }
	b.Put("h1", &rondav1.LinksReport{MemberId: "h1", Links: []*rondav1.LinkState{
		{NodeId: "n1", Connected: false, DownSinceUnixNano: ns(-time.Minute), LastSeq: 10, Reconnects: 1},
		{NodeId: "n2", Connected: false, DownSinceUnixNano: ns(-2 * time.Minute), LastSeenUnixNano: ns(-2 * time.Minute)},
	}})
	v := b.Put("h1", &rondav1.LinksReport{MemberId: "h2", Links: []*rondav1.LinkState{
		{NodeId: "n1", Connected: true, SinceUnixNano: ns(-30 * time.Second), LastSeq: 12, Reconnects: 3},
		{NodeId: "n2", Connected: false, DownSinceUnixNano: ns(-time.Minute), LastSeenUnixNano: ns(-time.Minute)},
	}})
	n1 := MergeLinks(v, "n1")
	if !n1.Connected || !slices.Equal(n1.Members, []string{"h2"}) || n1.LastSeq != 12 || n1.Reconnects != 3 || !n1.Since.Equal(now.Add(-30*time.Second)) {
		t.Fatalf("n1 merged: %+v", n1)
	}
	n2 := MergeLinks(v, "n2")
	if n2.Connected || len(n2.Members) != 0 || !n2.DownSince.Equal(now.Add(-time.Minute)) || !n2.LastSeen.Equal(now.Add(-time.Minute)) {
		t.Fatalf("n2 merged: %+v (want down since the last member lost it)", n2)
	}
	// h2 stops reporting (down, or cut off from the leader): after
	// ReportFresh its links no longer count.
	now = now.Add(ReportFresh + time.Second)
	v = b.Put("h1", &rondav1.LinksReport{MemberId: "h1"})
	if len(v.Members) != 1 || MergeLinks(v, "n1").Connected {
		t.Fatalf("view after h2 went silent: %v", v)
	}
}

// The merged view carries the node's storage as it last told any member.
func TestMergeLinksTakesTheFreshestStorage(t *testing.T) {
	v := &rondav1.LinksView{Members: []*rondav1.LinksReport{
		{MemberId: "h1", Links: []*rondav1.LinkState{{NodeId: "n1", Connected: true, Storage: &rondav1.StorageStatus{FreeBytes: 100, AtUnixNano: 10}}}},
		{MemberId: "h2", Links: []*rondav1.LinkState{{NodeId: "n1", Connected: true, Storage: &rondav1.StorageStatus{FreeBytes: 90, AtUnixNano: 20}}}},
		{MemberId: "h3", Links: []*rondav1.LinkState{{NodeId: "n1"}}},
	}}
	if st := MergeLinks(v, "n1").Storage; st.GetFreeBytes() != 90 {
		t.Fatalf("merged storage %+v, want the newest report (90 bytes free)", st)
	}
}
