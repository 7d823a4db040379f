package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/batonhq/baton/rollout/fleet"
)

// lease is a row of S.leases whose expiry is on the database's clock. Its
// keep-alive renews it every third of the TTL; the holder considers it
// lost when the database says it expired, or when no renewal succeeded
// within a TTL of the last successful one's start (which is before the
// database's own expiry, so the holder gives up first).
type lease struct {
	e   *Engine
	id  fleet.LeaseID
	ttl time.Duration

	ctx    context.Context // cancelled when the lease is lost or revoked
	cancel context.CancelFunc
	done   chan struct{} // closed when the keep-alive has stopped
}

// Grant implements fleet.Engine. TTLs are kept to the millisecond.
func (e *Engine) Grant(ctx context.Context, ttl time.Duration) (fleet.Lease, error) {
	if ttl < 10*time.Millisecond {
		return nil, fmt.Errorf("fleet/postgres: lease TTL %s is too short", ttl)
	}
	if !e.start() {
		return nil, fleet.ErrClosed
	}
	var id int64
	start := time.Now()
	if err := e.db.QueryRowContext(ctx, e.q.grant, ttl.Milliseconds()).Scan(&id); err != nil {
		e.wg.Done()
		return nil, e.wrap("grant", err)
	}
	l := &lease{e: e, id: fleet.LeaseID(id), ttl: ttl, done: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(e.ctx)
	go func() {
		defer e.wg.Done()
		defer close(l.done)
		defer l.cancel()
		l.keepAlive(start.Add(ttl))
	}()
	return l, nil
}

func (l *lease) keepAlive(deadline time.Time) {
	every := l.ttl / 3
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		ctx, cancel := context.WithDeadline(l.ctx, deadline)
		res, err := l.e.db.ExecContext(ctx, l.e.q.keepAlive, int64(l.id))
		cancel()
		if err == nil {
			n, _ := res.RowsAffected()
			if n == 0 {
				l.e.log.Warn("fleet/postgres: lease expired", "lease", l.id)
				return
			}
			deadline = sent.Add(l.ttl)
			t.Reset(every)
			continue
		}
		if !time.Now().Before(deadline) {
			l.e.log.Warn("fleet/postgres: lease not renewed within its TTL", "lease", l.id, "err", err)
			return
		}
		t.Reset(min(every, max(time.Until(deadline), time.Millisecond), 100*time.Millisecond))
	}
}

func (l *lease) ID() fleet.LeaseID     { return l.id }
func (l *lease) TTL() time.Duration    { return l.ttl }
func (l *lease) Done() <-chan struct{} { return l.done }

// Revoke deletes the lease and its documents now.
func (l *lease) Revoke(ctx context.Context) error {
	l.cancel()
	<-l.done
	return l.e.dropLeases(ctx, func(tx *sql.Tx) ([]int64, error) {
		if _, err := tx.ExecContext(ctx, l.e.q.revokeLease, int64(l.id)); err != nil {
			return nil, err
		}
		return []int64{int64(l.id)}, nil
	})
}

// dropLeases deletes, in one write serialized with the others, the leases
// pick returns and every document under them, recording their deletion.
func (e *Engine) dropLeases(ctx context.Context, pick func(*sql.Tx) ([]int64, error)) error {
	tx, err := e.begin(ctx, nil)
	if err != nil {
		return e.wrap("drop leases", err)
	}
	defer tx.Rollback()
	rev, err := e.bump(ctx, tx)
	if err != nil {
		return e.wrap("drop leases", err)
	}
	ids, err := pick(tx)
	if err != nil {
		return e.wrap("drop leases", err)
	}
	for _, id := range ids {
		rows, err := tx.QueryContext(ctx, e.q.dropLeased, id)
		if err != nil {
			return e.wrap("drop leases", err)
		}
		var keys []string
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return e.wrap("drop leases", err)
			}
			keys = append(keys, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return e.wrap("drop leases", err)
		}
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, e.q.event, rev, k, nil, true, nil, nil); err != nil {
				return e.wrap("drop leases", err)
			}
		}
	}
	return e.wrap("drop leases", tx.Commit())
}

// reap deletes expired leases every ReapInterval, and prunes the change
// history older than EventRetention every tenth of it.
func (e *Engine) reap() {
	t := time.NewTicker(e.o.ReapInterval)
	defer t.Stop()
	pruneEvery := max(e.o.EventRetention/10, time.Second)
	lastPrune := time.Now()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		if err := e.reapOnce(e.ctx); err != nil && e.ctx.Err() == nil {
			e.log.Debug("fleet/postgres: reaping expired leases", "err", err)
		}
		if time.Since(lastPrune) >= pruneEvery {
			lastPrune = time.Now()
			if _, err := e.db.ExecContext(e.ctx, e.q.prune, e.o.EventRetention.Milliseconds()); err != nil && e.ctx.Err() == nil {
				e.log.Debug("fleet/postgres: pruning the change history", "err", err)
			}
		}
	}
}

var errNothingExpired = errors.New("nothing expired")

func (e *Engine) reapOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var any bool
	if err := e.db.QueryRowContext(ctx, e.q.anyExpired).Scan(&any); err != nil || !any {
		return err
	}
	err := e.dropLeases(ctx, func(tx *sql.Tx) ([]int64, error) {
		rows, err := tx.QueryContext(ctx, e.q.expire)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
		if len(ids) == 0 && rows.Err() == nil {
			return nil, errNothingExpired
		}
		return ids, rows.Err()
	})
	if errors.Is(err, errNothingExpired) {
		return nil
	}
	return err
}

// leadership is the row of S.elections naming this lease at this term.
type leadership struct {
	lease    *lease
	election string
	term     int64
	once     sync.Once
	done     chan struct{}
	stop     func() bool
}

func (l *leadership) Election() string      { return l.election }
func (l *leadership) Term() int64           { return l.term }
func (l *leadership) Lease() fleet.Lease    { return l.lease }
func (l *leadership) Done() <-chan struct{} { return l.done }
func (l *leadership) lose()                 { l.once.Do(func() { close(l.done) }) }
