package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/batonhq/baton/rollout/fleet"
)

// watchBatch bounds the events one query of a watch reads.
const watchBatch = 1000

// listenCheck is how long the listener waits for a notification before it
// checks that its connection still answers.
const listenCheck = 30 * time.Second

// wakeup returns a channel closed at the next notification (or reconnection
// of the listener).
func (e *Engine) wakeup() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.wake
}

func (e *Engine) broadcast() {
	e.mu.Lock()
	defer e.mu.Unlock()
	close(e.wake)
	e.wake = make(chan struct{})
}

var errNoListen = errors.New("the database/sql driver is not pgx's: LISTEN is not available, watches poll")

// listen holds one connection out of the pool, LISTENs on the engine's
// channel and wakes every watch and campaign of this engine at each
// notification. After a lost connection it connects again and wakes them
// all, so that they catch up on what the outage hid; polling covers the
// time in between.
func (e *Engine) listen() {
	backoff := 100 * time.Millisecond
	for {
		err := e.listenOnce()
		if e.ctx.Err() != nil {
			return
		}
		if errors.Is(err, errNoListen) {
			e.log.Warn("fleet/postgres: " + errNoListen.Error())
			return
		}
		e.log.Warn("fleet/postgres: listener lost its connection", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-e.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (e *Engine) listenOnce() error {
	conn, err := e.db.Conn(e.ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return errNoListen
		}
		pc := sc.Conn()
		if _, err := pc.Exec(e.ctx, `LISTEN "`+e.q.channel+`"`); err != nil {
			return errors.Join(driver.ErrBadConn, err)
		}
		e.broadcast() // caught up from here on: wake everyone to look
		for {
			ctx, cancel := context.WithTimeout(e.ctx, listenCheck)
			_, err := pc.WaitForNotification(ctx)
			cancel()
			switch {
			case err == nil:
				e.broadcast()
			case e.ctx.Err() != nil:
				_, _ = pc.Exec(context.Background(), `UNLISTEN *`)
				return nil
			case ctx.Err() != nil:
				pctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
				_, err := pc.Exec(pctx, `SELECT 1`)
				cancel()
				if err != nil {
					return errors.Join(driver.ErrBadConn, err)
				}
			default:
				// The driver must not hand this connection out again.
				return errors.Join(driver.ErrBadConn, err)
			}
		}
	})
}

// Watch implements fleet.Engine by reading S.events after the last
// revision delivered, woken by notifications and every PollInterval. A lost
// connection only delays it: the next read resumes from that revision.
func (e *Engine) Watch(ctx context.Context, prefix string, after int64) <-chan fleet.WatchResponse {
	out := make(chan fleet.WatchResponse, 1)
	if err := fleet.ValidPrefix(prefix); err != nil {
		out <- fleet.WatchResponse{Err: err}
		close(out)
		return out
	}
	if !e.start() {
		out <- fleet.WatchResponse{Err: fleet.ErrClosed}
		close(out)
		return out
	}
	go func() {
		defer e.wg.Done()
		defer close(out)
		e.watch(ctx, prefix, after, out)
	}()
	return out
}

func (e *Engine) watch(ctx context.Context, prefix string, after int64, out chan<- fleet.WatchResponse) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(e.ctx, cancel)()
	for {
		wake := e.wakeup()
		r, err := e.readEvents(ctx, prefix, after)
		switch {
		case errors.Is(err, fleet.ErrCompacted):
			select {
			case out <- fleet.WatchResponse{Revision: after, Err: err}:
			case <-ctx.Done():
			}
			return
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			e.log.Debug("fleet/postgres: watch", "prefix", prefix, "err", err)
		case len(r.Events) > 0:
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
			after = r.Revision
			if len(r.Events) >= watchBatch/2 {
				continue // more may be waiting
			}
		}
		t := time.NewTimer(e.o.PollInterval)
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		t.Stop()
	}
}

// readEvents reads the events after `after` under prefix in one snapshot
// that also says whether that history was compacted. When the batch limit
// cuts a revision, the batch stops before it (or, if it is the only one,
// reads that revision whole), so no revision is ever delivered in part.
func (e *Engine) readEvents(ctx context.Context, prefix string, after int64) (fleet.WatchResponse, error) {
	tx, err := e.begin(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fleet.WatchResponse{}, e.wrap("watch", err)
	}
	defer tx.Rollback()
	var compacted, current int64
	if err := tx.QueryRowContext(ctx, e.q.compactedRev).Scan(&compacted, &current); err != nil {
		return fleet.WatchResponse{}, e.wrap("watch", err)
	}
	if after < compacted {
		return fleet.WatchResponse{}, fmt.Errorf("fleet/postgres: watch %s from %d: %w (history starts after %d)", prefix, after+1, fleet.ErrCompacted, compacted)
	}
	evs, err := e.queryEvents(ctx, tx, prefix, after, watchBatch)
	if err != nil {
		return fleet.WatchResponse{}, err
	}
	if len(evs) == watchBatch {
		last := evs[len(evs)-1].Doc.Revision
		cut := len(evs)
		for cut > 0 && evs[cut-1].Doc.Revision == last {
			cut--
		}
		if cut > 0 {
			evs = evs[:cut]
		} else if evs, err = e.queryEvents(ctx, tx, prefix, after, 1<<30); err != nil {
			return fleet.WatchResponse{}, err
		}
	}
	r := fleet.WatchResponse{Events: evs, Revision: after}
	if len(evs) > 0 {
		r.Revision = evs[len(evs)-1].Doc.Revision
	}
	return r, nil
}

func (e *Engine) queryEvents(ctx context.Context, tx *sql.Tx, prefix string, after int64, limit int) ([]fleet.Event, error) {
	rows, err := tx.QueryContext(ctx, e.q.events, after, prefix, prefixEnd(prefix), limit)
	if err != nil {
		return nil, e.wrap("watch", err)
	}
	defer rows.Close()
	var evs []fleet.Event
	for rows.Next() {
		var ev fleet.Event
		var deleted bool
		var created, lease sql.NullInt64
		if err := rows.Scan(&ev.Doc.Revision, &ev.Doc.Key, &ev.Doc.Value, &deleted, &created, &lease); err != nil {
			return nil, e.wrap("watch", err)
		}
		if deleted {
			ev.Type, ev.Doc.Value = fleet.Delete, nil
		}
		ev.Doc.Created, ev.Doc.Lease = created.Int64, fleet.LeaseID(lease.Int64)
		evs = append(evs, ev)
	}
	return evs, e.wrap("watch", rows.Err())
}
