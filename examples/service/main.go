// Command service is a template of a service built on baton, to copy and
// adapt: an "orders" HTTP API on SQLite that upgrades itself by socket
// handoff (graceful), keeps its flags in a hot-reloaded file (flags),
// canaries each release against the previous one in the same process
// (canary), changes its schema expand-contract (migrate), and rolls each
// release out from a manifest (rollout), driven and watched with
// rolloutctl over its admin socket:
//
//	go build -ldflags "-X main.version=v1" -o /srv/orders/bin/orders ./examples/service
//	/srv/orders/bin/orders -dir /srv/orders/var -install /srv/orders/bin/orders -listen 127.0.0.1:8080
//
//	go build -ldflags "-X main.version=v2" -o /srv/orders/releases/v2/orders ./examples/service
//	rolloutctl -socket /srv/orders/var/admin.sock start releases/v2.yaml
//	rolloutctl -socket /srv/orders/var/admin.sock watch
//
// What each piece does is in README.md beside this file; main_test.go runs
// v1 → v2 → a bad v3 under load.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	_ "modernc.org/sqlite"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/graceful"
	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/bind"
)

// version is set at build time (-ldflags "-X main.version=v2"): it is how
// a process knows which side of a handoff it is.
var version = "dev"

// config is the command line. A new process started by a handoff gets the
// same arguments.
type config struct {
	dir     string // state: database, rollouts, flag ramps, admin socket, PID file
	listen  string // the service's address
	flags   string // the flag file, hot-reloaded
	install string // where a promoted release's binary is installed
}

func main() {
	var c config
	flag.StringVar(&c.dir, "dir", "var", "state directory (mode 0700)")
	flag.StringVar(&c.listen, "listen", "127.0.0.1:8080", "address to serve on")
	flag.StringVar(&c.flags, "flags", "", "flag file (default: the built-in flags.yaml, written to the state directory)")
	flag.StringVar(&c.install, "install", "", "path the service is started from: a promoted release's binary is installed there")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("pid", os.Getpid(), "service.version", version)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT)
	defer stop()
	if err := run(ctx, c, log); err != nil {
		log.Error("service failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config, log *slog.Logger) error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	db, err := openDB(filepath.Join(c.dir, "orders.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	// The instance registry: Complete refuses to drop the old column while
	// an instance of an older version heartbeats, and wait-old-gone steps
	// wait for it.
	inst, err := migrate.Register(ctx, db, version, migrate.RegistryOptions{StateTablePrefix: stateTables, Interval: 500 * time.Millisecond})
	if err != nil {
		return err
	}
	defer inst.Close()
	runners, err := migrationRunners(db, log)
	if err != nil {
		return err
	}

	fl, err := flags.New(flags.Options{Logger: log})
	if err != nil {
		return err
	}
	defer fl.Close()
	if c.flags == "" {
		c.flags = filepath.Join(c.dir, "flags.yaml")
		if err := writeDefaultFlags(c.flags); err != nil {
			return err
		}
	}
	src, err := flags.NewFileSource(fl, flags.FileOptions{Paths: []string{c.flags}})
	if err != nil {
		return err
	}
	defer src.Close()
	// Ramps survive the handoff in a state file of their own; the flag file
	// stays the operator's.
	ramps, err := bind.NewFlagRamps(bind.FlagRampsOptions{Store: fl, StateFile: filepath.Join(c.dir, "flag-ramps.json")})
	if err != nil {
		return err
	}

	a := &app{db: db, flags: fl}
	stable, canaryH := a.handlers(version)
	split, err := canary.New(canary.Options{
		Stable: stable, Canary: canaryH,
		Key: canary.KeyOptions{Header: "X-User"}, Override: canary.Override{Disabled: true},
		Window: 10 * time.Second, Resolution: time.Second, Logger: log,
	})
	if err != nil {
		return err
	}
	defer split.Close()

	upg, err := graceful.New(graceful.Options{
		PIDFile: filepath.Join(c.dir, "orders.pid"), Check: db.PingContext,
		UpgradeTimeout: 30 * time.Second, DrainTimeout: 10 * time.Second, Logger: log,
	})
	if err != nil {
		return err
	}
	defer upg.Close()
	ln, err := upg.Listen(ctx, "tcp", c.listen)
	if err != nil {
		return err
	}
	if !upg.HasParent() {
		if err := os.WriteFile(filepath.Join(c.dir, "addr"), []byte(ln.Addr().String()), 0o600); err != nil {
			return err
		}
	}

	// The rollout side: a per-process admin socket with a stable name, the
	// releases' states, and this process's adapters for a manifest.
	sock, err := rollout.ListenAdmin(filepath.Join(c.dir, "admin.sock"))
	if err != nil {
		return err
	}
	defer sock.Close()
	store, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: filepath.Join(c.dir, "rollouts")})
	if err != nil {
		return err
	}
	up := bind.NewUpgrader(upg, bind.UpgraderOptions{Install: c.install})
	bindings := func(rel *rollout.Release) (rollout.Bindings, error) {
		return rollout.Bindings{
			Version: version, Upgrader: up, Weights: bind.CanaryWeights{Splitter: split},
			Flags: ramps, Migrations: runners, Registry: bind.MigrateRegistry{Runner: runners[renameCustomer]},
			Analyzers: analyzers(split, db),
		}, nil
	}
	// NewDriver before Ready: a new process that cannot bind the release
	// it takes over fails here, and its upgrade fails in the old process;
	// it also serves at the canary weight the release set, from the start.
	drv, err := rollout.NewDriver(ctx, rollout.DriverOptions{
		Store: store, Version: version, Bind: bindings, AwaitDrive: up.AwaitDrive, Socket: sock, Logger: log,
	})
	if err != nil {
		return err
	}
	admin := rollout.ServeAdmin(sock, drv.Handler(rollout.HandlerOptions{Logger: log}))
	defer admin.Close()

	mux := http.NewServeMux()
	mux.Handle("/orders", split)
	mux.Handle("/healthz/", upg.Health())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	upg.HTTP(srv)
	go srv.Serve(ln)
	if err := upg.Ready(ctx); err != nil {
		return err
	}
	log.Info("serving", "addr", ln.Addr().String(), "canary", version, "weight", split.Weight())

	// The driver goroutine is owned here: it ends with driveCtx, and the
	// process exits only once it has.
	driveCtx, stopDriving := context.WithCancel(ctx)
	driven := make(chan error, 1)
	go func() { driven <- drv.Run(driveCtx) }()
	err = upg.Run(ctx)
	stopDriving()
	if derr := <-driven; derr != nil && !errors.Is(derr, context.Canceled) {
		log.Warn("rollout driver stopped", "err", derr)
	}
	log.Info("service exits")
	return err
}

const stateTables = "orders_mig_"

func openDB(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(8)
	// The schema v1 knows; later ones come from migrations.
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer VARCHAR(200))`); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// pid returns this process's id as a string, for the answers.
func pid() string { return strconv.Itoa(os.Getpid()) }
