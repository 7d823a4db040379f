//go:build unix

package fleethost

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the PostgreSQL driver
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/etcd"
	"github.com/batonhq/baton/rollout/fleet/etcd/etcdtest"
	"github.com/batonhq/baton/rollout/fleet/postgres"
)

// TTL is the lease TTL of the test members, and Probe their probe
// interval.
const (
	TTL   = 2 * time.Second
	Probe = 200 * time.Millisecond
)

// Backend is one engine server a test runs on.
type Backend struct {
	Name string
	Env  []string // what a child needs to open it (FLEET_ENGINE, ...)
	Etcd *etcdtest.Server
	pg   *url.URL
	// Schema is the PostgreSQL engine's schema.
	Schema string
}

// Each runs f on embedded etcd and, with BATON_TEST_POSTGRES_DSN, on
// PostgreSQL (in a schema of its own, dropped at the end).
func Each(t *testing.T, f func(t *testing.T, b *Backend)) {
	t.Run("etcd", func(t *testing.T) {
		srv := etcdtest.New(t, etcdtest.Options{})
		f(t, &Backend{Name: "etcd", Etcd: srv, Env: []string{"FLEET_ENGINE=etcd", "FLEET_ENDPOINT=" + srv.Endpoint()}})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := os.Getenv("BATON_TEST_POSTGRES_DSN")
		if dsn == "" {
			t.Skip("BATON_TEST_POSTGRES_DSN is not set: skipping the fleet on PostgreSQL (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
		}
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("BATON_TEST_POSTGRES_DSN: %v", err)
		}
		b := &Backend{Name: "postgres", pg: u, Schema: fmt.Sprintf("ft_%d", time.Now().UnixNano()%1e12)}
		b.Env = []string{"FLEET_ENGINE=postgres", "FLEET_ENDPOINT=" + b.DSN(""), "FLEET_SCHEMA=" + b.Schema}
		t.Cleanup(func() { b.Exec(t, `DROP SCHEMA IF EXISTS "`+b.Schema+`" CASCADE`) })
		f(t, b)
	})
}

// DSN is the PostgreSQL DSN as user (empty: the DSN's own).
func (b *Backend) DSN(user string) string {
	v := *b.pg
	if user != "" {
		v.User = url.User(user)
	}
	q := v.Query()
	q.Set("connect_timeout", "2")
	v.RawQuery = q.Encode()
	return v.String()
}

// Exec runs statements on PostgreSQL as the DSN's user.
func (b *Backend) Exec(t testing.TB, stmts ...string) {
	t.Helper()
	db, err := sql.Open("pgx", b.pg.String())
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

// Open returns an engine on the backend for the test process, closed at
// the end of t.
func (b *Backend) Open(t testing.TB) fleet.Engine {
	t.Helper()
	e, closeFn, err := open(b.Env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeFn)
	return e
}

// Outage makes the engine unreachable for the host processes, and
// restore brings it back. etcd is stopped and restarted with its data;
// PostgreSQL (shared, never restarted) refuses the hosts' own login role
// and terminates their sessions, so the test's own engine can still write
// during the outage (writesDuring). The env it returns is what the hosts
// need to log in as that role; pass it to Start.
func (b *Backend) Outage(t *testing.T) (env []string, cut, restore func(), writesDuring bool) {
	if b.Etcd != nil {
		return nil, b.Etcd.Stop, func() {
			if err := b.Etcd.Restart(); err != nil {
				t.Fatal(err)
			}
		}, false
	}
	b.Open(t) // the tables must exist before the grants
	role := "ft_r" + b.Schema[len("ft_"):]
	s := `"` + b.Schema + `"`
	b.Exec(t, `CREATE ROLE `+role+` LOGIN`,
		`GRANT USAGE ON SCHEMA `+s+` TO `+role,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA `+s+` TO `+role,
		`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA `+s+` TO `+role)
	terminate := `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '` + role + `'`
	t.Cleanup(func() { b.Exec(t, `ALTER ROLE `+role+` NOLOGIN`, terminate, `DROP OWNED BY `+role, `DROP ROLE `+role) })
	return []string{"FLEET_ENDPOINT=" + b.DSN(role)},
		func() { b.Exec(t, `ALTER ROLE `+role+` NOLOGIN`, terminate) },
		func() { b.Exec(t, `ALTER ROLE `+role+` LOGIN`) }, true
}

// OpenFromEnv opens the engine a child's environment names (what
// Backend.Env holds). The returned func closes it.
func OpenFromEnv() (fleet.Engine, func(), error) { return open(os.Environ()) }

func open(env []string) (fleet.Engine, func(), error) {
	get := func(k string) string {
		v := ""
		for _, kv := range env {
			if s, ok := strings.CutPrefix(kv, k+"="); ok {
				v = s // the last one wins, as in a process environment
			}
		}
		return v
	}
	switch get("FLEET_ENGINE") {
	case "etcd":
		e, err := etcd.Open(clientv3.Config{Endpoints: []string{get("FLEET_ENDPOINT")}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return nil, nil, err
		}
		return e, func() { e.Close() }, nil
	case "postgres":
		db, err := sql.Open("pgx", get("FLEET_ENDPOINT"))
		if err != nil {
			return nil, nil, err
		}
		db.SetMaxOpenConns(4)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		e, err := postgres.New(ctx, db, postgres.Options{Schema: get("FLEET_SCHEMA"), PollInterval: 500 * time.Millisecond, ReapInterval: 100 * time.Millisecond})
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		return e, func() { e.Close(); db.Close() }, nil
	}
	return nil, nil, fmt.Errorf("fleethost: FLEET_ENGINE %q (want etcd or postgres)", get("FLEET_ENGINE"))
}

// Join makes a member with the test TTL and probe interval.
func Join(ctx context.Context, e fleet.Engine, ns, id, host, addr string) (*fleet.Member, error) {
	return fleet.Join(ctx, e, fleet.Options{Namespace: ns, ID: id, Host: host, Address: addr, Version: "v1", LeaseTTL: TTL, ProbeInterval: Probe})
}

// Namespace returns a fresh fleet namespace for a test.
func Namespace() string { return fmt.Sprintf("ft_%x", time.Now().UnixNano()) }

// Host is one host process.
type Host struct {
	ID    string
	IP    string
	Dir   string
	Cmd   *exec.Cmd
	Lines *testchild.Lines
	Dead  bool
	// Addr is the second word of the ready line: where the host serves.
	Addr string
}

// Start runs role as host id (its own loopback address 127.0.0.<n+1> and
// working directory dir, created if needed) with env plus FLEET_ID,
// FLEET_HOST and FLEET_NS, and waits for its line "ready <id> ...". The
// process is killed at the end of t.
func Start(t *testing.T, role, id string, n int, dir string, env ...string) *Host {
	t.Helper()
	ip := fmt.Sprintf("127.0.0.%d", n+1)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd, err := testchild.Command(context.Background(), role, append(slices.Clone(env), "FLEET_ID="+id, "FLEET_HOST="+ip)...)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &Host{ID: id, IP: ip, Dir: dir, Cmd: cmd, Lines: testchild.NewLines(id, out)}
	t.Cleanup(func() {
		if !h.Dead {
			h.Cmd.Process.Signal(syscall.SIGCONT)
			h.Cmd.Process.Kill()
			<-h.Lines.Done()
			h.Cmd.Wait()
		}
	})
	if f := strings.Fields(h.Lines.AwaitPrefix(t, "ready "+id, 30*time.Second)); len(f) > 2 {
		h.Addr = f[2]
	}
	return h
}

// Kill sends SIGKILL and reaps the process.
func (h *Host) Kill(t *testing.T) {
	t.Helper()
	if err := h.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-h.Lines.Done()
	testchild.Wait(t, h.ID, h.Cmd, 10*time.Second)
	h.Dead = true
}

// Dir returns a working directory for host id under t's temporary
// directory.
func Dir(t *testing.T, id string) string { return filepath.Join(t.TempDir(), id) }
