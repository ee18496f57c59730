package store

import "errors"

// Sentinel errors. Functions wrap them with %w and add the detail an operator
// needs (member IDs, addresses, indexes), so test with errors.Is.
var (
	// ErrNoLeader means no leader was known (or reachable) before the caller's
	// context expired, typically during an election or a network partition.
	// Retrying later is safe: every command is idempotent.
	ErrNoLeader = errors.New("hub/store: no raft leader")

	// ErrNotLeader means the member asked to commit a command is not (or is no
	// longer) the leader. The outcome of a command interrupted by a leadership
	// change is unknown; retrying is safe because commands are idempotent.
	ErrNotLeader = errors.New("hub/store: this hub member is not the raft leader")

	// ErrLeaderUnreachable is returned by a Forwarder when the leader could not
	// be contacted (connection refused, TLS failure, member shutting down).
	// Store.Apply retries it until its context expires.
	ErrLeaderUnreachable = errors.New("hub/store: raft leader unreachable")

	// ErrUnknownCommand means the command's type byte is not in the dispatch
	// table of this binary (e.g. a newer member proposed it during a rolling upgrade).
	ErrUnknownCommand = errors.New("hub/store: unknown FSM command type")

	// ErrBadCommand means the command could not be decoded or failed validation.
	ErrBadCommand = errors.New("hub/store: malformed FSM command")

	// ErrNotFound means a record asked for (a hold) does not exist.
	ErrNotFound = errors.New("hub/store: not found")

	// ErrClosed is returned after Close.
	ErrClosed = errors.New("hub/store: store is closed")

	// ErrBadSnapshot means a snapshot stream failed verification (header,
	// schema version, framing or checksum). The live state is left untouched.
	ErrBadSnapshot = errors.New("hub/store: invalid FSM snapshot")

	// ErrSchema means the on-disk FSM state was written by an incompatible
	// schema version.
	ErrSchema = errors.New("hub/store: unsupported FSM schema version")

	// ErrConfig means Config is incomplete or inconsistent.
	ErrConfig = errors.New("hub/store: invalid config")
)

// retryable reports whether Apply should try again (possibly at another
// member) after err.
func retryable(err error) bool {
	return errors.Is(err, ErrNotLeader) || errors.Is(err, ErrLeaderUnreachable)
}
