package migrate

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

var driverBadConn = driver.ErrBadConn

// tables holds the quoted names of the state tables.
type tables struct {
	migrations, backfill, instances, observed, saved, locks, guard string
	// raw names, for catalog lookups and lock keys
	prefix string
}

func newTables(d Dialect, prefix string) tables {
	return tables{
		migrations: d.quote(prefix + "migrations"),
		backfill:   d.quote(prefix + "backfill"),
		instances:  d.quote(prefix + "instances"),
		observed:   d.quote(prefix + "observed"),
		saved:      d.quote(prefix + "saved"),
		locks:      d.quote(prefix + "locks"),
		guard:      d.quote(prefix + "guard"),
		prefix:     prefix,
	}
}

// StateTables lists the names of the state tables for prefix (zero:
// DefaultStateTablePrefix), for operators and tests that drop them.
func StateTables(prefix string) []string {
	if prefix == "" {
		prefix = DefaultStateTablePrefix
	}
	var out []string
	for _, s := range []string{"migrations", "backfill", "instances", "observed", "saved", "locks", "guard"} {
		out = append(out, prefix+s)
	}
	return out
}

func stateDDL(d Dialect, t tables) []string {
	txt := d.impl().textType()
	return append([]string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (name %s PRIMARY KEY, phase %s NOT NULL, version %s NOT NULL, started_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL)`, t.migrations, txt, txt, txt),
		// A backfill checkpoint per table: keys are JSON arrays of typed
		// values (see keys.go), so that any key type resumes.
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (migration %s NOT NULL, op INTEGER NOT NULL, last_key TEXT, max_key TEXT, total BIGINT NOT NULL, rows_done BIGINT NOT NULL, done INTEGER NOT NULL, updated_ms BIGINT NOT NULL, PRIMARY KEY (migration, op))`, t.backfill, txt),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (id %s PRIMARY KEY, version %s NOT NULL, started_ms BIGINT NOT NULL, heartbeat_ms BIGINT NOT NULL)`, t.instances, txt, txt),
		// The phase each instance acts on, per migration (Instance.Observe).
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (instance %s NOT NULL, migration %s NOT NULL, phase %s NOT NULL, observed_ms BIGINT NOT NULL, PRIMARY KEY (instance, migration))`, t.observed, txt, txt, txt),
		// What Start changed on the old columns and what the new ones
		// carry, per operation, so that Complete and Rollback (after a
		// crash too) act on the schema as it was before Start.
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (migration %s NOT NULL, op INTEGER NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (migration, op))`, t.saved, txt),
	}, d.impl().extraStateDDL(t)...)
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
// cache the result for a few seconds on hot paths, and report the phase
// acted on with Instance.Observe (or read it with Instance.Phase, which
// does both) so that Complete waits for the cache to catch up.
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
		if ok, terr := d.impl().tableExists(ctx, db, prefix+"migrations"); terr == nil && !ok {
			return PhaseNone, nil
		}
	}
	return p, err
}

// setPhase records p, in a write that confirms the runner lock is held.
func (r *Runner) setPhase(ctx context.Context, p Phase) error {
	now := r.im.nowMS()
	q := r.d.rebind(r.im.upsert(r.t.migrations, []string{"name", "phase", "version", "started_ms", "updated_ms"},
		[]string{"?", "?", "?", now, now}, []string{"name"}, []string{"phase", "version", "updated_ms"}))
	err := r.lockedWrite(ctx, fmt.Sprintf("record phase %q of %q", p, r.m.Name), func(tx queryer) error {
		_, err := tx.ExecContext(ctx, q, r.m.Name, string(p), r.m.Version)
		return err
	})
	if err != nil {
		return err
	}
	r.log.InfoContext(ctx, "migrate: phase", "migration", r.m.Name, "phase", string(p))
	return nil
}

// loadSaved reads the saved payload of operation op into v; false if none.
func (r *Runner) loadSaved(ctx context.Context, op int, v any) (bool, error) {
	var s string
	err := r.db.QueryRowContext(ctx, r.d.rebind(`SELECT payload FROM `+r.t.saved+` WHERE migration = ? AND op = ?`), r.m.Name, op).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("migrate: read saved schema of operation %d: %w", op, err)
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return false, fmt.Errorf("migrate: saved schema of operation %d: %w", op, err)
	}
	return true, nil
}

// storeSaved writes the saved payload of operation op (once: a row that
// exists is kept, since it describes the schema before the first Start).
func (r *Runner) storeSaved(ctx context.Context, op int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return r.lockedWrite(ctx, "save schema", func(tx queryer) error {
		var n int
		if err := tx.QueryRowContext(ctx, r.d.rebind(`SELECT count(*) FROM `+r.t.saved+` WHERE migration = ? AND op = ?`), r.m.Name, op).Scan(&n); err != nil || n > 0 {
			return err
		}
		_, err := tx.ExecContext(ctx, r.d.rebind(`INSERT INTO `+r.t.saved+` (migration, op, payload) VALUES (?, ?, ?)`), r.m.Name, op, string(b))
		return err
	})
}

// forget deletes the migration's checkpoints and saved schema (after a
// rollback: a later Start starts afresh).
func (r *Runner) forget(ctx context.Context) error {
	return r.lockedWrite(ctx, "forget checkpoints", func(tx queryer) error {
		for _, t := range []string{r.t.backfill, r.t.saved} {
			if _, err := tx.ExecContext(ctx, r.d.rebind(`DELETE FROM `+t+` WHERE migration = ?`), r.m.Name); err != nil {
				return err
			}
		}
		return nil
	})
}
