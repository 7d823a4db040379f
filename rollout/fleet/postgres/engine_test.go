package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/goleak"

	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/fleettest"
	"github.com/batonhq/baton/rollout/fleet/postgres"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testDB returns the CI database's DSN and a schema name unique to this
// run, dropped when t ends; it skips t without BATON_TEST_POSTGRES_DSN.
func testDB(t *testing.T) (*url.URL, string) {
	t.Helper()
	dsn := os.Getenv("BATON_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("BATON_TEST_POSTGRES_DSN is not set: skipping the PostgreSQL fleet engine tests (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("BATON_TEST_POSTGRES_DSN: %v", err)
	}
	schema := fmt.Sprintf("fleet_test_%d", time.Now().UnixNano()%1e12)
	t.Cleanup(func() {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP SCHEMA IF EXISTS "`+schema+`" CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return u, schema
}

func opener(u *url.URL, schema string) func(t *testing.T, addr string) fleet.Engine {
	return func(t *testing.T, addr string) fleet.Engine {
		v := *u
		v.Host = addr
		q := v.Query()
		q.Set("connect_timeout", "2")
		v.RawQuery = q.Encode()
		db, err := sql.Open("pgx", v.String())
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(6)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		e, err := postgres.New(ctx, db, postgres.Options{Schema: schema, PollInterval: 500 * time.Millisecond, ReapInterval: 100 * time.Millisecond})
		if err != nil {
			db.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close(); db.Close() })
		return e
	}
}

func TestConformance(t *testing.T) {
	u, schema := testDB(t)
	fleettest.TestEngine(t, fleettest.Backend{Addr: u.Host, Open: opener(u, schema)})
}
