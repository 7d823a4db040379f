package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/batonhq/baton/rollout/fleet"
)

// Campaign implements fleet.Engine with a row of S.elections: the leader is
// the lease it names while that lease is alive on the database's clock. A
// candidate takes the row over, raising the term, in a write serialized
// with every fenced write, once the named lease is gone or expired; it
// looks again when the leader's lease is due to expire, when a
// notification says something changed, and every PollInterval.
func (e *Engine) Campaign(ctx context.Context, election string, l fleet.Lease, value []byte) (fleet.Leadership, error) {
	if err := fleet.ValidKey(election); err != nil {
		return nil, err
	}
	ls, ok := l.(*lease)
	if !ok || ls.e != e {
		return nil, errors.New("fleet/postgres: Campaign: the lease is not one of this engine")
	}
	if value == nil {
		value = []byte{}
	}
	for {
		wake := e.wakeup()
		term, wait, err := e.tryLead(ctx, election, ls, value)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, fleet.ErrLeaseLost) || errors.Is(err, fleet.ErrClosed) {
				return nil, err
			}
			e.log.Debug("fleet/postgres: campaign", "election", election, "err", err)
			wait = e.o.PollInterval
		}
		if term > 0 {
			ld := &leadership{lease: ls, election: election, term: term, done: make(chan struct{})}
			ld.stop = context.AfterFunc(ls.ctx, ld.lose)
			return ld, nil
		}
		t := time.NewTimer(min(wait, e.o.PollInterval))
		select {
		case <-wake:
		case <-t.C:
		case <-ls.ctx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("fleet/postgres: campaign %s: %w", election, fleet.ErrLeaseLost)
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
	}
}

// tryLead returns the won term, or 0 and how long the current leader's
// lease has left.
func (e *Engine) tryLead(ctx context.Context, election string, ls *lease, value []byte) (int64, time.Duration, error) {
	select {
	case <-ls.ctx.Done():
		return 0, 0, fmt.Errorf("fleet/postgres: campaign %s: %w", election, fleet.ErrLeaseLost)
	default:
	}
	// A look without the write lock first: while a leader is alive,
	// candidates only read.
	var term, leftMS int64
	var holder sql.NullInt64
	var alive bool
	err := e.db.QueryRowContext(ctx, e.q.look, election).Scan(&term, &holder, &alive, &leftMS)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return 0, 0, e.wrap("campaign "+election, err)
	case alive && holder.Int64 != int64(ls.id):
		return 0, time.Duration(leftMS)*time.Millisecond + 5*time.Millisecond, nil
	}
	tx, err := e.begin(ctx, nil)
	if err != nil {
		return 0, 0, e.wrap("campaign "+election, err)
	}
	defer tx.Rollback()
	_, err = e.bump(ctx, tx)
	if err != nil {
		return 0, 0, e.wrap("campaign "+election, err)
	}
	var mine bool
	if err := tx.QueryRowContext(ctx, e.q.leaseAlive, int64(ls.id)).Scan(&mine); errors.Is(err, sql.ErrNoRows) || err == nil && !mine {
		return 0, 0, fmt.Errorf("fleet/postgres: campaign %s: %w", election, fleet.ErrLeaseLost)
	} else if err != nil {
		return 0, 0, e.wrap("campaign "+election, err)
	}
	err = tx.QueryRowContext(ctx, e.q.look, election).Scan(&term, &holder, &alive, &leftMS)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, e.q.insertElection, election, int64(ls.id), value); err != nil {
			return 0, 0, e.wrap("campaign "+election, err)
		}
		term = 1
	case err != nil:
		return 0, 0, e.wrap("campaign "+election, err)
	case alive && holder.Int64 == int64(ls.id):
		if _, err := tx.ExecContext(ctx, e.q.setValue, election, value); err != nil {
			return 0, 0, e.wrap("campaign "+election, err)
		}
	case alive:
		return 0, time.Duration(leftMS)*time.Millisecond + 5*time.Millisecond, nil
	default:
		if err := tx.QueryRowContext(ctx, e.q.takeElection, election, int64(ls.id), value).Scan(&term); err != nil {
			return 0, 0, e.wrap("campaign "+election, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, e.wrap("campaign "+election, err)
	}
	return term, 0, nil
}

// Resign clears the row's lease if it still names this leadership, so a
// waiting candidate takes over at once (with the next term).
func (l *leadership) Resign(ctx context.Context) error {
	defer l.lose()
	l.stop()
	e := l.lease.e
	tx, err := e.begin(ctx, nil)
	if err != nil {
		return e.wrap("resign "+l.election, err)
	}
	defer tx.Rollback()
	_, err = e.bump(ctx, tx)
	if err != nil {
		return e.wrap("resign "+l.election, err)
	}
	if _, err := tx.ExecContext(ctx, e.q.resign, l.election, l.term, int64(l.lease.id)); err != nil {
		return e.wrap("resign "+l.election, err)
	}
	return e.wrap("resign "+l.election, tx.Commit())
}

// Leader implements fleet.Engine.
func (e *Engine) Leader(ctx context.Context, election string) ([]byte, int64, error) {
	if err := fleet.ValidKey(election); err != nil {
		return nil, 0, err
	}
	var value []byte
	var term int64
	err := e.db.QueryRowContext(ctx, e.q.leaderValue, election).Scan(&value, &term)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("%w: %s", fleet.ErrNoLeader, election)
	}
	if err != nil {
		return nil, 0, e.wrap("leader "+election, err)
	}
	return value, term, nil
}
