package migrate

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

var driverBadConn = driver.ErrBadConn

// Phase is where a migration stands. The zero value, PhaseNone, means the
// migration has not been started (or its state row does not exist).
type Phase string

// The phases in order. The -ing phases are recorded before the work of a
// step and replaced when it ends, so a crashed runner leaves a phase from
// which the same call resumes.
const (
	PhaseNone        Phase = ""
	PhaseExpanding   Phase = "expanding"
	PhaseExpanded    Phase = "expanded"
	PhaseBackfilling Phase = "backfilling"
	PhaseBackfilled  Phase = "backfilled"
	PhaseReadNew     Phase = "read_new"
	PhaseCompleting  Phase = "completing"
	PhaseComplete    Phase = "complete"
	PhaseRollingBack Phase = "rolling_back"
	PhaseRolledBack  Phase = "rolled_back"
)

// ReadNew reports whether application code should read the new columns:
// true from SwitchReads on (read_new, completing, complete). Before that,
// and during and after a rollback, read the old ones.
func (p Phase) ReadNew() bool {
	return p == PhaseReadNew || p == PhaseCompleting || p == PhaseComplete
}

// WriteOld reports whether application code that syncs columns itself
// (SyncApplication) writes the old columns: until SwitchReads. From then on
// nothing reads them and Complete will drop them.
func (p Phase) WriteOld() bool { return !p.ReadNew() }

// WriteNew reports whether application code that syncs columns itself
// (SyncApplication) writes the new columns: once they exist (expanded and
// later), not before Start nor after a Rollback.
func (p Phase) WriteNew() bool {
	switch p {
	case PhaseExpanded, PhaseBackfilling, PhaseBackfilled, PhaseReadNew, PhaseCompleting, PhaseComplete:
		return true
	}
	return false
}

// tables holds the quoted names of the state tables.
type tables struct {
	migrations, checkpoints, instances, locks, guard string
	// raw names, for catalog lookups and lock keys
	prefix string
}

func newTables(d Dialect, prefix string) tables {
	return tables{
		migrations:  d.quote(prefix + "migrations"),
		checkpoints: d.quote(prefix + "checkpoints"),
		instances:   d.quote(prefix + "instances"),
		locks:       d.quote(prefix + "locks"),
		guard:       d.quote(prefix + "guard"),
		prefix:      prefix,
	}
}

func stateDDL(d Dialect, t tables) []string {
	txt := d.textType()
	s := []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (name %s PRIMARY KEY, phase %s NOT NULL, version %s NOT NULL, started_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL)`, t.migrations, txt, txt, txt),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (migration %s NOT NULL, op INTEGER NOT NULL, min_key BIGINT NOT NULL, max_key BIGINT NOT NULL, last_key BIGINT NOT NULL, rows_done BIGINT NOT NULL, done INTEGER NOT NULL, updated_ms BIGINT NOT NULL, PRIMARY KEY (migration, op))`, t.checkpoints, txt),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (id %s PRIMARY KEY, version %s NOT NULL, started_ms BIGINT NOT NULL, heartbeat_ms BIGINT NOT NULL)`, t.instances, txt, txt),
	}
	if d == SQLite {
		s = append(s,
			fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_ms INTEGER NOT NULL)`, t.locks),
			fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (x INTEGER)`, t.guard))
	}
	return s
}

// ensureState creates the state tables if needed. Concurrent creators on
// PostgreSQL can collide in the catalog; one retry settles it.
func ensureState(ctx context.Context, db *sql.DB, d Dialect, t tables) error {
	for _, q := range stateDDL(d, t) {
		if _, err := db.ExecContext(ctx, q); err != nil {
			if _, err2 := db.ExecContext(ctx, q); err2 != nil {
				return fmt.Errorf("migrate: create state table: %w", err)
			}
		}
	}
	return nil
}

func nowMS() int64 { return time.Now().UnixMilli() }

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// readPhase returns the recorded phase of a migration (PhaseNone if none).
func readPhase(ctx context.Context, q queryer, d Dialect, t tables, name string) (Phase, error) {
	var p string
	err := q.QueryRowContext(ctx, d.rebind(`SELECT phase FROM `+t.migrations+` WHERE name = ?`), name).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return PhaseNone, nil
	}
	if err != nil {
		return PhaseNone, fmt.Errorf("migrate: read phase of %q: %w", name, err)
	}
	return Phase(p), nil
}

// CurrentPhase reads the phase of migration name, for application code that
// picks the column to read (Phase.ReadNew). It needs only the state table:
// opts.Dialect and opts.StateTablePrefix are used, the rest is ignored. A
// missing state table or row gives PhaseNone. It is one indexed SELECT;
// cache the result for a few seconds on hot paths.
func CurrentPhase(ctx context.Context, db *sql.DB, opts Options, name string) (Phase, error) {
	d := opts.Dialect
	if d == DialectAuto {
		var err error
		if d, err = DetectDialect(db); err != nil {
			return PhaseNone, err
		}
	}
	prefix := opts.StateTablePrefix
	if prefix == "" {
		prefix = DefaultStateTablePrefix
	}
	t := newTables(d, prefix)
	p, err := readPhase(ctx, db, d, t, name)
	if err != nil && ctx.Err() == nil {
		// Before any runner created the state table, the phase is none.
		if ok, terr := d.tableExists(ctx, db, prefix+"migrations"); terr == nil && !ok {
			return PhaseNone, nil
		}
	}
	return p, err
}

func (r *Runner) setPhase(ctx context.Context, p Phase) error {
	now := nowMS()
	var q string
	switch r.d {
	case PostgreSQL, SQLite:
		q = `INSERT INTO ` + r.t.migrations + ` (name, phase, version, started_ms, updated_ms) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET phase = excluded.phase, version = excluded.version, updated_ms = excluded.updated_ms`
	case MySQL:
		q = `INSERT INTO ` + r.t.migrations + ` (name, phase, version, started_ms, updated_ms) VALUES (?, ?, ?, ?, ?)
			ON DUPLICATE KEY UPDATE phase = VALUES(phase), version = VALUES(version), updated_ms = VALUES(updated_ms)`
	}
	if _, err := r.db.ExecContext(ctx, r.d.rebind(q), r.m.Name, string(p), r.m.Version, now, now); err != nil {
		return fmt.Errorf("migrate: record phase %q of %q: %w", p, r.m.Name, err)
	}
	r.log.InfoContext(ctx, "migrate: phase", "migration", r.m.Name, "phase", string(p))
	return nil
}

// runnerLock is held for the duration of one phase call.
type runnerLock struct {
	release func()
	// lost is closed if a SQLite lease could not be renewed.
	lost <-chan struct{}
	// key names the lock (the lease row on SQLite).
	key string
}

// acquireLock takes the runner lock, waiting (polling with backoff) until it
// is free or ctx is done. PostgreSQL: a session advisory lock on a pinned
// connection. MySQL/MariaDB: GET_LOCK on a pinned connection. Both are
// released by the server if the runner dies. SQLite: a lease row written
// under SQLite's writer lock and renewed every LeaseTTL/3; holding the
// writer lock itself for a whole backfill would stop every application
// write, so a killed runner's lease instead expires after LeaseTTL.
func (r *Runner) acquireLock(ctx context.Context) (*runnerLock, error) {
	key := r.t.prefix + "runner"
	for attempt := 1; ; attempt++ {
		l, ok, err := r.tryLock(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("migrate: runner lock: %w", err)
		}
		if ok {
			return l, nil
		}
		if attempt == 1 {
			r.log.InfoContext(ctx, "migrate: waiting for runner lock", "migration", r.m.Name, "lock", key)
		}
		if err := sleepCtx(ctx, backoff(50*time.Millisecond, time.Second, attempt)); err != nil {
			return nil, fmt.Errorf("%w (%s): %w", ErrLocked, key, err)
		}
	}
}

func (r *Runner) tryLock(ctx context.Context, key string) (*runnerLock, bool, error) {
	switch r.d {
	case PostgreSQL, MySQL:
		c, err := r.db.Conn(ctx)
		if err != nil {
			return nil, false, err
		}
		var ok sql.NullBool
		if r.d == PostgreSQL {
			err = c.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(hashtext($1))`, key).Scan(&ok)
		} else {
			var n sql.NullInt64
			err = c.QueryRowContext(ctx, `SELECT GET_LOCK(?, 0)`, key).Scan(&n)
			ok = sql.NullBool{Bool: n.Valid && n.Int64 == 1, Valid: true}
		}
		if err != nil || !ok.Bool {
			_ = c.Close()
			return nil, false, err
		}
		release := func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var q string
			if r.d == PostgreSQL {
				q = `SELECT pg_advisory_unlock(hashtext($1))`
			} else {
				q = `SELECT RELEASE_LOCK(?)`
			}
			if _, err := c.ExecContext(ctx, q, key); err != nil {
				// Closing the session releases the lock too.
				_ = c.Raw(func(any) error { return driverBadConn })
			}
			_ = c.Close()
		}
		return &runnerLock{release: release, key: key}, true, nil
	case SQLite:
		owner := randomID()
		now := nowMS()
		res, err := r.db.ExecContext(ctx, `INSERT INTO `+r.t.locks+` (name, owner, expires_ms) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_ms = excluded.expires_ms WHERE `+r.t.locks+`.expires_ms < ?`,
			key, owner, now+r.opts.LeaseTTL.Milliseconds(), now)
		if err != nil {
			if r.d.retryable(err) {
				return nil, false, nil
			}
			return nil, false, err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil, false, nil
		}
		lost := make(chan struct{})
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // owner: release below, which waits for done
			defer close(done)
			t := time.NewTicker(r.opts.LeaseTTL / 3)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				cctx, cancel := context.WithTimeout(context.Background(), r.opts.LeaseTTL/3)
				res, err := r.db.ExecContext(cctx, `UPDATE `+r.t.locks+` SET expires_ms = ? WHERE name = ? AND owner = ?`,
					nowMS()+r.opts.LeaseTTL.Milliseconds(), key, owner)
				cancel()
				if err != nil {
					continue // busy: try again next tick, the lease has slack
				}
				if n, _ := res.RowsAffected(); n != 1 {
					close(lost)
					return
				}
			}
		}()
		release := func() {
			close(stop)
			<-done
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = r.db.ExecContext(ctx, `DELETE FROM `+r.t.locks+` WHERE name = ? AND owner = ?`, key, owner)
		}
		return &runnerLock{release: release, lost: lost, key: key}, true, nil
	}
	return nil, false, fmt.Errorf("%w: dialect %v", ErrUnsupported, r.d)
}
