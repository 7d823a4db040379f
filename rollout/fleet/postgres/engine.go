package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/batonhq/baton/rollout/fleet"
)

// Defaults of Options.
const (
	DefaultSchema         = "baton_fleet"
	DefaultPollInterval   = time.Second
	DefaultReapInterval   = 250 * time.Millisecond
	DefaultEventRetention = 15 * time.Minute
	DefaultTxIdleTimeout  = time.Second
)

// Options configure New. The zero value uses the schema DefaultSchema and
// the default intervals.
type Options struct {
	// Schema holds the engine's tables, created if missing: lower-case
	// letters, digits and '_', at most 40. Every instance of one fleet
	// must use the same. Empty means DefaultSchema.
	Schema string
	// PollInterval is how often a watch or a campaign looks again with
	// no notification (LISTEN/NOTIFY only wakes them sooner). Zero means
	// DefaultPollInterval.
	PollInterval time.Duration
	// ReapInterval is how often the engine looks for expired leases and
	// deletes them with their documents: a lease's documents disappear at
	// most this long after it expired. Zero means DefaultReapInterval.
	ReapInterval time.Duration
	// EventRetention is how long the change history is kept for watches
	// that resume; older history is compacted. Zero means
	// DefaultEventRetention.
	EventRetention time.Duration
	// TxIdleTimeout bounds how long the server waits for this engine's
	// next statement inside one of its transactions before it ends the
	// session (idle_in_transaction_session_timeout, set for each
	// transaction). Every write holds the engine's revision lock, so a
	// client stopped or cut off inside a write would otherwise block
	// every other write, takeovers included; keep it well under the lease
	// TTL. Zero means DefaultTxIdleTimeout.
	TxIdleTimeout time.Duration
	// Logger receives the listener's connection losses. Nil discards.
	Logger *slog.Logger
}

// Engine is a fleet.Engine on PostgreSQL through database/sql. Its zero
// value is not usable: use New.
type Engine struct {
	db  *sql.DB
	o   Options
	q   queries
	log *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	wake   chan struct{} // closed and replaced at every notification
}

var _ fleet.Engine = (*Engine)(nil)
var _ fleet.Compactor = (*Engine)(nil)

var schemaPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

// New creates the schema's tables if they are missing and starts the
// engine's listener and reaper. db should be opened with pgx's
// database/sql driver ("pgx", github.com/jackc/pgx/v5/stdlib): with another
// driver watches and campaigns poll every PollInterval instead of being
// woken by LISTEN/NOTIFY. The caller keeps db and closes it after the
// Engine.
func New(ctx context.Context, db *sql.DB, o Options) (*Engine, error) {
	if db == nil {
		return nil, errors.New("fleet/postgres: New: nil *sql.DB")
	}
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if !schemaPattern.MatchString(o.Schema) {
		return nil, fmt.Errorf("fleet/postgres: schema %q: use lower-case letters, digits and '_' (at most 40, not starting with a digit)", o.Schema)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.ReapInterval <= 0 {
		o.ReapInterval = DefaultReapInterval
	}
	if o.EventRetention <= 0 {
		o.EventRetention = DefaultEventRetention
	}
	if o.TxIdleTimeout <= 0 {
		o.TxIdleTimeout = DefaultTxIdleTimeout
	}
	e := &Engine{db: db, o: o, q: newQueries(o.Schema, o.TxIdleTimeout), log: o.Logger, wake: make(chan struct{})}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if err := e.setup(ctx); err != nil {
		return nil, err
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.wg.Add(2)
	go func() { defer e.wg.Done(); e.listen() }()
	go func() { defer e.wg.Done(); e.reap() }()
	return e, nil
}

// setup creates the tables under a transaction-scoped advisory lock, so
// that instances starting together do not race on CREATE. When they all
// exist it creates nothing, so a role with only the rights to read and
// write them (not to create) can run the engine.
func (e *Engine) setup(ctx context.Context) error {
	var present bool
	if err := e.db.QueryRowContext(ctx, e.q.present, e.o.Schema).Scan(&present); err != nil {
		return e.wrap("setup", err)
	}
	if present {
		return nil
	}
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return e.wrap("setup", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "baton_fleet_setup:"+e.o.Schema); err != nil {
		return e.wrap("setup", err)
	}
	for _, stmt := range e.q.setup {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("fleet/postgres: creating schema %s: %w", e.o.Schema, err)
		}
	}
	return e.wrap("setup", tx.Commit())
}

// Close stops the listener, the reaper, the keep-alives and the watches,
// and waits for them. Leases are left to expire.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	return nil
}

// start registers a goroutine of the engine; false once closed.
func (e *Engine) start() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.wg.Add(1)
	return true
}

// wrap gives a database error the fleet's meaning: a connection failure is
// ErrUnreachable; a query the server refused is passed on.
func (e *Engine) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		e.mu.Lock()
		closed := e.closed
		e.mu.Unlock()
		if closed {
			return fmt.Errorf("fleet/postgres: %s: %w", what, fleet.ErrClosed)
		}
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code[:2] != "08" && pe.Code[:2] != "57" && pe.Code != "53300" {
		return fmt.Errorf("fleet/postgres: %s: %w", what, err)
	}
	return fmt.Errorf("fleet/postgres: %s: %w: %w", what, fleet.ErrUnreachable, err)
}

// Ping implements fleet.Engine with one query.
func (e *Engine) Ping(ctx context.Context) error {
	var one int
	if err := e.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return ctx.Err()
		}
		return fmt.Errorf("fleet/postgres: ping: %w: %w", fleet.ErrUnreachable, err)
	}
	return nil
}

// Get implements fleet.Engine.
func (e *Engine) Get(ctx context.Context, key string) (fleet.Document, error) {
	if err := fleet.ValidKey(key); err != nil {
		return fleet.Document{}, err
	}
	d := fleet.Document{Key: key}
	var lease sql.NullInt64
	err := e.db.QueryRowContext(ctx, e.q.get, key).Scan(&d.Value, &d.Created, &d.Revision, &lease)
	if errors.Is(err, sql.ErrNoRows) {
		return fleet.Document{}, fmt.Errorf("%w: %s", fleet.ErrNotFound, key)
	}
	if err != nil {
		return fleet.Document{}, e.wrap("get "+key, err)
	}
	d.Lease = fleet.LeaseID(lease.Int64)
	return d, nil
}

// prefixEnd is the first key after every key starting with p (keys are
// ASCII, compared byte-wise under COLLATE "C").
func prefixEnd(p string) string { return p + "\x7f" }

// List implements fleet.Engine in one repeatable-read snapshot, so the
// revision matches the documents.
func (e *Engine) List(ctx context.Context, prefix string) ([]fleet.Document, int64, error) {
	if err := fleet.ValidPrefix(prefix); err != nil {
		return nil, 0, err
	}
	tx, err := e.begin(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, 0, e.wrap("list "+prefix, err)
	}
	defer tx.Rollback()
	var rev int64
	if err := tx.QueryRowContext(ctx, e.q.revision).Scan(&rev); err != nil {
		return nil, 0, e.wrap("list "+prefix, err)
	}
	rows, err := tx.QueryContext(ctx, e.q.list, prefix, prefixEnd(prefix))
	if err != nil {
		return nil, 0, e.wrap("list "+prefix, err)
	}
	defer rows.Close()
	var docs []fleet.Document
	for rows.Next() {
		var d fleet.Document
		var lease sql.NullInt64
		if err := rows.Scan(&d.Key, &d.Value, &d.Created, &d.Revision, &lease); err != nil {
			return nil, 0, e.wrap("list "+prefix, err)
		}
		d.Lease = fleet.LeaseID(lease.Int64)
		docs = append(docs, d)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, e.wrap("list "+prefix, err)
	}
	return docs, rev, nil
}

// begin starts a transaction. A writing one also has the server end the
// session if this client goes quiet inside it for TxIdleTimeout (see
// Options.TxIdleTimeout); a read-only one holds no lock, and saves that
// round trip.
func (e *Engine) begin(ctx context.Context, o *sql.TxOptions) (*sql.Tx, error) {
	tx, err := e.db.BeginTx(ctx, o)
	if err != nil || o != nil && o.ReadOnly {
		return tx, err
	}
	if _, err := tx.ExecContext(ctx, e.q.txIdle); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// bump raises the engine revision inside tx. The row lock it takes is held
// until tx ends, so writers commit one at a time and in revision order: a
// watcher that has read up to a revision can never see an earlier one
// appear later.
func (e *Engine) bump(ctx context.Context, tx *sql.Tx) (int64, error) {
	var rev int64
	var notified string
	err := tx.QueryRowContext(ctx, e.q.bump).Scan(&rev, &notified)
	return rev, err
}

// Commit implements fleet.Engine in one transaction serialized with every
// other write by the revision row: the fence (term, lease and lease expiry
// on the database's clock) and each op's revision are checked, and the
// writes made, while no other write can commit.
func (e *Engine) Commit(ctx context.Context, t fleet.Txn) (int64, error) {
	if err := fleet.ValidTxn(t); err != nil {
		return 0, err
	}
	var fence *leadership
	if t.Fence != nil {
		l, ok := t.Fence.(*leadership)
		if !ok || l.lease.e != e {
			return 0, errors.New("fleet/postgres: Commit: the fence is not a leadership of this engine")
		}
		fence = l
	}
	tx, err := e.begin(ctx, nil)
	if err != nil {
		return 0, e.wrap("commit", err)
	}
	defer tx.Rollback()
	rev, err := e.bump(ctx, tx)
	if err != nil {
		return 0, e.wrap("commit", err)
	}
	if fence != nil {
		if err := e.checkFence(ctx, tx, fence); err != nil {
			return 0, err
		}
	}
	for _, op := range t.Ops {
		if err := e.apply(ctx, tx, rev, op); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, e.wrap("commit", err)
	}
	return rev, nil
}

func (e *Engine) checkFence(ctx context.Context, tx *sql.Tx, l *leadership) error {
	var term int64
	var lease sql.NullInt64
	var alive bool
	err := tx.QueryRowContext(ctx, e.q.leader, l.election).Scan(&term, &lease, &alive)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return e.wrap("commit: fence", err)
	}
	if err == nil && term == l.term && lease.Int64 == int64(l.lease.id) && alive {
		return nil
	}
	l.lose()
	cur := int64(0)
	if err == nil && lease.Valid && alive {
		cur = term
	}
	return &fleet.FenceError{Election: l.election, Term: l.term, Current: cur}
}

func (e *Engine) apply(ctx context.Context, tx *sql.Tx, rev int64, op fleet.Op) error {
	var cur int64
	err := tx.QueryRowContext(ctx, e.q.current, op.Key).Scan(&cur)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return e.wrap("commit "+op.Key, err)
	}
	if op.Prev != fleet.Any && cur != op.Prev {
		return &fleet.ConflictError{Key: op.Key, Want: op.Prev, Got: cur}
	}
	if op.Delete {
		if cur == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, e.q.del, op.Key, rev)
		return e.wrap("delete "+op.Key, err)
	}
	var lease sql.NullInt64
	if op.Lease != 0 {
		var alive bool
		err := tx.QueryRowContext(ctx, e.q.leaseAlive, int64(op.Lease)).Scan(&alive)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !alive {
			return fmt.Errorf("fleet/postgres: put %s: %w (lease %d)", op.Key, fleet.ErrLeaseLost, op.Lease)
		}
		if err != nil {
			return e.wrap("put "+op.Key, err)
		}
		lease = sql.NullInt64{Int64: int64(op.Lease), Valid: true}
	}
	value := op.Value
	if value == nil {
		value = []byte{}
	}
	_, err = tx.ExecContext(ctx, e.q.put, op.Key, value, rev, lease)
	return e.wrap("put "+op.Key, err)
}

// Compact implements fleet.Compactor: the history up to revision is
// deleted.
func (e *Engine) Compact(ctx context.Context, revision int64) error {
	tx, err := e.begin(ctx, nil)
	if err != nil {
		return e.wrap("compact", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, e.q.compact, revision); err != nil {
		return e.wrap("compact", err)
	}
	if _, err := tx.ExecContext(ctx, e.q.compacted, revision); err != nil {
		return e.wrap("compact", err)
	}
	return e.wrap("compact", tx.Commit())
}
