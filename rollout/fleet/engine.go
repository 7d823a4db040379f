package fleet

import (
	"context"
	"time"
)

// Engine is the coordination service a fleet stands on: etcd (package
// rollout/fleet/etcd) or the service's PostgreSQL (rollout/fleet/postgres).
// It stores small documents under keys with revisions, commits
// compare-and-swap transactions, grants leases that expire unless kept
// alive, elects one leader per election with a fencing term, and streams
// changes from a revision. Every guarantee of the fleet rests on the
// engine's own (etcd's Raft log, PostgreSQL's transactions); nothing here
// adds consensus of its own.
//
// Revisions are the engine's: one counter for the whole engine, raised by
// every committed write, so that a revision orders all changes and a
// watcher can resume from the last one it saw. All the ops of a Txn share
// one revision.
//
// Implementations are safe for concurrent use. fleettest.TestEngine is the
// conformance suite every implementation must pass.
type Engine interface {
	// Get returns the document at key, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) (Document, error)
	// List returns the documents whose keys start with prefix, sorted by
	// key, and the revision the listing is consistent with: watching
	// from it misses nothing and repeats nothing.
	List(ctx context.Context, prefix string) (docs []Document, revision int64, err error)
	// Commit applies every op of t atomically, or none. It fails with a
	// *ConflictError (ErrConflict) when an op's Prev does not hold, with
	// a *FenceError (ErrFenced) when t.Fence is set and that leadership
	// is no longer held, and with ErrLeaseLost when an op names a lease
	// that expired. It returns the revision of the write.
	Commit(ctx context.Context, t Txn) (revision int64, err error)
	// Watch streams the changes to keys under prefix made after revision
	// after, in revision order, each exactly once. A watch survives a lost
	// connection: the engine resumes it from the last revision it
	// delivered. The channel is closed when ctx ends, after a response
	// with Err set (ErrCompacted: the history after `after` is gone, list
	// again), or when the engine is closed.
	Watch(ctx context.Context, prefix string, after int64) <-chan WatchResponse
	// Grant creates a lease of ttl and keeps it alive until it is revoked,
	// the engine is closed or the keep-alive fails for longer than ttl.
	// Documents written with the lease are deleted when it expires.
	Grant(ctx context.Context, ttl time.Duration) (Lease, error)
	// Campaign blocks until the holder of l leads election, and returns
	// the leadership with its fencing term; terms of successive leaders of
	// one election only grow. It returns ctx.Err() when ctx ends first and
	// ErrLeaseLost when l expires first. value is what Leader returns.
	Campaign(ctx context.Context, election string, l Lease, value []byte) (Leadership, error)
	// Leader returns the current leader's value and term, or an error
	// wrapping ErrNoLeader.
	Leader(ctx context.Context, election string) (value []byte, term int64, err error)
	// Ping returns nil when the engine answers a read that only a healthy
	// engine can answer (etcd: a linearizable read, which needs a quorum;
	// PostgreSQL: a query). Its error is how the fleet learns that the
	// engine is unreachable.
	Ping(ctx context.Context) error
	// Close releases the engine's connections and stops its goroutines;
	// its leases are left to expire. It is idempotent.
	Close() error
}

// Compactor is the optional interface of an Engine whose change history can
// be discarded up to a revision: a watch from before it then fails with
// ErrCompacted.
type Compactor interface {
	Compact(ctx context.Context, revision int64) error
}

// Document is one stored value. The zero value is an absent document.
type Document struct {
	Key   string
	Value []byte
	// Revision is the engine revision of the last write of the key (its
	// mod revision); Created is the revision that created it.
	Revision, Created int64
	// Lease is the lease the document lives under, 0 for none.
	Lease LeaseID
}

// EventType says what happened to a key.
type EventType int

// Event types. The zero value is Put.
const (
	Put EventType = iota
	Delete
)

// String returns "put" or "delete".
func (t EventType) String() string {
	if t == Delete {
		return "delete"
	}
	return "put"
}

// Event is one change. For a Delete, Doc has the key and the revision of
// the deletion and no value. The zero value is a put of an empty key.
type Event struct {
	Type EventType
	Doc  Document
}

// WatchResponse is one batch of a watch: the events of one or more
// revisions, and Revision, the revision up to which the watcher has seen
// everything (at least the last event's). A response with Err set is the
// last one. The zero value is an empty batch.
type WatchResponse struct {
	Events   []Event
	Revision int64
	Err      error
}

// Any is the Prev of an op that writes whatever the key holds.
const Any int64 = -1

// Op is one write of a Txn. The zero value of Prev (0) means the key must
// not exist: an overwrite has to say which revision it replaces, or Any.
type Op struct {
	Key string
	// Value is the document; ignored by a delete.
	Value []byte
	// Delete removes the key instead of writing it. Deleting an absent key
	// with Prev Any is not an error.
	Delete bool
	// Prev is the condition on the key: Any, 0 (absent) or the revision
	// the writer read.
	Prev int64
	// Lease attaches the document to a lease (0: none).
	Lease LeaseID
}

// Txn is an atomic write. The zero value commits nothing (and is refused).
type Txn struct {
	// Fence, when set, makes the write conditional on that leadership
	// still being held when the engine applies it: a deposed leader's
	// write is refused with a *FenceError, never applied. It must come
	// from the same Engine.
	Fence Leadership
	// Ops are applied in order, all or none; a key appears at most once.
	Ops []Op
}

// LeaseID names a lease. The zero value is no lease.
type LeaseID int64

// Lease is a grant that lives while its holder keeps it alive. The
// engine's keep-alive runs until Revoke, the engine's Close, or a failure
// to renew for the lease's TTL; Done is then closed. The server side
// expires the lease on its own clock, so a holder cut off from the
// engine loses it even if it never notices.
type Lease interface {
	ID() LeaseID
	TTL() time.Duration
	// Done is closed when the lease is lost or revoked.
	Done() <-chan struct{}
	// Revoke ends the lease now and deletes its documents. It is
	// idempotent.
	Revoke(ctx context.Context) error
}

// Leadership is a won election. Its term is the fencing token: an engine
// refuses a Txn fenced by a leadership whose term is no longer the
// election's, or whose lease expired.
type Leadership interface {
	Election() string
	Term() int64
	Lease() Lease
	// Done is closed when the leadership is known to be lost here: its
	// lease was lost, it resigned, or a fenced write was refused. The
	// engine may refuse fenced writes before Done is closed (a holder that
	// was stopped or cut off learns it late); that is what fencing is for.
	Done() <-chan struct{}
	// Resign gives the leadership up so that another candidate wins at
	// once instead of waiting for the lease to expire. It is idempotent.
	Resign(ctx context.Context) error
}
