package migratetest_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
	_ "modernc.org/sqlite"

	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/migrate/migratetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m) // every test closes its DBs
}

func TestRunRenameOnSQLite(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "t.db")+"?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE accounts (id INTEGER PRIMARY KEY, login TEXT)`); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if _, err := db.Exec(`INSERT INTO accounts (login) VALUES (?)`, fmt.Sprintf("user%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	m := &migrate.Migration{Name: "rename_login", Operations: []migrate.Operation{
		migrate.RenameColumn{Table: "accounts", From: "login", To: "username"},
	}}
	r, err := migrate.New(db, m, migrate.Options{BatchSize: 100, MaxBatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	res, err := migratetest.Run(bounded(t), r, migratetest.Scenario{
		DB: db,
		Old: func(ctx context.Context, db *sql.DB, _ migrate.Phase) error {
			_, err := db.ExecContext(ctx, `UPDATE accounts SET login = ? WHERE id = ?`, fmt.Sprintf("old%d", rand.IntN(1e6)), 1+rand.IntN(1000))
			return err
		},
		New: func(ctx context.Context, db *sql.DB, p migrate.Phase) error {
			_, err := db.ExecContext(ctx, `INSERT INTO accounts (username) VALUES (?)`, fmt.Sprintf("new%d", rand.IntN(1e6)))
			return err
		},
		Check: func(ctx context.Context, db *sql.DB) (int, error) {
			var n int
			err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts WHERE username IS NOT login`).Scan(&n)
			return n, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Errors != 0 || res.Inconsistent != 0 || res.Ops == 0 {
		t.Fatalf("%+v", res)
	}
}

// A scenario whose new version keeps writing the old column after the
// switch must be caught: Complete drops it under the writer.
func TestRunCatchesWriterUsingDroppedColumn(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "t.db")+"?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE accounts (id INTEGER PRIMARY KEY, login TEXT)`); err != nil {
		t.Fatal(err)
	}
	m := &migrate.Migration{Name: "rename_login", Operations: []migrate.Operation{
		migrate.RenameColumn{Table: "accounts", From: "login", To: "username"},
	}}
	r, err := migrate.New(db, m, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := migratetest.Run(bounded(t), r, migratetest.Scenario{
		DB:  db,
		Old: func(ctx context.Context, db *sql.DB, _ migrate.Phase) error { return nil },
		New: func(ctx context.Context, db *sql.DB, p migrate.Phase) error {
			_, err := db.ExecContext(ctx, `INSERT INTO accounts (login, username) VALUES ('a', 'a')`)
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors == 0 {
		t.Fatalf("the broken new version went unnoticed: %+v", res)
	}
}

// bounded is a context that ends two minutes from now or with the test, so
// that a hang fails the test instead of waiting for go test's timeout.
func bounded(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
