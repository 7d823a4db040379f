package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// lockEnv is what a dialect's runner lock needs.
type lockEnv struct {
	db  *sql.DB
	t   tables
	key string
	// ttl is the SQLite lease; check how often a session lock's
	// connection is watched.
	ttl, check time.Duration
}

// heldLock is the runner lock, held for the duration of one phase call.
type heldLock struct {
	key string
	// lost is closed when the lock is lost: its session died (killed,
	// timed out, network cut) or its lease was taken over. why says how.
	lost <-chan struct{}
	why  string
	// cond is an SQL condition, with args, that is true only while this
	// lock is held; every phase and checkpoint write includes it.
	cond string
	args []any

	release func()
}

// acquireLock takes the runner lock, waiting (polling with backoff) until it
// is free or ctx is done. PostgreSQL: a session advisory lock on a pinned
// connection. MySQL/MariaDB: GET_LOCK on a pinned connection. Both are
// released by the server if the runner dies, and their connection is
// pinged every Options.LockCheck so that a session the server ended is
// noticed at once. SQLite: a lease row (see sqliteDialect.session).
func (r *Runner) acquireLock(ctx context.Context) (*heldLock, error) {
	env := &lockEnv{db: r.db, t: r.t, key: r.t.prefix + "runner", ttl: r.opts.LeaseTTL, check: r.opts.LockCheck}
	for attempt := 1; ; attempt++ {
		l, ok, err := r.im.session(ctx, env)
		if err != nil {
			return nil, fmt.Errorf("migrate: runner lock: %w", err)
		}
		if ok {
			l.key = env.key
			return l, nil
		}
		if attempt == 1 {
			r.log.InfoContext(ctx, "migrate: waiting for runner lock", "migration", r.m.Name, "lock", env.key)
		}
		if err := sleepCtx(ctx, backoff(50*time.Millisecond, time.Second, attempt)); err != nil {
			return nil, fmt.Errorf("%w (%s): %w", ErrLocked, env.key, err)
		}
	}
}

// watch starts the goroutine that checks a held lock every interval until
// release: check returns why the lock is lost ("" while it is held, or
// when the check could not tell and should be tried again). free runs on
// release, after the goroutine has stopped, with lost telling whether the
// lock was lost.
func watch(every time.Duration, check func(context.Context) string, free func(ctx context.Context, lost bool)) *heldLock {
	lost := make(chan struct{})
	stop := make(chan struct{})
	done := make(chan struct{})
	h := &heldLock{lost: lost}
	go func() { // owner: h.release, which waits for done
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), max(every, time.Second))
			why := check(ctx)
			cancel()
			if why != "" {
				h.why = why
				close(lost)
				return
			}
		}
	}()
	var once sync.Once
	h.release = func() {
		once.Do(func() {
			close(stop)
			<-done
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			select {
			case <-lost:
				free(ctx, true)
			default:
				free(ctx, false)
			}
		})
	}
	return h
}

// watchSession owns c, the connection whose session holds the lock: it
// runs ping on it every l.check until release; a failed ping means the
// session is gone, and the server has released the lock with it. release
// runs unlock (with the key) and closes c.
func watchSession(l *lockEnv, c *sql.Conn, ping, unlock string) *heldLock {
	return watch(l.check, func(ctx context.Context) string {
		if _, err := c.ExecContext(ctx, ping); err != nil {
			return fmt.Sprintf("the session holding lock %q ended (%v)", l.key, err)
		}
		return ""
	}, func(ctx context.Context, lost bool) {
		if lost {
			_ = c.Raw(func(any) error { return driverBadConn })
		} else if _, err := c.ExecContext(ctx, unlock, l.key); err != nil {
			// Closing the session releases the lock too.
			_ = c.Raw(func(any) error { return driverBadConn })
		}
		_ = c.Close()
	})
}

// watchLease renews a lease every interval until release; renew reports
// whether the lease is still ours (an error is retried next tick: the
// lease has slack). drop deletes the lease on release.
func watchLease(l *lockEnv, every time.Duration, renew func(context.Context) (bool, error), drop func(context.Context)) *heldLock {
	return watch(every, func(ctx context.Context) string {
		if ours, err := renew(ctx); err == nil && !ours {
			return fmt.Sprintf("the lease row %q in %s was taken over (renewals failed for LeaseTTL, or another runner broke it)", l.key, l.t.locks)
		}
		return ""
	}, func(ctx context.Context, _ bool) { drop(ctx) })
}

// lockedWrite runs fn in one write transaction that first confirms the
// runner lock is still held, so that a runner that lost its lock cannot
// record anything.
func (r *Runner) lockedWrite(ctx context.Context, what string, fn func(q queryer) error) error {
	c, err := r.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	tx, err := r.im.beginBatch(ctx, c)
	if err != nil {
		return fmt.Errorf("migrate: %s: %w", what, err)
	}
	if err := r.confirmLock(ctx, tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("migrate: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %s: %w", what, err)
	}
	return nil
}

// confirmLock fails with ErrLocked unless the runner lock is held.
func (r *Runner) confirmLock(ctx context.Context, q queryer) error {
	l := r.lock
	if l == nil {
		return nil // outside a phase call (tests of helpers)
	}
	held, err := count(ctx, q, r.d.rebind("SELECT CASE WHEN "+l.cond+" THEN 1 ELSE 0 END"), l.args...)
	if err != nil {
		return fmt.Errorf("migrate: confirm runner lock: %w", err)
	}
	if !held {
		return fmt.Errorf("%w: runner lock %q is no longer held by this runner", ErrLocked, l.key)
	}
	return nil
}
