package bind_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/bind"
	"github.com/batonhq/baton/rollout/rollouttest"
)

func TestCanaryAdapters(t *testing.T) {
	ok := httpOK()
	s, err := canary.New(canary.Options{Stable: ok, Canary: ok, Window: time.Hour, Resolution: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	w := bind.CanaryWeights{Splitter: s}
	if err := w.SetWeight(ctx, 2500); err != nil || s.Weight() != 2500 {
		t.Fatalf("SetWeight 2500: err %v, weight %d", err, s.Weight())
	}
	if err := w.SetWeight(ctx, 10001); err == nil || s.Weight() != 2500 {
		t.Errorf("SetWeight 10001: err %v, weight %d; want a refusal and no change", err, s.Weight())
	}
	if err := (bind.CanaryWeights{}).SetWeight(ctx, 1); err == nil {
		t.Error("zero CanaryWeights accepted a weight")
	}
	// The weight a rollout set is kept with the release: a new splitter
	// (a restarted or upgraded process) gets it back through Restore.
	store, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	plan := rollout.Plan{ID: "weights", Steps: []rollout.Step{rollout.SetWeight(w, 5000)}}
	r, err := rollout.New(ctx, plan, rollout.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	s2, err := canary.New(canary.Options{Stable: ok, Canary: ok})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	r2, err := rollout.New(ctx, plan, rollout.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Restore(ctx, bind.CanaryWeights{Splitter: s2}); err != nil || s2.Weight() != 5000 {
		t.Fatalf("restored weight %d, err %v; want 5000", s2.Weight(), err)
	}

	// The analysis leaves out the interval in which the weight changed:
	// this splitter starts at its weight.
	s3, err := canary.New(canary.Options{Stable: ok, Canary: ok, Weight: 5000, Window: time.Hour, Resolution: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	a := &bind.CanaryAnalyzer{Splitter: s3, Options: canary.AnalysisOptions{Looks: 3}}
	v, reason, err := a.Analyze(ctx)
	if err != nil || v != rollout.Inconclusive || !strings.Contains(reason, "inconclusive") {
		t.Fatalf("no traffic: %v %q %v, want inconclusive", v, reason, err)
	}
	m := s3.Metrics()
	for i := range 1000 {
		d := time.Duration(10+i%7) * time.Millisecond
		m.Record(canary.Stable, d, false)
		m.Record(canary.Canary, d, false)
	}
	if v, reason, err = a.Analyze(ctx); err != nil || v != rollout.Pass {
		t.Fatalf("identical variants: %v %q %v, want pass", v, reason, err)
	}
	// The canary gets three times slower: the latency checks fail it.
	for i := range 1500 {
		m.Record(canary.Stable, time.Duration(10+i%7)*time.Millisecond, false)
		m.Record(canary.Canary, time.Duration(30+i%7)*time.Millisecond, false)
	}
	v, reason, meas, err := a.AnalyzeMeasured(ctx)
	if err != nil || v != rollout.Fail || !strings.Contains(reason, "worse than stable") {
		t.Fatalf("slow canary: %v %q %v, want fail with canary's reason", v, reason, err)
	}
	// The figures behind the verdict, for the console's charts.
	if meas == nil || meas.Weight != 5000 || meas.Canary.Requests == 0 || meas.Canary.P99Seconds < 0.03 ||
		meas.Stable.P99Seconds > 0.02 || meas.Canary.ErrorRate != 0 {
		t.Fatalf("measurement %+v", meas)
	}
}

func boolFlag() flags.Config {
	return flags.Config{Flags: map[string]flags.Flag{
		"new-ui": {Variants: map[string]any{"on": true, "off": false}, Default: "off"},
	}}
}

// share evaluates the flag for n keys and returns the fraction served true.
func share(s *flags.Store, key string, n int) float64 {
	on := 0
	for i := range n {
		if s.Bool(key, flags.EvalContext{TargetingKey: fmt.Sprintf("user-%d", i)}, false) {
			on++
		}
	}
	return float64(on) / float64(n)
}

func TestFlagStoreDurable(t *testing.T) {
	ctx := context.Background()
	stateFile := filepath.Join(t.TempDir(), "flags-state.json")
	open := func() *flags.Store {
		s, err := flags.New(flags.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Set("code", boolFlag()); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s1 := open()
	f1, err := bind.NewFlagRamps(bind.FlagRampsOptions{Store: s1, StateFile: stateFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := f1.SetPercent(ctx, "new-ui", 50); err != nil {
		t.Fatal(err)
	}
	if got := share(s1, "new-ui", 4000); got < 0.45 || got > 0.55 {
		t.Fatalf("at 50%%, %.3f of users get the flag", got)
	}
	if err := f1.SetPercent(ctx, "missing", 10); !errors.Is(err, flags.ErrFlagNotFound) {
		t.Errorf("unknown flag: %v, want ErrFlagNotFound", err)
	}
	if err := f1.SetPercent(ctx, "new-ui", 101); err == nil {
		t.Error("101% accepted")
	}

	// A second process (an upgrade, or a restart after a crash) builds its
	// own Store: the ramp is where the first left it, for the same users.
	s2 := open()
	if got := share(s2, "new-ui", 4000); got != 0 {
		t.Fatalf("a fresh store serves %.3f before the state is applied", got)
	}
	f2, err := bind.NewFlagRamps(bind.FlagRampsOptions{Store: s2, StateFile: stateFile})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		ec := flags.EvalContext{TargetingKey: fmt.Sprintf("user-%d", i)}
		if a, b := s1.Bool("new-ui", ec, false), s2.Bool("new-ui", ec, false); a != b {
			t.Fatalf("user-%d: %v in the first process, %v in the second", i, a, b)
		}
	}
	if err := f2.Disable(ctx, "new-ui"); err != nil {
		t.Fatal(err)
	}
	if got := share(s2, "new-ui", 1000); got != 0 {
		t.Fatalf("disabled flag still served to %.3f", got)
	}
	s3 := open()
	if _, err := bind.NewFlagRamps(bind.FlagRampsOptions{Store: s3, StateFile: stateFile}); err != nil {
		t.Fatal(err)
	}
	if st := s3.Status("new-ui"); !st.Disabled {
		t.Errorf("the kill switch did not survive: %+v", st)
	}
	if err := f2.SetPercent(ctx, "new-ui", 100); err != nil {
		t.Fatal(err)
	}
	if got := share(s2, "new-ui", 1000); got != 1 {
		t.Errorf("at 100%% after a disable, %.3f of users get the flag", got)
	}
}

func TestMigrateAdapters(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "m.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE adapt_users (id INTEGER PRIMARY KEY, name TEXT)`); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := db.Exec(`INSERT INTO adapt_users (name) VALUES (?)`, fmt.Sprintf("Ada Lovelace%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	m := &migrate.Migration{Name: "adapt_upper", Version: "v2", Operations: []migrate.Operation{migrate.Transform{
		Table: "adapt_users",
		Add:   []migrate.Column{{Name: "name_upper", Type: "TEXT"}},
		Up:    map[string]migrate.Expr{"name_upper": {SQL: "upper(name)"}},
		Down:  map[string]migrate.Expr{"name": {SQL: "lower(name_upper)"}},
	}}}
	opts := migrate.Options{StateTablePrefix: "adapt_mig_"}
	r, err := migrate.New(db, m, opts)
	if err != nil {
		t.Fatal(err)
	}
	p := bind.MigrateRunners{"adapt_upper": r}
	phase := func() migrate.Phase {
		ph, err := r.Phase(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ph
	}
	for _, step := range []func(context.Context, string) error{p.Start, p.Backfill, p.SwitchReads} {
		if err := step(ctx, "adapt_upper"); err != nil {
			t.Fatal(err)
		}
	}
	if ph := phase(); !ph.ReadNew() {
		t.Fatalf("after switch-reads the phase is %q", ph)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM adapt_users WHERE name_upper = upper(name)`).Scan(&n); err != nil || n != 50 {
		t.Fatalf("backfilled rows: %d %v", n, err)
	}
	// Rollback waits while an instance of the new version heartbeats: it
	// gives up with migrate's refusal when ctx ends, and goes through once
	// the instance has left.
	v2live, err := migrate.Register(ctx, db, "v2", migrate.RegistryOptions{StateTablePrefix: "adapt_mig_", Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 3*bind.RollbackPoll)
	err = p.Rollback(short, "adapt_upper")
	cancel()
	if !errors.Is(err, migrate.ErrNewVersionsAlive) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("rollback with a v2 instance alive: %v, want the refusal and the deadline", err)
	}
	if ph := phase(); !ph.ReadNew() {
		t.Fatalf("a refused rollback left phase %q", ph)
	}
	done := make(chan error, 1)
	go func() { done <- p.Rollback(ctx, "adapt_upper") }()
	if err := v2live.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("rollback after the v2 instance left: %v", err)
	}
	// Rollback again: a no-op, as at-least-once steps need.
	if err := p.Rollback(ctx, "adapt_upper"); err != nil {
		t.Fatal(err)
	}
	if ph := phase(); ph.ReadNew() || ph != migrate.PhaseRolledBack {
		t.Fatalf("after rollback the phase is %q", ph)
	}
	if err := p.Start(ctx, "other"); err == nil || !strings.Contains(err.Error(), `"other"`) {
		t.Errorf("unknown migration: %v", err)
	}

	reg := bind.MigrateRegistry{Runner: r}
	regOpts := migrate.RegistryOptions{StateTablePrefix: "adapt_mig_", Interval: time.Hour}
	v1, err := migrate.Register(ctx, db, "v1", regOpts)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := migrate.Register(ctx, db, "v2", regOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	count := func(current string) int {
		n, err := reg.OldVersionsAlive(ctx, current)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count("v2"); n != 1 {
		t.Errorf("with v1 and v2 alive, %d instance(s) other than v2, want 1", n)
	}
	v1.Close()
	if n := count("v2"); n != 0 {
		t.Errorf("after v1 closed, %d instance(s) other than v2, want 0", n)
	}
	if n := count("v3"); n != 1 {
		t.Errorf("%d instance(s) other than v3, want 1", n)
	}
}

// runToEnd runs plan on a fresh file store with a fake clock that moves by
// step whenever the runner waits on it, for at most a minute.
func runToEnd(t *testing.T, plan rollout.Plan, version string, step time.Duration) error {
	t.Helper()
	store, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	clock := rollouttest.NewClock(time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC))
	r, err := rollout.New(context.Background(), plan, rollout.Options{Store: store, Clock: clock, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	go func() {
		for clock.WaitForWaiters(ctx, 1) == nil {
			clock.Advance(step)
		}
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute + 5*time.Second):
		t.Fatalf("the rollout did not end within a minute; state: %+v", r.Status())
		return nil
	}
}

func httpOK() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
}

// ExpandContract on a real migrate.Runner: the contract needs the migration
// in phase read_new, so the plan records the switch of reads after the
// read flag's ramp.
func TestExpandContractWithMigrate(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "ec.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE ec_users (id INTEGER PRIMARY KEY, name TEXT)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO ec_users (name) VALUES ('Ada'), ('Alan')`); err != nil {
		t.Fatal(err)
	}
	m := &migrate.Migration{Name: "ec_upper", Version: "v2", Operations: []migrate.Operation{migrate.Transform{
		Table: "ec_users",
		Add:   []migrate.Column{{Name: "name_upper", Type: "TEXT"}},
		Up:    map[string]migrate.Expr{"name_upper": {SQL: "upper(name)"}},
		Down:  map[string]migrate.Expr{"name": {SQL: "lower(name_upper)"}},
		Drop:  []string{"name"},
	}}}
	r, err := migrate.New(db, m, migrate.Options{StateTablePrefix: "ec_mig_"})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := flags.New(flags.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if err := fs.Set("code", flags.Config{Flags: map[string]flags.Flag{
		"ec-read-new": {Variants: map[string]any{"on": true, "off": false}, Default: "off"},
	}}); err != nil {
		t.Fatal(err)
	}
	fr, err := bind.NewFlagRamps(bind.FlagRampsOptions{Store: fs})
	if err != nil {
		t.Fatal(err)
	}
	steps, err := rollout.ExpandContract(rollout.ExpandContractOptions{
		Migrator: bind.MigrateRunners{"ec_upper": r}, Migration: "ec_upper",
		Flags: fr, ReadFlag: "ec-read-new",
		Registry: bind.MigrateRegistry{Runner: r}, Version: "v2", Poll: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := runToEnd(t, rollout.Plan{ID: "ec-real", Steps: steps}, "v2", time.Second); err != nil {
		t.Fatal(err)
	}
	if ph, err := r.Phase(ctx); err != nil || ph != migrate.PhaseComplete {
		t.Fatalf("phase %q %v, want complete", ph, err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM ec_users WHERE name_upper IN ('ADA', 'ALAN')`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows after the contract: %d %v", n, err)
	}
	if _, err := db.Exec(`SELECT name FROM ec_users`); err == nil {
		t.Error("the old column is still there after the contract")
	}
}

// At 100% no request goes to stable: the analyzer judges the canary by
// its absolute limits, and says so when it has none. (Before, it was
// always inconclusive there: stable had no samples to compare with.)
func TestCanaryAnalyzerAt100Percent(t *testing.T) {
	ok := httpOK()
	// The analysis leaves out the interval in which the weight changed:
	// this splitter starts at 100%.
	s, err := canary.New(canary.Options{Stable: ok, Canary: ok, Weight: canary.MaxWeight, Window: time.Hour, Resolution: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	m := s.Metrics()
	for i := range 200 {
		m.Record(canary.Canary, time.Duration(10+i%7)*time.Millisecond, i%50 == 0) // 2% errors
	}
	limited := &bind.CanaryAnalyzer{Splitter: s, Options: canary.AnalysisOptions{MaxErrorRate: 0.05, MaxP99: time.Second}}
	if v, reason, err := limited.Analyze(ctx); err != nil || v != rollout.Pass || !strings.Contains(reason, "judged by its absolute limits") {
		t.Fatalf("within its limits: %v %q %v, want pass", v, reason, err)
	}
	strict := &bind.CanaryAnalyzer{Splitter: s, Options: canary.AnalysisOptions{MaxErrorRate: 0.01}}
	if v, reason, err := strict.Analyze(ctx); err != nil || v != rollout.Fail || !strings.Contains(reason, "canary at 100%") {
		t.Fatalf("over its error limit: %v %q %v, want fail", v, reason, err)
	}
	none := &bind.CanaryAnalyzer{Splitter: s}
	if v, reason, err := none.Analyze(ctx); err != nil || v != rollout.Inconclusive || !strings.Contains(reason, "no stable traffic to compare with") {
		t.Fatalf("no limits: %v %q %v, want inconclusive saying why", v, reason, err)
	}

}

// The tracker sums a migration's tables for the console's backfill step.
func TestBackfillTrackerReportsProgress(t *testing.T) {
	var b bind.BackfillTracker
	m := bind.WithBackfillProgress(bind.MigrateRunners{}, &b)
	br, ok := m.(rollout.BackfillReporter)
	if !ok {
		t.Fatal("WithBackfillProgress does not report")
	}
	if _, ok := br.BackfillProgress("m"); ok {
		t.Fatal("progress before any batch")
	}
	b.Record(migrate.Progress{Migration: "m", Table: "a", Rows: 250, Fraction: 0.25, RowsPerSecond: 100, ETA: 7 * time.Second})
	b.Record(migrate.Progress{Migration: "m", Table: "b", Rows: 500, Fraction: 0.5, RowsPerSecond: 50, ETA: 10 * time.Second})
	b.Record(migrate.Progress{Migration: "m", Table: "a", Rows: 500, Fraction: 0.5, RowsPerSecond: 100, ETA: 5 * time.Second})
	b.Record(migrate.Progress{Migration: "other", Table: "a", Rows: 1})
	p, ok := br.BackfillProgress("m")
	if !ok || p.Rows != 1000 || p.Total != 2000 || p.Fraction != 0.5 || p.RowsPerSecond != 150 || p.ETASeconds != 10 {
		t.Fatalf("progress %+v %v", p, ok)
	}
	if p, _ := br.BackfillProgress("other"); p.Total != 0 || p.Rows != 1 {
		t.Fatalf("a backfill with no share done has no total: %+v", p)
	}
}
