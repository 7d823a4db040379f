package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/batonhq/baton/migrate"
)

// findingLog records the rule and severity of each "lint finding" log record.
type findingLog struct {
	mu    sync.Mutex
	rules []string
}

func (h *findingLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *findingLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "migrate: lint finding" {
		return nil
	}
	var rule, sev string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "rule":
			rule = a.Value.String()
		case "severity":
			sev = a.Value.String()
		}
		return true
	})
	h.mu.Lock()
	h.rules = append(h.rules, rule+"/"+sev)
	h.mu.Unlock()
	return nil
}
func (h *findingLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *findingLog) WithGroup(string) slog.Handler      { return h }
func (h *findingLog) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.rules
	h.rules = nil
	return out
}

// TestLintModeAtRunTime: RawSQL is linted when Start and Complete are about
// to run it. LintWarn (the zero value) logs and runs, LintOff neither logs
// nor refuses, LintRefuse refuses error-severity findings before anything
// runs and logs warnings.
func TestLintModeAtRunTime(t *testing.T) {
	d := migrate.SQLite
	db := openDB(t, d)
	const table = "mt_lint_t"
	if _, err := db.Exec("CREATE TABLE " + table + " (id INTEGER PRIMARY KEY, a INT)"); err != nil {
		t.Fatal(err)
	}
	ctx := boundedCtx(t)
	logs := &findingLog{}
	runner := func(name string, mode migrate.LintMode, ops ...migrate.Operation) *migrate.Runner {
		t.Helper()
		r, err := migrate.New(db, &migrate.Migration{Name: name, Operations: ops},
			migrate.Options{LintMode: mode, Logger: slog.New(logs)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	rename := func(from, to string) migrate.RawSQL {
		return migrate.RawSQL{Up: "ALTER TABLE " + table + " RENAME COLUMN " + from + " TO " + to}
	}
	// A warning only: a data change in the same script as DDL.
	warnOnly := migrate.RawSQL{Up: "CREATE INDEX IF NOT EXISTS mt_lint_i ON " + table + " (a);\nUPDATE " + table + " SET a = a"}

	// Refuse: the rename is an error; nothing runs, the phase stays none.
	r := runner("mt_lint_refuse", migrate.LintRefuse, warnOnly, rename("a", "b"))
	err := r.Start(ctx)
	var le *migrate.LintError
	if !errors.As(err, &le) || !errors.Is(err, migrate.ErrUnsafe) || le.Action != "Start" ||
		len(le.Findings) != 1 || le.Findings[0].Name != "rename-column" || le.Findings[0].Operation != 1 {
		t.Fatalf("Start with LintRefuse: %v", err)
	}
	if p, _ := r.Phase(ctx); p != migrate.PhaseNone || !hasColumn(t, db, d, table, "a") || hasIndex(t, db, "mt_lint_i") {
		t.Fatalf("refused Start ran something: phase %q", p)
	}
	if got := logs.take(); len(got) != 1 || got[0] != "backfill-in-ddl-transaction/warning" {
		t.Fatalf("refused Start logged %v, want the warning", got)
	}

	// Refuse with warnings only: runs, logs.
	if err := runner("mt_lint_warnonly", migrate.LintRefuse, warnOnly).Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := logs.take(); len(got) != 1 || got[0] != "backfill-in-ddl-transaction/warning" || !hasIndex(t, db, "mt_lint_i") {
		t.Fatalf("LintRefuse with a warning only: logged %v", got)
	}

	// The zero LintMode warns and runs.
	if err := runner("mt_lint_warn", 0, rename("a", "b")).Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := logs.take(); len(got) != 1 || got[0] != "rename-column/error" || !hasColumn(t, db, d, table, "b") {
		t.Fatalf("LintWarn: logged %v", got)
	}

	// LintOff: runs, logs nothing.
	if err := runner("mt_lint_off", migrate.LintOff, rename("b", "c")).Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := logs.take(); len(got) != 0 || !hasColumn(t, db, d, table, "c") {
		t.Fatalf("LintOff: logged %v", got)
	}

	// Contract RawSQL is linted by Complete, not Start.
	contract := rename("c", "d")
	contract.Contract = true
	r = runner("mt_lint_contract", migrate.LintRefuse,
		migrate.AddColumn{Table: table, Column: migrate.Column{Name: "e", Type: "INT"}}, contract)
	for _, f := range []func(context.Context) error{r.Start, r.Backfill, r.SwitchReads} {
		if err := f(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := logs.take(); len(got) != 0 {
		t.Fatalf("expand side of the contract migration logged %v", got)
	}
	err = r.Complete(ctx)
	if !errors.As(err, &le) || le.Action != "Complete" || len(le.Findings) != 1 || le.Findings[0].Name != "rename-column" {
		t.Fatalf("Complete with LintRefuse: %v", err)
	}
	if p, _ := r.Phase(ctx); p != migrate.PhaseReadNew || !hasColumn(t, db, d, table, "c") {
		t.Fatalf("refused Complete ran something: phase %q", p)
	}
}

// hasIndex reports whether the SQLite database has an index called name.
func hasIndex(t *testing.T, db *sql.DB, name string) bool {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = ?`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}
