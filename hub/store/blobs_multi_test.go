package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ronda-jakarta/ronda/hub/store"
)

// Blob holders written through a follower reach every member; the Store
// methods normalise and check what they are given.
func TestClusterBlobHolders(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	lead := c.leader(converge)
	f := c.followers(lead)
	ctx, cancel := context.WithTimeout(t.Context(), converge)
	defer cancel()

	sha := strings.Repeat("0f", 32)
	if err := f[0].st.AddBlobHolder(ctx, strings.ToUpper(sha), 42, "video/mp4", f[0].id, "case/C1/i1"); err != nil {
		t.Fatal(err)
	}
	if err := lead.st.AddBlobHolder(ctx, sha, 42, "", lead.id, ""); err != nil {
		t.Fatal(err)
	}
	want := []string{lead.id, f[0].id}
	slices.Sort(want)
	eventually(t, converge, "blob on every member", func() error {
		for _, m := range c.running() {
			b, err := m.st.Blob(sha)
			if err != nil {
				return err
			}
			if !slices.Equal(b.GetHolders(), want) || b.GetSize() != 42 || b.GetMediaType() != "video/mp4" ||
				!slices.Equal(b.GetRefs(), []string{"case/C1/i1"}) || b.GetCreatedUnixNano() == 0 {
				return fmt.Errorf("%s: %v", m.id, b)
			}
			if all := m.st.Blobs(); len(all) != 1 || all[0].GetSha256() != sha {
				return fmt.Errorf("%s lists %v", m.id, all)
			}
		}
		return nil
	})

	if err := f[1].st.AddBlobHolder(ctx, sha, 43, "", f[1].id, ""); !errors.Is(err, store.ErrBadCommand) {
		t.Fatalf("another size under the same SHA-256: %v, want ErrBadCommand", err)
	}
	if err := f[1].st.AddBlobHolder(ctx, "not-a-sha", 1, "", f[1].id, ""); !errors.Is(err, store.ErrBadCommand) {
		t.Fatalf("bad name: %v", err)
	}
	if err := f[1].st.RemoveBlobHolder(ctx, sha, lead.id); err != nil {
		t.Fatal(err)
	}
	if err := f[1].st.RemoveBlobHolder(ctx, sha, lead.id); err != nil {
		t.Fatalf("removing again: %v", err)
	}
	if b, err := f[1].st.Blob(sha); err != nil || !slices.Equal(b.GetHolders(), []string{f[0].id}) {
		t.Fatalf("after remove: %v %v", b, err)
	}
	if _, err := f[1].st.Blob(strings.Repeat("11", 32)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown blob: %v", err)
	}
}
