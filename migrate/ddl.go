package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// execDDL runs one DDL statement on a pinned connection whose lock timeout
// is Options.LockTimeout, so that while the statement waits for its lock,
// application queries queued behind it wait at most that long. A lock
// timeout, busy database or deadlock is retried after a jittered,
// exponentially growing pause, at most Options.DDLAttempts times.
func (r *Runner) execDDL(ctx context.Context, stmt string, args ...any) error {
	return r.withDDLConn(ctx, stmt, func(ctx context.Context, c *sql.Conn) error {
		_, err := c.ExecContext(ctx, stmt, args...)
		return err
	})
}

// withDDLConn is execDDL for a function that may run several statements on
// the pinned connection (for example SET foreign_key_checks around an
// ALTER). fn must be safe to repeat.
func (r *Runner) withDDLConn(ctx context.Context, desc string, fn func(context.Context, *sql.Conn) error) error {
	ctx, span := r.tracer.Start(ctx, "migrate.ddl")
	defer span.End()
	span.SetAttributes(attribute.String("db.statement", desc))
	var last error
	for attempt := 1; attempt <= r.opts.DDLAttempts; attempt++ {
		err := r.onConn(ctx, func(c *sql.Conn) error { return fn(ctx, c) })
		if err == nil {
			r.log.DebugContext(ctx, "migrate: ddl", "migration", r.m.Name, "statement", desc, "attempt", attempt)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		last = err
		if !r.im.retryable(err) {
			span.RecordError(err)
			return &DDLError{Statement: desc, Attempts: attempt, Err: err}
		}
		r.inst.ddlRetries.Add(ctx, 1, metric.WithAttributes(attribute.String("migration", r.m.Name)))
		r.log.InfoContext(ctx, "migrate: ddl lock timeout, retrying", "migration", r.m.Name, "statement", desc, "attempt", attempt, "err", err)
		if r.opts.OnRetry != nil {
			r.opts.OnRetry(desc, attempt, err)
		}
		if attempt < r.opts.DDLAttempts {
			if err := sleepCtx(ctx, backoff(r.opts.RetryBackoff, r.opts.MaxRetryBackoff, attempt)); err != nil {
				return err
			}
		}
	}
	return &DDLError{Statement: desc, Attempts: r.opts.DDLAttempts, Err: fmt.Errorf("%w: %w", ErrLockTimeout, last)}
}

// onConn pins a connection, sets its lock timeout, runs fn, and puts the
// session's setting back before the connection returns to the pool.
func (r *Runner) onConn(ctx context.Context, fn func(*sql.Conn) error) error {
	c, err := r.db.Conn(ctx)
	if err != nil {
		return err
	}
	restore, err := r.im.lockTimeout(ctx, c, r.opts.LockTimeout)
	if err == nil {
		err = fn(c)
	}
	// The reset must run even when ctx is cancelled; a connection that
	// cannot be reset is discarded instead of returned to the pool.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if restore == nil || restore(rctx) != nil {
		_ = c.Raw(func(any) error { return driverBadConn })
	}
	_ = c.Close()
	return err
}

// execAlt runs the first of stmts the server accepts: a later one only
// when an earlier one is refused for its ALGORITHM (MySQL's INSTANT, then
// INPLACE with LOCK=NONE).
func (r *Runner) execAlt(ctx context.Context, stmts []string) error {
	var err error
	for i, s := range stmts {
		err = r.execDDL(ctx, s)
		if err == nil || ctx.Err() != nil || i == len(stmts)-1 {
			return err
		}
		var de *DDLError
		if !errors.As(err, &de) || !strings.Contains(strings.ToUpper(de.Err.Error()), "ALGORITHM") {
			return err
		}
	}
	return err
}

// catalog is the handle dialects read the catalog through.
func (r *Runner) catalog() queryer { return r.db }

// backoff returns the pause before retry number attempt (1-based): base
// doubled per attempt, capped at maxD, with jitter in [d/2, d) so that
// several runners or retries do not fall into step.
func backoff(base, maxD time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// sleepCtx pauses for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
