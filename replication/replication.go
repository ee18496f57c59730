// Package replication is the protocol between kelurahan nodes and the city
// hub, and both of its ends. Nodes sit behind NAT on flaky links, so a node
// dials out to every hub member it knows (gRPC over mutual TLS) and the hub
// calls back into the node over a reverse tunnel the node opened on that same
// connection (github.com/jhump/grpctunnel). The node keeps a durable outbox
// and drops a record only once the hub acknowledges its Raft commit.
//
// This package imports neither node/ nor hub/: each end implements the small
// interfaces defined here.
package replication

import (
	"context"
	"time"

	rondav1 "github.com/ronda-jakarta/ronda/proto/ronda/v1"
)

// CapabilityVersion is the protocol version this build speaks. Both ends send
// it in Hello; a hub refuses nodes older than MinCapabilityVersion.
//
// History:
//
//	1: skeleton — Hello, Push (registration, camera inventory, spans),
//	   NodeControl (Whep, WhepDelete, Playback, Recordings) over a reverse tunnel.
//	2: records carry segment manifests, gap events and the node's audit
//	   events (hash-chained); Hello and Push carry the node's last seq.
//	   A hub older than 2 would skip audit records it cannot read, so
//	   upgrade every hub member before the nodes.
const CapabilityVersion = 2

// MinCapabilityVersion is the oldest node protocol the hub accepts.
const MinCapabilityVersion = 1

// Keepalive settings shared by both ends: the client pings every
// KeepaliveTime; the server allows pings that often.
const (
	KeepaliveTime    = 30 * time.Second
	KeepaliveTimeout = 10 * time.Second
	// KeepaliveMinTime is the server's enforcement floor: clients may ping
	// as often as MinKeepalive.
	KeepaliveMinTime = 5 * time.Second
	// MinKeepalive is the shortest keepalive interval either end may be
	// configured with (gRPC clients do not ping more often than 10 s).
	MinKeepalive = 10 * time.Second
)

// HeartbeatEvery: a node with nothing to push sends an empty push this
// often — its heartbeat, which also fetches new directives.
const HeartbeatEvery = 5 * time.Second

// keepaliveTimeout is how long a ping may go unanswered: a third of the
// interval, at most KeepaliveTimeout.
func keepaliveTimeout(every time.Duration) time.Duration {
	return min(KeepaliveTimeout, max(every/3, time.Second))
}

// HubEnd is what a hub member implements for the node-facing service.
type HubEnd interface {
	// MemberID names this member.
	MemberID() string
	// Members returns the gRPC addresses nodes should dial.
	Members() []string
	// Push applies a node's records through Raft (forwarding to the leader)
	// and returns the node's highest committed sequence number.
	Push(ctx context.Context, nodeID string, recs []*rondav1.Record) (ackedSeq uint64, err error)
	// AckedSeq returns the node's highest committed sequence number.
	AckedSeq(nodeID string) uint64
	// AuditSeq returns the newest of the node's audit events committed.
	AuditSeq(nodeID string) uint64
	// Directives returns the node's directives after seq (a bounded batch).
	Directives(nodeID string, after uint64) []*rondav1.Directive
}

// UserListProvider is implemented by a hub member that hands nodes their
// signed user list (auth.SignedUserList) and its public key: in answers to
// Hello and Push, when the node holds an older version than have.
type UserListProvider interface {
	UserList(kelurahan string, have uint64) (list, hubKey []byte)
}

// UserListHandler is implemented by a node: it keeps the newest signed user
// list (after checking the signature) for offline login.
type UserListHandler interface {
	UserListVersion() uint64
	SetUserList(from string, list, hubKey []byte)
}

// DirectiveHandler is implemented by a node: it applies what the hub tells
// it (a hold placed or released centrally). Applying a directive twice must
// change nothing; an error is reported to the hub as the outcome.
type DirectiveHandler interface {
	ApplyDirective(d *rondav1.Directive) error
}

// Resyncer is implemented by a node that can re-send its history (what it
// recorded, its audit events after auditSeq) to a hub that has lost records
// it had acknowledged — one restored from an older backup. Resync queues the
// history ahead of the records not yet pushed (PebbleOutbox.
// InsertBeforeUnsent) before it returns; no push reads the outbox meanwhile.
type Resyncer interface {
	Resync(hubAcked, auditSeq uint64)
}

// Outbox is the node's durable queue of records for the hub.
type Outbox interface {
	// Pending returns up to max records after the acknowledged sequence.
	Pending(max int) ([]*rondav1.Record, error)
	// Ack drops every record with seq <= seq.
	Ack(seq uint64) error
}
