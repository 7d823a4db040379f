package rollout_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/rollouttest"
)

func TestFileStoreConformance(t *testing.T) {
	dir := t.TempDir()
	rollouttest.TestStore(t, func(t *testing.T) rollout.Store {
		s, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// Two FileStores on one directory (as two processes would have) still
// compare-and-swap: the flock covers what the in-process mutex cannot.
func TestFileStoreTwoInstancesConformance(t *testing.T) {
	dir := t.TempDir()
	rollouttest.TestStore(t, func(t *testing.T) rollout.Store {
		return &twoStores{a: mustFileStore(t, dir), b: mustFileStore(t, dir)}
	})
}

// twoStores alternates calls between two store instances on the same
// directory, so concurrent writers go through different instances.
type twoStores struct {
	a, b rollout.Store
	n    atomic.Int64
}

func (s *twoStores) pick() rollout.Store {
	if s.n.Add(1)%2 == 0 {
		return s.a
	}
	return s.b
}

func (s *twoStores) Load(ctx context.Context, id string) ([]byte, int64, error) {
	return s.pick().Load(ctx, id)
}

func (s *twoStores) Save(ctx context.Context, id string, prev int64, data []byte) (int64, error) {
	return s.pick().Save(ctx, id, prev, data)
}

func mustFileStore(t *testing.T, dir string) *rollout.FileStore {
	s, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFileStoreLeavesNoTempFilesAndReportsCorruption(t *testing.T) {
	dir := t.TempDir()
	s := mustFileStore(t, dir)
	ctx := context.Background()
	for i := int64(0); i < 5; i++ {
		if _, err := s.Save(ctx, "r1", i, []byte(`{"i":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temp file left: %s", e.Name())
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "r2.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(ctx, "r2"); err == nil || !strings.Contains(err.Error(), "r2.json is corrupt") {
		t.Fatalf("corrupt file: %v", err)
	}
	if _, err := s.Save(ctx, "r3", 0, []byte("not json")); err == nil {
		t.Fatal("non-JSON document accepted")
	}
}

func sqlConformance(t *testing.T, driver, dsn string, d rollout.Dialect) {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	table := fmt.Sprintf("baton_rollout_conf_%d", time.Now().UnixNano()%1e12)
	s, err := rollout.NewSQLStore(ctx, db, rollout.SQLStoreOptions{Dialect: d, Table: table})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec("DROP TABLE " + table) })
	// Creating it again is fine (IF NOT EXISTS).
	if _, err := rollout.NewSQLStore(ctx, db, rollout.SQLStoreOptions{Dialect: d, Table: table}); err != nil {
		t.Fatal(err)
	}
	rollouttest.TestStore(t, func(*testing.T) rollout.Store { return s })

	// A Rollout runs on it end to end.
	e := newEnv(t)
	r, err := rollout.New(ctx, rollout.Plan{ID: "sql-run", Steps: []rollout.Step{rollout.SetWeight(e.w, 100), rollout.SetWeight(e.w, 200)}}, rollout.Options{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	r2, err := rollout.New(ctx, rollout.Plan{ID: "sql-run", Steps: []rollout.Step{rollout.SetWeight(e.w, 100), rollout.SetWeight(e.w, 200)}}, rollout.Options{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if st := r2.Status(); st.Phase != rollout.PhaseSucceeded || st.Revision < 3 {
		t.Fatalf("reloaded: %s rev %d", st.Phase, st.Revision)
	}
}

func TestSQLiteStore(t *testing.T) {
	dsn := "file:" + filepath.Join(t.TempDir(), "state.db") + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"
	sqlConformance(t, "sqlite", dsn, rollout.SQLite)
}

func TestPostgresStore(t *testing.T) {
	dsn := os.Getenv("BATON_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("BATON_TEST_POSTGRES_DSN not set")
	}
	sqlConformance(t, "pgx", dsn, rollout.PostgreSQL)
}

func TestMySQLStore(t *testing.T) {
	dsn := os.Getenv("BATON_TEST_MYSQL_DSN")
	if dsn == "" {
		t.Skip("BATON_TEST_MYSQL_DSN not set")
	}
	sqlConformance(t, "mysql", dsn, rollout.MySQL)
}

func TestSQLStoreRejectsBadOptions(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := rollout.NewSQLStore(ctx, db, rollout.SQLStoreOptions{Dialect: rollout.SQLite, Table: "x; DROP TABLE y"}); err == nil || !strings.Contains(err.Error(), "table name") {
		t.Fatalf("bad table: %v", err)
	}
	if _, err := rollout.NewSQLStore(ctx, db, rollout.SQLStoreOptions{Dialect: "oracle"}); err == nil || !strings.Contains(err.Error(), "unknown dialect") {
		t.Fatalf("bad dialect: %v", err)
	}
}
