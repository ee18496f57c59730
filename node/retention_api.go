package node

import (
	"context"
	"time"

	"github.com/ronda-jakarta/ronda/api"
)

// RunRetention deletes unheld footage older than olderThan at once
// (api.RetentionRunner): held footage always stays.
func (b *backend) RunRetention(ctx context.Context, olderThan time.Duration) (api.RetentionResult, error) {
	deleted, kept, err := b.n.store.PurgeOlderThan(olderThan)
	return api.RetentionResult{OlderThan: olderThan.String(), Horizon: time.Now().Add(-olderThan).UTC(), Deleted: deleted, HeldKept: kept}, err
}
