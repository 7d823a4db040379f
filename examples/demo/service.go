package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/graceful"
	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/bind"
)

// Files of the demo's directory. The service reads the version it runs
// from versionFile at start: graceful starts a new process with the same
// path and arguments, so "installing" a new version is writing this file
// before the handoff.
const (
	versionFile   = "version"
	addrFile      = "addr"
	pidFile       = "pid"
	dbFile        = "demo.db"
	adminSocket   = "admin.sock" // the stable name; each process has admin.sock.<pid>
	flagStateFile = "flags-state.json"
	rolloutDir    = "rollouts"
	pidsDir       = "pids"

	usersTable  = "demo_users"
	stateTables = "demo_mig_"
	seedRows    = 2000
)

// faultDelay is what the faulty v3 adds to every request: clients still
// get their answer, but canary analysis sees the latency.
const faultDelay = 40 * time.Millisecond

func openDB(dir string) (*sql.DB, error) {
	dsn := "file:" + filepath.Join(dir, dbFile) + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(8)
	return db, db.Ping()
}

// seed creates the table the way v1 knows it: one name column.
func seed(dir string) error {
	db, err := openDB(dir)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE ` + usersTable + ` (id INTEGER PRIMARY KEY, name VARCHAR(200))`); err != nil {
		return err
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	for i := range seedRows {
		if _, err := tx.Exec(`INSERT INTO `+usersTable+` (name) VALUES (?)`, personName(i)); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

var firstNames = []string{"Ada", "Alan", "Grace", "Edsger", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Niklaus"}
var lastNames = []string{"Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen", "Wirth"}

func personName(i int) string {
	return firstNames[i%len(firstNames)] + " " + lastNames[(i/len(firstNames))%len(lastNames)]
}

// splitName is the first rollout's expand-contract migration, the one of
// examples/migrate reduced to SQLite: name -> first_name + last_name.
func splitName() *migrate.Migration {
	return &migrate.Migration{Name: "split_name", Version: "v2", Operations: []migrate.Operation{migrate.Transform{
		Table: usersTable,
		Add:   []migrate.Column{{Name: "first_name", Type: "VARCHAR(200)"}, {Name: "last_name", Type: "VARCHAR(200)"}},
		Up: map[string]migrate.Expr{
			"first_name": {SQL: `CASE WHEN instr(name, ' ') > 0 THEN substr(name, 1, instr(name, ' ') - 1) ELSE name END`},
			"last_name":  {SQL: `CASE WHEN instr(name, ' ') > 0 THEN substr(name, instr(name, ' ') + 1) ELSE '' END`},
		},
		Down: map[string]migrate.Expr{"name": {SQL: `CASE WHEN last_name = '' THEN first_name ELSE first_name || ' ' || last_name END`}},
		Drop: []string{"name"},
	}}}
}

// addNickname is the second rollout's migration: v3 would use a new
// nullable column.
func addNickname() *migrate.Migration {
	return &migrate.Migration{Name: "add_nickname", Version: "v3", Operations: []migrate.Operation{
		migrate.AddColumn{Table: usersTable, Column: migrate.Column{Name: "nickname", Type: "VARCHAR(100)"}},
	}}
}

// previous is the version whose handler is the canary's stable side in a
// binary of version v: a binary carries the code of its release and of
// the one before, as a service does while a canary runs.
func previous(v string) string {
	switch v {
	case "v2":
		return "v1"
	case "v3":
		return "v2"
	}
	return v
}

// handler returns the /user handler of version v.
//
//	v1 reads and writes name;
//	v2 writes first_name/last_name (the dual-write triggers keep name in
//	   step for v1) and reads them for users the read-new-name flag selects;
//	v3 is v2 plus faultDelay: the faulty release of the second rollout.
func handler(v string, db *sql.DB, fl *flags.Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v == "v3" {
			time.Sleep(faultDelay)
		}
		w.Header().Set("X-Handler", v)
		ctx := r.Context()
		user := r.Header.Get("X-User")
		switch r.Method {
		case http.MethodPost:
			full := r.FormValue("name")
			var err error
			if v == "v1" {
				_, err = db.ExecContext(ctx, `INSERT INTO `+usersTable+` (name) VALUES (?)`, full)
			} else {
				first, last, _ := strings.Cut(full, " ")
				_, err = db.ExecContext(ctx, `INSERT INTO `+usersTable+` (first_name, last_name) VALUES (?, ?)`, first, last)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusCreated)
		default:
			id, _ := strconv.Atoi(r.URL.Query().Get("id"))
			var name string
			var err error
			if v != "v1" && fl.Bool("read-new-name", flags.EvalContext{TargetingKey: user}, false) {
				var first, last sql.NullString
				err = db.QueryRowContext(ctx, `SELECT first_name, last_name FROM `+usersTable+` WHERE id = ?`, id).Scan(&first, &last)
				name = strings.TrimSpace(first.String + " " + last.String)
			} else {
				var n sql.NullString
				err = db.QueryRowContext(ctx, `SELECT name FROM `+usersTable+` WHERE id = ?`, id).Scan(&n)
				name = n.String
			}
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "name": name})
		}
	})
}

// upgrader installs the new version (writes the version file) and hands
// off through graceful.
type upgrader struct {
	*bind.Upgrader
	dir, from, to string
}

func (u upgrader) UpgradeTo(ctx context.Context, spec rollout.UpgradeSpec) error {
	if err := writeAtomic(filepath.Join(u.dir, versionFile), []byte(u.to)); err != nil {
		return err
	}
	err := u.Upgrader.UpgradeTo(ctx, spec)
	if err != nil {
		_ = writeAtomic(filepath.Join(u.dir, versionFile), []byte(u.from))
	}
	return err
}

// errorsAnalyzer passes when neither variant answered a 5xx in the
// splitter's window: the bake check of the first rollout.
type errorsAnalyzer struct{ s *canary.Splitter }

func (a errorsAnalyzer) Analyze(ctx context.Context) (rollout.Verdict, string, error) {
	w := a.s.Metrics().Snapshot().All()
	st, ca := w.Of(canary.Stable), w.Of(canary.Canary)
	n, e := st.Requests+ca.Requests, st.Errors+ca.Errors
	switch {
	case n == 0:
		return rollout.Inconclusive, "no request served yet", nil
	case e > 0:
		return rollout.Fail, fmt.Sprintf("%d of %d requests failed in the new process", e, n), nil
	}
	return rollout.Pass, fmt.Sprintf("0 errors in %d requests served by the new process", n), nil
}

// consistency checks the dual write: every row's name agrees with its
// first_name and last_name.
type consistency struct{ db *sql.DB }

func (c consistency) Analyze(ctx context.Context) (rollout.Verdict, string, error) {
	var bad, total int
	err := c.db.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(CASE WHEN name IS NOT (CASE WHEN last_name = '' THEN first_name ELSE first_name || ' ' || last_name END) THEN 1 ELSE 0 END), 0) FROM `+usersTable).Scan(&total, &bad)
	if err != nil {
		return rollout.Inconclusive, "", err
	}
	if bad > 0 {
		return rollout.Fail, fmt.Sprintf("%d of %d rows disagree between name and first_name/last_name", bad, total), nil
	}
	return rollout.Pass, fmt.Sprintf("all %d rows agree between name and first_name/last_name", total), nil
}

// The demo's two releases, as an operator writes them. release-v2's
// expand runs in v1, before the upgrade: the demo's one binary knows every
// migration. release-v3 sets the weight v3's process starts with
// (startWeight): v1... v2 records it, v3 serves at it from its start.
const (
	releaseV2 = `id: release-v2
version: v2
steps:
  - name: split-name-expand
    migration: {name: split_name, phase: start}
  - blueGreen: {window: 3s, interval: 1s, analyzers: [errors]}
  - canary: {weights: [1000, 5000, 10000], pause: 2s, analyzer: canary-errors, count: 3, interval: 2s, maxInconclusive: 2}
  - name: split-name-backfill
    migration: {name: split_name, phase: backfill}
  - name: flag-read-new-name
    rampFlag: {flag: read-new-name, percentages: [50, 100], interval: 2s, analyzer: rows-agree}
  - name: split-name-switch-reads
    migration: {name: split_name, phase: switch-reads}
  - name: wait-v1-gone
    waitOldGone: {poll: 250ms}
    timeout: 30s
  - name: split-name-contract
    migration: {name: split_name, phase: complete}
`
	releaseV3 = `id: release-v3
version: v3
steps:
  - name: add-nickname-expand
    migration: {name: add_nickname, phase: start}
  - name: flag-nickname-ui
    rampFlag: {flag: nickname-ui, percentages: [25, 50], interval: 1s}
  - blueGreen: {window: 16s, interval: 2s, analyzers: [canary], startWeight: 2000}
  - setWeight: {weight: 10000}
  - name: add-nickname-backfill
    migration: {name: add_nickname, phase: backfill}
  - name: wait-v2-gone
    waitOldGone: {poll: 250ms}
    timeout: 30s
  - name: add-nickname-contract
    migration: {name: add_nickname, phase: complete}
`
)

var releases = map[string]string{"release-v2": releaseV2, "release-v3": releaseV3}

// deps is what this process binds a release to.
type deps struct {
	dir      string
	version  string
	db       *sql.DB
	up       *bind.Upgrader
	splitter *canary.Splitter
	flags    *bind.FlagRamps
	runners  bind.MigrateRunners
}

// bindings returns this process's adapters for a release: the analyzers
// are new for each release (a canary analyzer's alpha budget is one
// rollout's).
func (d *deps) bindings(rel *rollout.Release) (rollout.Bindings, error) {
	return rollout.Bindings{
		Version: d.version, Upgrader: upgrader{Upgrader: d.up, dir: d.dir, from: d.version, to: rel.Version},
		Weights: bind.CanaryWeights{Splitter: d.splitter}, Flags: d.flags, Migrations: d.runners,
		Registry: bind.MigrateRegistry{Runner: d.runners["split_name"]},
		Analyzers: map[string]rollout.Analyzer{
			"errors": errorsAnalyzer{d.splitter},
			// Errors and an absolute p99 only: v2 writes through the
			// dual-write trigger, a little slower by design. 50 requests
			// per variant: at 10% of the demo's load the canary gets them
			// within a few seconds, and each analysis must be conclusive
			// to pass.
			//
			// A Pass needs evidence that the canary is no worse than
			// stable by more than the pass margins. The defaults (0.5
			// points of errors, 5% of latency) take about a thousand
			// canary requests to prove; the demo's steps last seconds, so
			// its margins are wider. A service with minutes per step
			// keeps the defaults.
			"canary-errors": &bind.CanaryAnalyzer{Splitter: d.splitter, Options: canary.AnalysisOptions{
				SkipLatency: true, MaxP99: time.Second, MinSamples: 50, PassErrorMargin: 0.05}},
			"canary": &bind.CanaryAnalyzer{Splitter: d.splitter, Options: canary.AnalysisOptions{
				PassErrorMargin: 0.05, PassLatencyMargin: 0.5}},
			"rows-agree": consistency{d.db},
		},
	}, nil
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// serviceMain is one process of the service: v1 at first, then whatever
// the version file says when graceful starts it.
func serviceMain(dir string) int {
	version := readTrim(filepath.Join(dir, versionFile))
	logf, err := os.OpenFile(filepath.Join(dir, "service.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo service:", err)
		return 1
	}
	defer logf.Close()
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo})).With("pid", os.Getpid(), "version", version)
	if err := runService(dir, version, log); err != nil {
		log.Error("service failed", "err", err)
		return 1
	}
	log.Info("service exits")
	return 0
}

func runService(dir, version string, log *slog.Logger) error {
	ctx := context.Background()
	// Every process of the tree leaves its PID for the parent, which
	// stops whatever is left at the end, whatever happened.
	if err := os.MkdirAll(filepath.Join(dir, pidsDir), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, pidsDir, strconv.Itoa(os.Getpid())), nil, 0o600); err != nil {
		return err
	}
	db, err := openDB(dir)
	if err != nil {
		return err
	}
	defer db.Close()
	inst, err := migrate.Register(ctx, db, version, migrate.RegistryOptions{StateTablePrefix: stateTables, Interval: 500 * time.Millisecond})
	if err != nil {
		return err
	}
	defer inst.Close()
	mopts := migrate.Options{StateTablePrefix: stateTables, InstanceTTL: 3 * time.Second, Logger: log}
	runners := bind.MigrateRunners{}
	for _, m := range []*migrate.Migration{splitName(), addNickname()} {
		r, err := migrate.New(db, m, mopts)
		if err != nil {
			return err
		}
		runners[m.Name] = r
	}

	fstore, err := flags.New(flags.Options{Logger: log})
	if err != nil {
		return err
	}
	defer fstore.Close()
	off := func() flags.Flag {
		return flags.Flag{Variants: map[string]any{"on": true, "off": false}, Default: "off"}
	}
	if err := fstore.Set("code", flags.Config{Flags: map[string]flags.Flag{"read-new-name": off(), "nickname-ui": off()}}); err != nil {
		return err
	}
	ramper, err := bind.NewFlagRamps(bind.FlagRampsOptions{Store: fstore, StateFile: filepath.Join(dir, flagStateFile)})
	if err != nil {
		return err
	}

	splitter, err := canary.New(canary.Options{
		Stable: handler(previous(version), db, fstore), Canary: handler(version, db, fstore),
		Key: canary.KeyOptions{Header: "X-User"}, Override: canary.Override{Disabled: true},
		Window: 10 * time.Second, Resolution: time.Second, Logger: log,
	})
	if err != nil {
		return err
	}
	defer splitter.Close()

	upg, err := graceful.New(graceful.Options{
		// The bake window of a rollout's upgrade is the rollout's own
		// (bind.Upgrader passes it to graceful per upgrade).
		UpgradeTimeout: 30 * time.Second,
		DrainTimeout:   10 * time.Second,
		PIDFile:        filepath.Join(dir, pidFile),
		Check:          db.PingContext,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	defer upg.Close()
	ln, err := upg.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if !upg.HasParent() {
		if err := writeAtomic(filepath.Join(dir, addrFile), []byte(ln.Addr().String())); err != nil {
			return err
		}
	}
	// The rollout side: this process's adapters, a per-process admin
	// socket with a stable name the parent dials, and the Driver. NewDriver
	// runs before Ready: a new process picks up the release it takes over,
	// at the canary weight that release set for it.
	d := &deps{dir: dir, version: version, db: db, up: bind.NewUpgrader(upg, bind.UpgraderOptions{}),
		splitter: splitter, flags: ramper, runners: runners}
	sock, err := rollout.ListenAdmin(filepath.Join(dir, adminSocket))
	if err != nil {
		return err
	}
	defer sock.Close()
	store, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: filepath.Join(dir, rolloutDir)})
	if err != nil {
		return err
	}
	// When serving comes back to this process after a rollback, the
	// version it runs is installed again (the version file).
	await := func(ctx context.Context) (bool, error) {
		resumed, err := d.up.AwaitDrive(ctx)
		if resumed {
			log.Warn("serving handed back: resuming the rollout's rollback")
			if err := writeAtomic(filepath.Join(dir, versionFile), []byte(version)); err != nil {
				return true, err
			}
		}
		return resumed, err
	}
	drv, err := rollout.NewDriver(ctx, rollout.DriverOptions{
		Store: store, Version: version, Bind: d.bindings, AwaitDrive: await, Socket: sock, Logger: log,
	})
	if err != nil {
		return err
	}
	admin := rollout.ServeAdmin(sock, drv.Handler(rollout.HandlerOptions{Logger: log}))
	defer admin.Close()

	mux := http.NewServeMux()
	mux.Handle("/user", splitter)
	mux.Handle("/healthz/", upg.Health())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	upg.HTTP(srv)
	go srv.Serve(ln)
	if err := upg.Ready(ctx); err != nil {
		return err
	}
	log.Info("serving", "addr", ln.Addr().String(), "canary", version, "stable", previous(version), "weight", splitter.Weight())
	// The driver's goroutine ends with driveCtx; the process exits only
	// once it has. When serving comes back to this process, the driver
	// finishes the rollback here.
	driveCtx, stop := context.WithCancel(ctx)
	driven := make(chan error, 1)
	go func() { driven <- drv.Run(driveCtx) }()
	err = upg.Run(ctx)
	stop()
	if derr := <-driven; derr != nil && !errors.Is(derr, context.Canceled) {
		log.Warn("rollout driver stopped", "err", derr)
	}
	return err
}
