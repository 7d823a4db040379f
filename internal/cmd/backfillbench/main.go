// Command backfillbench measures migrate's backfill: for each table size it
// loads a users table, starts a split-name Transform, runs old- and
// new-version writers at a fixed rate, and backfills, reporting rows/s, the
// batch transaction time distribution, the writers' worst latency and
// errors, and the rows left inconsistent.
//
//	go run ./internal/cmd/backfillbench -db "$BATON_TEST_POSTGRES_DSN"                       # 10k,100k,300k,1M
//	go run ./internal/cmd/backfillbench -db "$BATON_TEST_POSTGRES_DSN" -sizes 10000,100000   # CI size
//	go run ./internal/cmd/backfillbench -sizes 1000000 -check=false -tail                   # what the slowest batches follow
//	go run ./internal/cmd/backfillbench -key uuid -sizes 100000,1000000                     # a UUID key (or composite)
//	go run ./internal/cmd/backfillbench -amplification -sizes 100000                        # write amplification of the triggers
//
// -key picks the table's key: int (one BIGINT column), uuid (deterministic
// UUIDs spread over the key space, so the pass visits them in an order
// unrelated to insertion), or composite (tenant, seq). -amplification also
// times an UPDATE of every row before Start (no trigger) and after the
// backfill (the dual-write trigger deriving the new columns), and prints
// the ratio.
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
	keyKind := flag.String("key", "int", "the table's key: int, uuid or composite")
	ampl := flag.Bool("amplification", false, "also time an UPDATE of every row without and with the triggers")
	flag.Parse()
	k, ok := keys[*keyKind]
	if !ok {
		fmt.Fprintf(os.Stderr, "backfillbench: -key %q: want int, uuid or composite\n", *keyKind)
		os.Exit(2)
	}
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
	fmt.Printf("dialect %s, key %s, %d writers at %d ops/s each, lock timeout %v, batch target %v, throttle %v\n", d, *keyKind, *writers, *rate, *lockTimeout, *target, *throttle)
	fmt.Printf("%10s %10s %10s %8s %9s %9s %9s %11s %11s %8s %8s\n", "rows", "seconds", "rows/s", "batches", "p50 ms", "p99 ms", "max ms", "writer p99", "writer max", "w.errs", "bad rows")
	failed := false
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "backfillbench: bad size %q\n", s)
			os.Exit(2)
		}
		res, err := run(ctx, d, db, wdb, k, n, *writers, *rate, *lockTimeout, *target, *throttle, *ampl)
		if err != nil {
			fmt.Fprintln(os.Stderr, "backfillbench:", err)
			os.Exit(1)
		}
		fmt.Printf("%10d %10.2f %10.0f %8d %9.1f %9.1f %9.1f %9.1fms %9.1fms %8d %8d\n", n, res.elapsed.Seconds(), float64(res.rows)/res.elapsed.Seconds(),
			len(res.batches), ms(pct(res.batches, 50)), ms(pct(res.batches, 99)), ms(pct(res.batches, 100)), ms(pct(res.writerLat, 99)), ms(res.writerMax), res.writerErrs, res.bad)
		if *tail {
			printTail(res)
		}
		if res.ampl[0] > 0 {
			fmt.Printf("    UPDATE of all %d rows: %.0f ms without triggers, %.0f ms with them: %.2fx\n", n, ms(res.ampl[0]), ms(res.ampl[1]), float64(res.ampl[1])/float64(res.ampl[0]))
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

// shift is k.where with placeholders numbered after the first n.
func shift(d migrate.Dialect, k keyKind, n int) string {
	parts := make([]string, len(k.cols))
	for i, c := range k.cols {
		parts[i] = c + " = " + ph(d, n+i+1)
	}
	return strings.Join(parts, " AND ")
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
	ampl       [2]time.Duration // UPDATE of every row without, with triggers
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

// keyKind is a table key: its column definitions, the SQL that computes
// the key of generated row g (per dialect), the WHERE condition and
// arguments of row g, and the key of a new row.
type keyKind struct {
	name string
	def  map[migrate.Dialect]string
	gen  map[migrate.Dialect][]string // column expressions over g (x on MySQL and SQLite)
	cols []string
	// args are the key values of row g.
	args func(g int64) []any
}

// spread is the first UUID group of row g: g scattered over 32 bits.
func spread(g int64) int64 { return (g * 2654435761) % 4294967296 }

func uuidOf(g int64) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", spread(g), g) }

var keys = map[string]keyKind{
	"int": {name: "int",
		def:  map[migrate.Dialect]string{migrate.PostgreSQL: "id BIGINT PRIMARY KEY", migrate.MySQL: "id BIGINT PRIMARY KEY", migrate.SQLite: "id INTEGER PRIMARY KEY"},
		gen:  map[migrate.Dialect][]string{migrate.PostgreSQL: {"g"}, migrate.MySQL: {"x"}, migrate.SQLite: {"x"}},
		cols: []string{"id"}, args: func(g int64) []any { return []any{g} }},
	"uuid": {name: "uuid",
		def: map[migrate.Dialect]string{migrate.PostgreSQL: "id UUID PRIMARY KEY", migrate.MySQL: "id CHAR(36) PRIMARY KEY", migrate.SQLite: "id TEXT PRIMARY KEY"},
		gen: map[migrate.Dialect][]string{
			migrate.PostgreSQL: {"(lpad(to_hex((g * 2654435761) % 4294967296), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid"},
			migrate.MySQL:      {"CONCAT(LOWER(LPAD(HEX((x * 2654435761) % 4294967296), 8, '0')), '-0000-4000-8000-', LOWER(LPAD(HEX(x), 12, '0')))"},
			migrate.SQLite:     {"printf('%08x-0000-4000-8000-%012x', (x * 2654435761) % 4294967296, x)"}},
		cols: []string{"id"}, args: func(g int64) []any { return []any{uuidOf(g)} }},
	"composite": {name: "composite",
		def:  map[migrate.Dialect]string{migrate.PostgreSQL: "tenant INTEGER NOT NULL, seq BIGINT NOT NULL", migrate.MySQL: "tenant INTEGER NOT NULL, seq BIGINT NOT NULL", migrate.SQLite: "tenant INTEGER NOT NULL, seq BIGINT NOT NULL"},
		gen:  map[migrate.Dialect][]string{migrate.PostgreSQL: {"g % 16", "g"}, migrate.MySQL: {"x % 16", "x"}, migrate.SQLite: {"x % 16", "x"}},
		cols: []string{"tenant", "seq"}, args: func(g int64) []any { return []any{g % 16, g} }},
}

// where is the condition selecting one row by key, placeholders from 1.
func (k keyKind) where(d migrate.Dialect) string {
	parts := make([]string, len(k.cols))
	for i, c := range k.cols {
		parts[i] = c + " = " + ph(d, i+1)
	}
	return strings.Join(parts, " AND ")
}

func load(ctx context.Context, d migrate.Dialect, db *sql.DB, k keyKind, n int) error {
	var stmts []string
	tb := q(d, table)
	def, pk := k.def[d], ""
	if len(k.cols) > 1 {
		pk = ", PRIMARY KEY (" + strings.Join(k.cols, ", ") + ")"
	}
	cols := strings.Join(k.cols, ", ")
	gen := strings.Join(k.gen[d], ", ")
	switch d {
	case migrate.PostgreSQL:
		stmts = []string{
			"DROP TABLE IF EXISTS " + tb,
			"CREATE TABLE " + tb + " (" + def + ", name TEXT, email TEXT" + pk + ")",
			fmt.Sprintf("INSERT INTO %s (%s, name, email) SELECT %s, 'f' || g || ' l' || g, 'u' || g || '@example.com' FROM generate_series(1, %d) g", tb, cols, gen, n),
			"VACUUM (ANALYZE) " + tb,
		}
	case migrate.MySQL:
		stmts = []string{
			"DROP TABLE IF EXISTS " + tb,
			"CREATE TABLE " + tb + " (" + def + ", name VARCHAR(200), email VARCHAR(200)" + pk + ")",
			"SET SESSION cte_max_recursion_depth = 100000000",
			"SET SESSION max_recursive_iterations = 100000000",
			fmt.Sprintf("INSERT INTO %s (%s, name, email) WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < %d) SELECT %s, CONCAT('f', x, ' l', x), CONCAT('u', x, '@example.com') FROM g", tb, cols, n, gen),
		}
	default:
		stmts = []string{
			"DROP TABLE IF EXISTS " + tb,
			"CREATE TABLE " + tb + " (" + def + ", name TEXT, email TEXT" + pk + ")",
			fmt.Sprintf("WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < %d) INSERT INTO %s (%s, name, email) SELECT %s, 'f' || x || ' l' || x, 'u' || x || '@example.com' FROM g", n, tb, cols, gen),
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

// updateAll times an UPDATE of every row's old column: the faster of two,
// each after a VACUUM on PostgreSQL, so that both sides of the comparison
// start from a warm cache and no dead rows.
func updateAll(ctx context.Context, d migrate.Dialect, db *sql.DB) (time.Duration, error) {
	tb := q(d, table)
	set := "name = name || 'x'"
	if d == migrate.MySQL {
		set = "name = CONCAT(name, 'x')"
	}
	best := time.Duration(0)
	for range 2 {
		if d == migrate.PostgreSQL {
			if _, err := db.ExecContext(ctx, "VACUUM "+tb); err != nil {
				return 0, err
			}
		}
		t0 := time.Now()
		if _, err := db.ExecContext(ctx, "UPDATE "+tb+" SET "+set); err != nil {
			return 0, err
		}
		if el := time.Since(t0); best == 0 || el < best {
			best = el
		}
	}
	return best, nil
}

func run(ctx context.Context, d migrate.Dialect, db, wdb *sql.DB, k keyKind, n, writers, rate int, lockTimeout, target, throttle time.Duration, ampl bool) (*result, error) {
	const prefix = "bb_"
	for _, s := range migrate.StateTables(prefix) {
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+q(d, s)); err != nil {
			return nil, err
		}
	}
	if err := load(ctx, d, db, k, n); err != nil {
		return nil, err
	}
	res := &result{}
	if ampl {
		var err error
		if res.ampl[0], err = updateAll(ctx, d, db); err != nil {
			return nil, err
		}
	}
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
	var next atomic.Int64
	next.Store(int64(n))
	keyCols := strings.Join(k.cols, ", ")
	keyPH := make([]string, len(k.cols))
	for i := range keyPH {
		keyPH[i] = ph(d, i+1)
	}
	at := func(i int) string { return ph(d, len(k.cols)+i) }
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
				row := k.args(1 + int64(rng.IntN(n)))
				var stmt string
				var args []any
				old := w%2 == 0
				switch {
				case i%3 == 0 && old:
					stmt, args = "INSERT INTO "+tb+" ("+keyCols+", name, email) VALUES ("+strings.Join(keyPH, ", ")+", "+at(1)+", 'w@x')", append(k.args(next.Add(1)), fmt.Sprintf("o%d p%d", w, i))
				case i%3 == 0:
					stmt, args = "INSERT INTO "+tb+" ("+keyCols+", first_name, last_name, email) VALUES ("+strings.Join(keyPH, ", ")+", "+at(1)+", "+at(2)+", 'w@x')", append(k.args(next.Add(1)), fmt.Sprintf("n%d", w), fmt.Sprintf("m%d", i))
				case i%3 == 1 && old:
					stmt, args = "UPDATE "+tb+" SET name = "+ph(d, 1)+" WHERE "+shift(d, k, 1), append([]any{fmt.Sprintf("u%d v%d", w, i)}, row...)
				case i%3 == 1:
					stmt, args = "UPDATE "+tb+" SET first_name = "+ph(d, 1)+", last_name = "+ph(d, 2)+" WHERE "+shift(d, k, 2), append([]any{fmt.Sprintf("a%d", w), fmt.Sprintf("b%d", i)}, row...)
				default:
					stmt, args = "SELECT COUNT(*) FROM "+tb+" WHERE "+k.where(d), row
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
	if ampl {
		if res.ampl[1], err = updateAll(ctx, d, db); err != nil {
			return nil, err
		}
	}
	if err := r.Rollback(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	_, _ = db.ExecContext(ctx, "DROP TABLE IF EXISTS "+tb)
	return res, nil
}
