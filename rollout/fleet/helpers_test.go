package fleet_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/etcd"
	"github.com/batonhq/baton/rollout/fleet/etcd/etcdtest"
	"github.com/batonhq/baton/rollout/fleet/postgres"
)

// backend is one engine server a test runs on, and how to reach it.
type backend struct {
	name string
	addr string // host:port of the server, for links
	open func(t testing.TB, addr string) fleet.Engine
	env  []string // what a child process needs to open it (FLEET_ENGINE...)
	etcd *etcdtest.Server
	pg   *pgEnv
}

type pgEnv struct {
	dsn    *url.URL
	schema string
}

const testTTL = 2 * time.Second

// eachBackend runs f on embedded etcd and, with BATON_TEST_POSTGRES_DSN,
// on PostgreSQL.
func eachBackend(t *testing.T, f func(t *testing.T, b *backend)) {
	t.Run("etcd", func(t *testing.T) { f(t, etcdBackend(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, pgBackend(t)) })
}

func etcdBackend(t *testing.T) *backend { return etcdBackendB(t) }

func etcdBackendB(t testing.TB) *backend {
	srv := etcdtest.New(t, etcdtest.Options{})
	return &backend{
		name: "etcd", addr: srv.Endpoint(), etcd: srv,
		open: openEtcd,
		env:  []string{"FLEET_ENGINE=etcd", "FLEET_ENDPOINT=" + srv.Endpoint()},
	}
}

func etcdEngine(addr string) (*etcd.Engine, error) {
	return etcd.Open(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

func openEtcd(t testing.TB, addr string) fleet.Engine {
	e, err := etcdEngine(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func pgBackend(t *testing.T) *backend { return pgBackendB(t) }

func pgBackendB(t testing.TB) *backend {
	dsn := os.Getenv("BATON_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("BATON_TEST_POSTGRES_DSN is not set: skipping the fleet on PostgreSQL (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("BATON_TEST_POSTGRES_DSN: %v", err)
	}
	p := &pgEnv{dsn: u, schema: fmt.Sprintf("fleet_t%d", time.Now().UnixNano()%1e12)}
	t.Cleanup(func() { p.exec(t, `DROP SCHEMA IF EXISTS "`+p.schema+`" CASCADE`) })
	return &backend{
		name: "postgres", addr: u.Host, pg: p,
		open: func(t testing.TB, addr string) fleet.Engine { return p.open(t, addr, "") },
		env:  []string{"FLEET_ENGINE=postgres", "FLEET_ENDPOINT=" + dsn, "FLEET_SCHEMA=" + p.schema},
	}
}

// exec runs statements as the DSN's user.
func (p *pgEnv) exec(t testing.TB, stmts ...string) {
	t.Helper()
	db, err := sql.Open("pgx", p.dsn.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}

// open returns an engine at addr (empty: the DSN's), as user (empty: the
// DSN's).
func (p *pgEnv) open(t testing.TB, addr, user string) fleet.Engine {
	e, db, err := openPostgres(p.dsnFor(addr, user), p.schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); db.Close() })
	return e
}

func (p *pgEnv) dsnFor(addr, user string) string {
	v := *p.dsn
	if addr != "" {
		v.Host = addr
	}
	if user != "" {
		v.User = url.User(user)
	}
	q := v.Query()
	q.Set("connect_timeout", "2")
	v.RawQuery = q.Encode()
	return v.String()
}

func openPostgres(dsn, schema string) (*postgres.Engine, *sql.DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, nil, err
	}
	db.SetMaxOpenConns(4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := postgres.New(ctx, db, postgres.Options{Schema: schema, PollInterval: 500 * time.Millisecond, ReapInterval: 100 * time.Millisecond})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return e, db, nil
}

// join makes a member on e in namespace ns.
func join(t testing.TB, e fleet.Engine, ns, id, version string) *fleet.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := fleet.Join(ctx, e, fleet.Options{Namespace: ns, ID: id, Host: "test", Version: version, LeaseTTL: testTTL, ProbeInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func namespace(t testing.TB) string {
	return "t" + strings.ToLower(fmt.Sprintf("%x", time.Now().UnixNano()))
}

// waitFor waits for cond on ch-driven state with a deadline of its own.
func waitFor(t testing.TB, what string, d time.Duration, changed func() <-chan struct{}, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		ch := changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("waited %s for %s", d, what)
		}
	}
}
