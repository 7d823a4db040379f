package dbopen_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/batonhq/baton/internal/dbopen"
	"github.com/batonhq/baton/migrate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestResolve(t *testing.T) {
	for _, c := range []struct{ in, driver, dsn string }{
		{"postgres://u@h:5432/db?sslmode=disable", dbopen.PostgreSQL, "postgres://u@h:5432/db?sslmode=disable"},
		{"postgresql://u@h/db", dbopen.PostgreSQL, "postgresql://u@h/db"},
		{"root@tcp(127.0.0.1:3306)/test", dbopen.MySQL, "root@tcp(127.0.0.1:3306)/test"},
		{"mysql://root@tcp(127.0.0.1:3306)/test", dbopen.MySQL, "root@tcp(127.0.0.1:3306)/test"},
	} {
		d, dsn, err := dbopen.Resolve(c.in)
		if err != nil || d != c.driver || dsn != c.dsn {
			t.Errorf("Resolve(%q) = %q, %q, %v; want %q, %q", c.in, d, dsn, err, c.driver, c.dsn)
		}
		if _, err := migrate.ParseDialect(d); err != nil {
			t.Errorf("driver %q is not a migrate dialect: %v", d, err)
		}
	}
	d, dsn, err := dbopen.Resolve("rel/x.db")
	if err != nil || d != dbopen.SQLite || !strings.HasPrefix(dsn, "file:/") || !strings.HasSuffix(dsn, "rel/x.db?"+dbopen.SQLitePragmas) {
		t.Errorf("Resolve(rel/x.db) = %q, %q, %v", d, dsn, err)
	}
	if _, _, err := dbopen.Resolve(""); err == nil {
		t.Error("empty DSN accepted")
	}
}

func TestOpenSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	d, db, err := dbopen.Open(context.Background(), path, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if d != dbopen.SQLite {
		t.Fatalf("driver %q", d)
	}
	var mode string
	var busy int
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q, %v", mode, err)
	}
	if err := db.QueryRow("PRAGMA busy_timeout").Scan(&busy); err != nil || busy != 20000 {
		t.Fatalf("busy_timeout %d, %v", busy, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}
	if _, _, err := dbopen.Open(context.Background(), filepath.Join(t.TempDir(), "missing", "t.db"), 0); err == nil {
		t.Fatal("SQLite file in a missing directory opened")
	}
}

func TestOpenServers(t *testing.T) {
	for _, c := range []struct{ env, driver string }{
		{"BATON_TEST_POSTGRES_DSN", dbopen.PostgreSQL},
		{"BATON_TEST_MYSQL_DSN", dbopen.MySQL},
	} {
		t.Run(c.driver, func(t *testing.T) {
			dsn := os.Getenv(c.env)
			if dsn == "" {
				t.Skip(c.env + " not set")
			}
			d, db, err := dbopen.Open(context.Background(), dsn, 2)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var one int
			if d != c.driver || db.QueryRow("SELECT 1").Scan(&one) != nil || one != 1 {
				t.Fatalf("driver %q, SELECT 1 = %d", d, one)
			}
		})
	}
	// A server that is not there fails in Open, not at the first query.
	if _, _, err := dbopen.Open(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=5", 1); err == nil {
		t.Fatal("unreachable server opened")
	}
}
