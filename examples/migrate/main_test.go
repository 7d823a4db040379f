package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m) // every test closes its DBs
}

func TestEndToEndOnSQLite(t *testing.T) {
	d, db, err := open(context.Background(), filepath.Join(t.TempDir(), "ex.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// run returns an error unless writer errors and inconsistent rows are 0.
	if err := run(context.Background(), d, db, splitName(), "all", 3000, 2, 50*time.Millisecond, true, false); err != nil {
		t.Fatal(err)
	}
}

func TestPhaseByPhaseWithRollbackOnSQLite(t *testing.T) {
	d, db, err := open(context.Background(), filepath.Join(t.TempDir(), "ex.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, p := range []string{"start", "backfill", "switch", "rollback", "start", "backfill", "switch", "complete", "status"} {
		if err := run(context.Background(), d, db, splitName(), p, 2000, 1, 30*time.Millisecond, false, false); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
}

func TestLintCommand(t *testing.T) {
	if got := lintCmd([]string{"-dialect", "postgres", "../../migrate/testdata/lint/postgres/unsafe-set-not-null.sql"}); got != 1 {
		t.Fatalf("unsafe file: exit %d, want 1", got)
	}
	if got := lintCmd([]string{"-dialect", "mysql", "../../migrate/testdata/lint/mysql/safe-index-online.sql", "../../migrate/testdata/migrations/split_name.yaml"}); got != 0 {
		t.Fatalf("safe files: exit %d, want 0", got)
	}
}
