// Command migrate runs an expand-contract schema change, splitting
// users.name into first_name and last_name, while simulated old-version
// writers (which know only name) and new-version writers (which read the
// phase to pick the column) keep writing. It prints what each phase ran and
// the rows backfilled, and ends with
//
//	writer errors: N, inconsistent rows: M
//
// Usage:
//
//	go run ./examples/migrate                         # end to end on ./migrate-example.db (SQLite)
//	go run ./examples/migrate -phase start            # one phase at a time: start, backfill, switch, complete, rollback
//	go run ./examples/migrate -db 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//	go run ./examples/migrate -db 'root@tcp(127.0.0.1:3306)/test'
//	go run ./examples/migrate lint [-dialect postgres] file.sql|file.yaml ...   # lint SQL or migration files
//	go run ./examples/migrate -lint                   # lint this example's own migration
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/migrate/migratetest"
)

const (
	table  = "example_users"
	prefix = "example_migrate_"
	name   = "split_user_name"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "lint" {
		os.Exit(lintCmd(os.Args[2:]))
	}
	dbFlag := flag.String("db", "migrate-example.db", "database: an SQLite file path, postgres://... or a MySQL DSN user@tcp(host:port)/db")
	phase := flag.String("phase", "all", "phase to run: all, start, backfill, switch, complete, rollback, status")
	rows := flag.Int("rows", 20000, "rows to seed when the table does not exist")
	writers := flag.Int("writers", 2, "writers per version (old and new)")
	settle := flag.Duration("settle", 300*time.Millisecond, "writers run this long before and after each phase")
	reset := flag.Bool("reset", false, "drop the example table and migration state first")
	lintSelf := flag.Bool("lint", false, "lint the example migration and exit")
	verbose := flag.Bool("v", false, "log every DDL statement and batch")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	d, db, err := open(ctx, *dbFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(2)
	}
	defer db.Close()
	m := splitName()
	if *lintSelf {
		fs := migrate.Lint(m, d)
		for _, f := range fs {
			fmt.Println(f)
		}
		fmt.Printf("%d finding(s)\n", len(fs))
		return
	}
	if err := run(ctx, d, db, m, *phase, *rows, *writers, *settle, *reset, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(1)
	}
}

// open opens dsn: postgres://... with pgx, user@tcp(host:port)/db (or
// mysql://...) with go-sql-driver/mysql, anything else as an SQLite file in
// WAL mode, and pings it so that a wrong address fails here.
func open(ctx context.Context, dsn string) (migrate.Dialect, *sql.DB, error) {
	d, driver := migrate.SQLite, "sqlite"
	switch {
	case strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://"):
		d, driver = migrate.PostgreSQL, "pgx"
	case strings.Contains(dsn, "@tcp(") || strings.HasPrefix(dsn, "mysql://"):
		d, driver, dsn = migrate.MySQL, "mysql", strings.TrimPrefix(dsn, "mysql://")
	default:
		abs, err := filepath.Abs(dsn)
		if err != nil {
			return d, nil, err
		}
		dsn = "file:" + abs + "?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return d, nil, err
	}
	db.SetMaxOpenConns(12)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return d, nil, fmt.Errorf("connect (%s): %w", d, err)
	}
	return d, db, nil
}

// splitName is the migration: name -> first_name + last_name, split at the
// first space, joined back with one space; version 2.0.0 reads the new
// columns.
func splitName() *migrate.Migration {
	m := migratetest.SplitName(table, name)
	m.Version = "2.0.0"
	return m
}

func q(d migrate.Dialect, s string) string {
	if d == migrate.MySQL {
		return "`" + s + "`"
	}
	return `"` + s + `"`
}

func ph(d migrate.Dialect, n int) string {
	if d == migrate.PostgreSQL {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

// ddlPrinter prints the DDL statements the runner reports at debug level.
type ddlPrinter struct {
	verbose bool
	mu      sync.Mutex
	ran     []string
}

func (h *ddlPrinter) Enabled(_ context.Context, l slog.Level) bool { return true }
func (h *ddlPrinter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Message == "migrate: ddl" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "statement" {
				h.ran = append(h.ran, a.Value.String())
			}
			return true
		})
	} else if h.verbose {
		fmt.Printf("    log: %s", r.Message)
		r.Attrs(func(a slog.Attr) bool { fmt.Printf(" %s=%v", a.Key, a.Value); return true })
		fmt.Println()
	}
	return nil
}
func (h *ddlPrinter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *ddlPrinter) WithGroup(string) slog.Handler      { return h }

func (h *ddlPrinter) note(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ran = append(h.ran, s)
}

func (h *ddlPrinter) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.ran
	h.ran = nil
	return out
}

func setup(ctx context.Context, d migrate.Dialect, db *sql.DB, rows int, reset bool) error {
	if reset {
		for _, t := range append([]string{table}, migrate.StateTables(prefix)...) {
			if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+q(d, t)); err != nil {
				return err
			}
		}
		if d == migrate.PostgreSQL {
			_, _ = db.ExecContext(ctx, `DROP FUNCTION IF EXISTS "baton_`+name+`_0_sync"()`)
		}
	}
	if _, err := db.ExecContext(ctx, "SELECT 1 FROM "+q(d, table)+" WHERE 1 = 0"); err == nil {
		return nil
	}
	ddl := map[migrate.Dialect]string{
		migrate.PostgreSQL: "CREATE TABLE " + q(d, table) + " (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name VARCHAR(200), email VARCHAR(200))",
		migrate.MySQL:      "CREATE TABLE " + q(d, table) + " (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(200), email VARCHAR(200))",
		migrate.SQLite:     "CREATE TABLE " + q(d, table) + " (id INTEGER PRIMARY KEY, name VARCHAR(200), email VARCHAR(200))",
	}[d]
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		return err
	}
	for i := 0; i < rows; i += 500 {
		var b strings.Builder
		b.WriteString("INSERT INTO " + q(d, table) + " (name, email) VALUES ")
		for j := i; j < min(i+500, rows); j++ {
			if j > i {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "('first%d last%d', 'user%d@example.com')", j, j, j)
		}
		if _, err := db.ExecContext(ctx, b.String()); err != nil {
			return err
		}
	}
	fmt.Printf("seeded %s with %d rows\n", table, rows)
	return nil
}

// fleet is the simulated application: old- and new-version writers.
type fleet struct {
	d      migrate.Dialect
	db     *sql.DB
	maxID  int
	errs   atomic.Int64
	ops    atomic.Int64
	first  atomic.Value
	sawNew atomic.Int64
}

func (f *fleet) fail(err error) {
	if f.errs.Add(1) == 1 {
		f.first.Store(err)
	}
}

func (f *fleet) writer(ctx context.Context, id int, old bool) {
	rng := rand.New(rand.NewPCG(uint64(id), 7))
	tb, d := q(f.d, table), f.d
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	acked := false
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var err error
		readNew := false
		if !old {
			p, perr := migrate.CurrentPhase(ctx, f.db, migrate.Options{Dialect: d, StateTablePrefix: prefix}, name)
			if perr != nil {
				if ctx.Err() == nil {
					f.fail(perr)
				}
				continue
			}
			readNew = p.ReadNew()
			if readNew && !acked {
				acked = true
				f.sawNew.Add(1)
			}
		}
		k := 1 + rng.IntN(f.maxID)
		switch {
		case n%3 == 0 && old:
			_, err = f.db.ExecContext(ctx, "INSERT INTO "+tb+" (name, email) VALUES ("+ph(d, 1)+", 'old@example.com')", fmt.Sprintf("old%d writer%d", n, id))
		case n%3 == 0:
			_, err = f.db.ExecContext(ctx, "INSERT INTO "+tb+" (first_name, last_name, email) VALUES ("+ph(d, 1)+", "+ph(d, 2)+", 'new@example.com')", fmt.Sprintf("new%d", n), fmt.Sprintf("writer%d", id))
		case n%3 == 1 && old:
			_, err = f.db.ExecContext(ctx, "UPDATE "+tb+" SET name = "+ph(d, 1)+" WHERE id = "+ph(d, 2), fmt.Sprintf("renamed%d by%d", n, id), k)
		case n%3 == 1:
			_, err = f.db.ExecContext(ctx, "UPDATE "+tb+" SET first_name = "+ph(d, 1)+", last_name = "+ph(d, 2)+" WHERE id = "+ph(d, 3), fmt.Sprintf("changed%d", n), fmt.Sprintf("by%d", id), k)
		case readNew:
			var a, b sql.NullString
			err = f.db.QueryRowContext(ctx, "SELECT first_name, last_name FROM "+tb+" WHERE id = "+ph(d, 1), k).Scan(&a, &b)
			if errors.Is(err, sql.ErrNoRows) {
				err = nil
			}
		default:
			var a sql.NullString
			err = f.db.QueryRowContext(ctx, "SELECT name FROM "+tb+" WHERE id = "+ph(d, 1), k).Scan(&a)
			if errors.Is(err, sql.ErrNoRows) {
				err = nil
			}
		}
		if err != nil && ctx.Err() == nil {
			f.fail(fmt.Errorf("%s writer %d: %w", map[bool]string{true: "old", false: "new"}[old], id, err))
		}
		f.ops.Add(1)
	}
}

// inconsistent counts rows whose new columns disagree with the old one
// (requireNew: or are still NULL). After Complete only the NULL check is
// possible.
func inconsistent(ctx context.Context, d migrate.Dialect, db *sql.DB, oldGone bool) (int64, error) {
	tb := q(d, table)
	if oldGone {
		var n int64
		err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+tb+" WHERE first_name IS NULL OR last_name IS NULL").Scan(&n)
		return n, err
	}
	down := `CASE WHEN last_name = '' THEN first_name ELSE first_name || ' ' || last_name END`
	if d == migrate.MySQL {
		down = `CASE WHEN last_name = '' THEN first_name ELSE CONCAT(first_name, ' ', last_name) END`
	}
	var n int64
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+tb+" WHERE (first_name IS NOT NULL OR last_name IS NOT NULL) AND (name IS NULL OR first_name IS NULL OR last_name IS NULL OR name <> "+down+")").Scan(&n)
	return n, err
}

func run(ctx context.Context, d migrate.Dialect, db *sql.DB, m *migrate.Migration, phase string, rows, writers int, settle time.Duration, reset, verbose bool) error {
	if err := setup(ctx, d, db, rows, reset); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	var maxID int
	if err := db.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 1) FROM "+q(d, table)).Scan(&maxID); err != nil {
		return err
	}
	logs := &ddlPrinter{verbose: verbose}
	var backfilled, filled atomic.Int64
	r, err := migrate.New(db, m, migrate.Options{
		Dialect: d, StateTablePrefix: prefix, Logger: slog.New(logs),
		OnProgress: func(p migrate.Progress) { backfilled.Store(p.Rows); filled.Store(p.Filled) },
	})
	if err != nil {
		return err
	}
	cur, err := r.Phase(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("dialect %s, migration %s, phase %q\n", d, name, cur)
	if phase == "status" {
		return nil
	}

	f := &fleet{d: d, db: db, maxID: maxID}
	oldInst, err := migrate.Register(ctx, db, "1.0.0", migrate.RegistryOptions{Dialect: d, StateTablePrefix: prefix, ID: "example-old"})
	if err != nil {
		return err
	}
	defer oldInst.Close()
	newInst, err := migrate.Register(ctx, db, "2.0.0", migrate.RegistryOptions{Dialect: d, StateTablePrefix: prefix, ID: "example-new"})
	if err != nil {
		return err
	}
	defer newInst.Close()

	oldCtx, stopOld := context.WithCancel(ctx)
	newCtx, stopNew := context.WithCancel(ctx)
	var oldWG, newWG sync.WaitGroup
	oldRunning := !cur.ReadNew() || cur == migrate.PhaseReadNew
	if cur == migrate.PhaseComplete || cur == migrate.PhaseCompleting {
		oldRunning = false
	}
	if oldRunning {
		for i := range writers {
			oldWG.Go(func() { f.writer(oldCtx, i, true) })
		}
	}
	newRunning := false
	startNew := func() {
		if newRunning {
			return
		}
		newRunning = true
		for i := range writers {
			newWG.Go(func() { f.writer(newCtx, 100+i, false) })
		}
	}
	// New code is deployed once the new columns exist.
	if cur != migrate.PhaseNone && cur != migrate.PhaseRolledBack && cur != migrate.PhaseExpanding {
		startNew()
	}
	defer func() { stopOld(); stopNew(); oldWG.Wait(); newWG.Wait() }()
	pause := func() error { return sleep(ctx, settle) }

	steps := []string{phase}
	if phase == "all" {
		steps = []string{"start", "backfill", "switch", "complete"}
	}
	var bad int64
	for _, s := range steps {
		if err := pause(); err != nil {
			return err
		}
		before := backfilled.Load()
		t0 := time.Now()
		switch s {
		case "start":
			err = r.Start(ctx)
			if err == nil {
				startNew()
			}
		case "backfill":
			err = r.Backfill(ctx)
		case "switch":
			err = r.SwitchReads(ctx)
			logs.note("phase read_new recorded: new-version code now reads first_name/last_name")
			// rollout would wait for the flag to reach every instance.
			for err == nil && newRunning && f.sawNew.Load() < int64(writers) && ctx.Err() == nil {
				if err = sleep(ctx, 5*time.Millisecond); err != nil {
					break
				}
			}
		case "complete":
			// The old version is drained first; Complete checks the registry.
			stopOld()
			oldWG.Wait()
			n, cerr := inconsistent(ctx, d, db, false)
			if cerr != nil {
				return cerr
			}
			bad += n
			if cerr := oldInst.Close(); cerr != nil {
				return cerr
			}
			err = r.Complete(ctx)
		case "rollback":
			// The new version is rolled back first; Rollback checks the
			// registry before it drops the columns that version uses.
			stopNew()
			newWG.Wait()
			if cerr := newInst.Close(); cerr != nil {
				return cerr
			}
			err = r.Rollback(ctx)
		default:
			return fmt.Errorf("unknown phase %q (want all, start, backfill, switch, complete, rollback, status)", s)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		p, _ := r.Phase(ctx)
		fmt.Printf("== %s -> phase %q in %v\n", s, p, time.Since(t0).Round(time.Millisecond))
		for _, st := range logs.take() {
			fmt.Printf("   ran: %s\n", strings.Join(strings.Fields(st), " "))
		}
		if s == "backfill" {
			fmt.Printf("   rows backfilled: %d (of %d rows visited; the others were already synced by the triggers)\n", filled.Load(), backfilled.Load()-before)
		}
	}
	if err := pause(); err != nil {
		return err
	}
	stopOld()
	stopNew()
	oldWG.Wait()
	newWG.Wait()
	p, err := r.Phase(ctx)
	if err != nil {
		return err
	}
	if p != migrate.PhaseRolledBack && p != migrate.PhaseNone && p != migrate.PhaseExpanding {
		oldGone := p == migrate.PhaseComplete
		requireAll := p == migrate.PhaseBackfilled || p.ReadNew()
		n, err := inconsistent(ctx, d, db, oldGone)
		if err != nil {
			return err
		}
		if !requireAll {
			n = 0 // not backfilled yet: NULL new columns are expected, mismatches were counted
			if m, err := inconsistent(ctx, d, db, false); err == nil {
				n = m
			}
		}
		if !oldGone || bad == 0 {
			bad += n
		}
	}
	fmt.Printf("writer ops: %d\n", f.ops.Load())
	if e, ok := f.first.Load().(error); ok {
		fmt.Printf("first writer error: %v\n", e)
	}
	fmt.Printf("writer errors: %d, inconsistent rows: %d\n", f.errs.Load(), bad)
	if f.errs.Load() != 0 || bad != 0 {
		return errors.New("the change was not clean")
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// lintCmd lints SQL scripts (.sql, as run by another tool: LintSQL) and
// migration files (.yaml/.yml/.json: Lint). Exit status 1 if anything is
// found.
func lintCmd(args []string) int {
	fs := flag.NewFlagSet("lint", flag.ExitOnError)
	dialect := fs.String("dialect", "postgres", "postgres, mysql or sqlite")
	_ = fs.Parse(args)
	d, err := migrate.ParseDialect(*dialect)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: migrate lint [-dialect postgres|mysql|sqlite] file.sql|file.yaml ...")
		return 2
	}
	total := 0
	for _, path := range fs.Args() {
		var found []migrate.Finding
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			m, err := migrate.LoadFile(path)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			found = migrate.Lint(m, d)
		default:
			b, err := os.ReadFile(path)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			found = migrate.LintSQL(d, string(b))
		}
		for _, f := range found {
			fmt.Printf("%s: %s\n", path, f)
		}
		total += len(found)
	}
	fmt.Printf("%d finding(s)\n", total)
	if total > 0 {
		return 1
	}
	return 0
}
