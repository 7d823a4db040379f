// Command backfillbench measures migrate's backfill: for each table size it
// loads a users table, starts a split-name Transform, runs old- and
// new-version writers at a fixed rate, and backfills, reporting rows/s, the
// batch transaction time distribution, the writers' worst latency and
// errors, and the rows left inconsistent.
//
//	go run ./internal/cmd/backfillbench -db "$BATON_TEST_POSTGRES_DSN"                       # 10k,100k,300k,1M
//	go run ./internal/cmd/backfillbench -db "$BATON_TEST_POSTGRES_DSN" -sizes 10000,100000   # CI size
//	go run ./internal/cmd/backfillbench -sizes 1000000 -check=false -tail                   # what the slowest batches follow
//
// The writers' sessions have the same lock timeout as the migration, so a
// writer that waits longer than that for a lock fails. It exits non-zero if
// a writer saw an SQL error (lock timeouts included), a row is
// inconsistent, or (with -check) the p99 batch time is above 100 ms.
// "writer max" is the slowest write end to end, I/O stalls included.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonhq/baton/internal/dbopen"
	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/migrate/migratetest"
)

func main() {
	dsn := flag.String("db", os.Getenv("BATON_TEST_POSTGRES_DSN"), "database: postgres://..., mysql user@tcp(host)/db, or an SQLite file path")
	sizes := flag.String("sizes", "10000,100000,300000,1000000", "comma-separated table sizes")
	writers := flag.Int("writers", 4, "concurrent writers (half old version, half new)")
	rate := flag.Int("rate", 250, "operations per second per writer (2/3 writes: insert or update)")
	lockTimeout := flag.Duration("lock-timeout", migrate.DefaultLockTimeout, "lock timeout of DDL and batches")
	target := flag.Duration("target", migrate.DefaultBatchTarget, "batch time target")
	throttle := flag.Duration("throttle", 0, "pause between batches (Options.Throttle)")
	check := flag.Bool("check", true, "fail if the p99 batch time is above 100ms (writer errors, including lock waits beyond the lock timeout, always fail)")
	timeout := flag.Duration("timeout", 20*time.Minute, "overall bound")
	tail := flag.Bool("tail", false, "print the batches at or above the p99 with their size and the batch before them")
	flag.Parse()
	if *dsn == "" {
		fmt.Fprintln(os.Stderr, "backfillbench: -db or BATON_TEST_POSTGRES_DSN required")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	driver, db, err := dbopen.Open(ctx, *dsn, 16)
	if err != nil {
		fmt.Fprintln(os.Stderr, "backfillbench:", err)
		os.Exit(2)
	}
	defer db.Close()
	d, _ := migrate.ParseDialect(driver) // dbopen's driver names are dialect names
	// The writers' own sessions carry the lock timeout too: a writer that
	// waits longer than that for a lock (behind a DDL statement or a batch)
	// fails with a lock timeout, which counts as a writer error.
	wdsn := *dsn
	switch d {
	case migrate.PostgreSQL:
		wdsn = withParam(wdsn, fmt.Sprintf("lock_timeout=%d", lockTimeout.Milliseconds()))
	case migrate.MySQL:
		wdsn = withParam(wdsn, fmt.Sprintf("innodb_lock_wait_timeout=%d&lock_wait_timeout=%d", secs(*lockTimeout), secs(*lockTimeout)))
	}
	_, wdb, err := dbopen.Open(ctx, wdsn, 16)
	if err != nil {
		fmt.Fprintln(os.Stderr, "backfillbench: writers:", err)
		os.Exit(2)
	}
	defer wdb.Close()
	fmt.Printf("dialect %s, %d writers at %d ops/s each, lock timeout %v, batch target %v, throttle %v\n", d, *writers, *rate, *lockTimeout, *target, *throttle)
	fmt.Printf("%10s %10s %10s %8s %9s %9s %9s %11s %11s %8s %8s\n", "rows", "seconds", "rows/s", "batches", "p50 ms", "p99 ms", "max ms", "writer p99", "writer max", "w.errs", "bad rows")
	failed := false
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "backfillbench: bad size %q\n", s)
			os.Exit(2)
		}
		res, err := run(ctx, d, db, wdb, n, *writers, *rate, *lockTimeout, *target, *throttle)
		if err != nil {
			fmt.Fprintln(os.Stderr, "backfillbench:", err)
			os.Exit(1)
		}
		fmt.Printf("%10d %10.2f %10.0f %8d %9.1f %9.1f %9.1f %9.1fms %9.1fms %8d %8d\n", n, res.elapsed.Seconds(), float64(res.rows)/res.elapsed.Seconds(),
			len(res.batches), ms(pct(res.batches, 50)), ms(pct(res.batches, 99)), ms(pct(res.batches, 100)), ms(pct(res.writerLat, 99)), ms(res.writerMax), res.writerErrs, res.bad)
		if *tail {
			printTail(res)
		}
		if res.writerErrs > 0 || res.bad > 0 {
			failed = true
			if res.firstErr != nil {
				fmt.Fprintln(os.Stderr, "first writer error:", res.firstErr)
			}
		}
		if *check && pct(res.batches, 99) > 100*time.Millisecond {
			fmt.Fprintln(os.Stderr, "backfillbench: p99 batch time above 100ms")
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

func withParam(dsn, kv string) string {
	if strings.Contains(dsn, "?") {
		return dsn + "&" + kv
	}
	return dsn + "?" + kv
}

func secs(d time.Duration) int64 { return max(int64((d+time.Second-1)/time.Second), 1) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

// printTail shows what precedes the slowest batches: a slow batch right
// after a fast one that grew the size points at overshoot; a slow batch of
// ordinary size points at the server (I/O, checkpoints).
func printTail(res *result) {
	if s := res.server; s != nil {
		fmt.Printf("    server during the backfill: %d checkpoint(s) (%d requested by WAL volume), %d buffers written by backends\n", s.checkpoints, s.requested, s.backendWrites)
	}
	p99 := pct(res.batches, 99)
	for i, d := range res.batches {
		if d < p99 {
			continue
		}
		prev := "-"
		if i > 0 {
			prev = fmt.Sprintf("%d rows in %.1f ms", res.sizes[i-1], ms(res.batches[i-1]))
		}
		fmt.Printf("    tail batch %d/%d: %d rows in %.1f ms (%.0f rows/ms); before it: %s\n",
			i+1, len(res.batches), res.sizes[i], ms(d), float64(res.sizes[i])/max(ms(d), 0.001), prev)
	}
}

type result struct {
	rows       int64
	elapsed    time.Duration
	batches    []time.Duration
	sizes      []int
	writerMax  time.Duration
	writerLat  []time.Duration
	writerErrs int64
	firstErr   error
	bad        int64
	server     *serverStats
}

// serverStats are PostgreSQL's counters of checkpoints and of buffers that
// backends had to write themselves to find a free one (the backfill's own
// I/O stalls), from pg_stat_bgwriter.
type serverStats struct {
	checkpoints, requested, backendWrites int64
}

func pgStats(ctx context.Context, d migrate.Dialect, db *sql.DB) *serverStats {
	if d != migrate.PostgreSQL {
		return nil
	}
	var s serverStats
	if err := db.QueryRowContext(ctx, `SELECT checkpoints_timed + checkpoints_req, checkpoints_req, buffers_backend FROM pg_stat_bgwriter`).
		Scan(&s.checkpoints, &s.requested, &s.backendWrites); err != nil {
		return nil // PostgreSQL 17 moved these; the figures are optional
	}
	return &s
}

func (s *serverStats) minus(o *serverStats) *serverStats {
	if s == nil || o == nil {
		return nil
	}
	return &serverStats{s.checkpoints - o.checkpoints, s.requested - o.requested, s.backendWrites - o.backendWrites}
}

const table = "bb_users"

func q(d migrate.Dialect, s string) string {
	if d == migrate.MySQL {
		return "`" + s + "`"
	}
	return `"` + s + `"`
}

func ph(d migrate.Dialect, n int) string {
	if d == migrate.PostgreSQL {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

func load(ctx context.Context, d migrate.Dialect, db *sql.DB, n int) error {
	var stmts []string
	tb := q(d, table)
	switch d {
	case migrate.PostgreSQL:
		stmts = []string{
			"DROP TABLE IF EXISTS " + tb,
			"CREATE TABLE " + tb + " (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name TEXT, email TEXT)",
			fmt.Sprintf("INSERT INTO %s (name, email) SELECT 'f' || g || ' l' || g, 'u' || g || '@example.com' FROM generate_series(1, %d) g", tb, n),
			"VACUUM (ANALYZE) " + tb,
		}
	case migrate.MySQL:
		stmts = []string{
			"DROP TABLE IF EXISTS " + tb,
			"CREATE TABLE " + tb + " (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(200), email VARCHAR(200))",
			"SET SESSION cte_max_recursion_depth = 100000000",
			"SET SESSION max_recursive_iterations = 100000000",
			fmt.Sprintf("INSERT INTO %s (name, email) WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < %d) SELECT CONCAT('f', x, ' l', x), CONCAT('u', x, '@example.com') FROM g", tb, n),
		}
	default:
		stmts = []string{
			"DROP TABLE IF EXISTS " + tb,
			"CREATE TABLE " + tb + " (id INTEGER PRIMARY KEY, name TEXT, email TEXT)",
			fmt.Sprintf("WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < %d) INSERT INTO %s (name, email) SELECT 'f' || x || ' l' || x, 'u' || x || '@example.com' FROM g", n, tb),
		}
	}
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, s := range stmts {
		if _, err := c.ExecContext(ctx, s); err != nil {
			if d == migrate.MySQL && strings.Contains(s, "SET SESSION") {
				continue // MySQL knows cte_max_recursion_depth, MariaDB max_recursive_iterations
			}
			return fmt.Errorf("load: %w", err)
		}
	}
	return nil
}

func run(ctx context.Context, d migrate.Dialect, db, wdb *sql.DB, n, writers, rate int, lockTimeout, target, throttle time.Duration) (*result, error) {
	const prefix = "bb_"
	for _, s := range []string{"migrations", "checkpoints", "instances", "locks", "guard"} {
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+q(d, prefix+s)); err != nil {
			return nil, err
		}
	}
	if err := load(ctx, d, db, n); err != nil {
		return nil, err
	}
	res := &result{}
	var mu sync.Mutex
	r, err := migrate.New(db, migratetest.SplitName(table, "bb_split"), migrate.Options{
		Dialect: d, StateTablePrefix: prefix, LockTimeout: lockTimeout, BatchTarget: target, Throttle: throttle,
		OnProgress: func(p migrate.Progress) {
			mu.Lock()
			res.batches = append(res.batches, p.BatchDuration)
			res.sizes = append(res.sizes, p.BatchSize)
			res.rows = p.Rows
			mu.Unlock()
		},
	})
	if err != nil {
		return nil, err
	}
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var worst atomic.Int64
	var errs atomic.Int64
	var firstErr atomic.Value
	tb := q(d, table)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(n)))
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-wctx.Done():
					return
				case <-tick.C:
				}
				id := 1 + rng.IntN(n)
				var stmt string
				var args []any
				old := w%2 == 0
				switch {
				case i%3 == 0 && old:
					stmt, args = "INSERT INTO "+tb+" (name, email) VALUES ("+ph(d, 1)+", 'w@x')", []any{fmt.Sprintf("o%d p%d", w, i)}
				case i%3 == 0:
					stmt, args = "INSERT INTO "+tb+" (first_name, last_name, email) VALUES ("+ph(d, 1)+", "+ph(d, 2)+", 'w@x')", []any{fmt.Sprintf("n%d", w), fmt.Sprintf("m%d", i)}
				case i%3 == 1 && old:
					stmt, args = "UPDATE "+tb+" SET name = "+ph(d, 1)+" WHERE id = "+ph(d, 2), []any{fmt.Sprintf("u%d v%d", w, i), id}
				case i%3 == 1:
					stmt, args = "UPDATE "+tb+" SET first_name = "+ph(d, 1)+", last_name = "+ph(d, 2)+" WHERE id = "+ph(d, 3), []any{fmt.Sprintf("a%d", w), fmt.Sprintf("b%d", i), id}
				default:
					stmt, args = "SELECT COUNT(*) FROM "+tb+" WHERE id = "+ph(d, 1), []any{id}
				}
				t0 := time.Now()
				_, err := wdb.ExecContext(wctx, stmt, args...)
				el := time.Since(t0)
				if err != nil && wctx.Err() == nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				mu.Lock()
				res.writerLat = append(res.writerLat, el)
				mu.Unlock()
				for {
					cur := worst.Load()
					if int64(el) <= cur || worst.CompareAndSwap(cur, int64(el)) {
						break
					}
				}
			}
		})
	}
	// Only the writes made while the backfill runs are measured.
	mu.Lock()
	res.writerLat = res.writerLat[:0]
	mu.Unlock()
	worst.Store(0)
	before := pgStats(ctx, d, db)
	t0 := time.Now()
	err = r.Backfill(ctx)
	res.elapsed = time.Since(t0)
	res.server = pgStats(ctx, d, db).minus(before)
	stop()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	res.writerMax = time.Duration(worst.Load())
	res.writerErrs = errs.Load()
	if e, ok := firstErr.Load().(error); ok {
		res.firstErr = e
	}
	down := `CASE WHEN last_name = '' THEN first_name ELSE first_name || ' ' || last_name END`
	if d == migrate.MySQL {
		down = `CASE WHEN last_name = '' THEN first_name ELSE CONCAT(first_name, ' ', last_name) END`
	}
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+tb+" WHERE first_name IS NULL OR last_name IS NULL OR name IS NULL OR name <> "+down).Scan(&res.bad); err != nil {
		return nil, err
	}
	if err := r.Rollback(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	_, _ = db.ExecContext(ctx, "DROP TABLE IF EXISTS "+tb)
	return res, nil
}
