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
	"sync"
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
	versionFile    = "version"
	addrFile       = "addr"
	pidFile        = "pid"
	dbFile         = "demo.db"
	activePlanFile = "active-plan"
	adminCurrent   = "admin.current"
	flagStateFile  = "flags-state.json"
	rolloutDir     = "rollouts"
	pidsDir        = "pids"

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

// weights is the canary weight of one release, kept in a file so that it
// survives the handoff (rollout.CanaryWeights with a StateFile): the
// process whose canary is that release applies it; other processes only
// record it for the process that will run that release.
type weights struct {
	dir, release string
	local        *canary.Splitter
	localRelease string
}

func weightFile(dir, release string) string { return filepath.Join(dir, "weight-"+release+".json") }

func (w weights) SetWeight(ctx context.Context, bp uint32) error {
	if err := writeAtomic(weightFile(w.dir, w.release), []byte(strconv.Itoa(int(bp)))); err != nil {
		return err
	}
	if w.release != w.localRelease {
		return nil
	}
	return bind.CanaryWeights{Splitter: w.local}.SetWeight(ctx, bp)
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
	w := a.s.Metrics().Snapshot()
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

// deps is what the plans are built from, in every process alike.
type deps struct {
	dir      string
	version  string
	db       *sql.DB
	gu       *bind.Upgrader
	splitter *canary.Splitter
	flags    *bind.FlagRamps
	runners  bind.MigrateRunners
	registry bind.MigrateRegistry
}

func (d *deps) weights(release string) weights {
	return weights{dir: d.dir, release: release, local: d.splitter, localRelease: d.version}
}

func (d *deps) upgrade(from, to string) upgrader {
	return upgrader{Upgrader: d.gu, dir: d.dir, from: from, to: to}
}

// buildPlan returns the plan of rollout id. It depends on the id only, so
// that every process builds the same plan.
func buildPlan(id string, d *deps) (rollout.Plan, error) {
	switch id {
	case "release-v2":
		// Errors and an absolute p99 only: v2 writes through the
		// dual-write trigger, a little slower by design.
		// 50 requests per variant: at 10% of the demo's load the canary
		// gets them within a few seconds, and each analysis must be
		// conclusive to pass.
		an := &bind.CanaryAnalyzer{Splitter: d.splitter, Options: canary.AnalysisOptions{SkipLatency: true, MaxP99: time.Second, MinSamples: 50}}
		canarySteps, err := rollout.Canary(d.weights("v2"), rollout.CanaryOptions{
			Weights:  []uint32{1000, 5000, 10000},
			Pause:    2 * time.Second,
			Analyzer: an,
			Analysis: rollout.AnalysisOptions{Count: 3, Interval: 2 * time.Second, MaxInconclusive: 2},
		})
		if err != nil {
			return rollout.Plan{}, err
		}
		steps := []rollout.Step{
			rollout.Migration(d.runners, "split_name", rollout.MigrationStart).Named("split-name-expand"),
			rollout.BlueGreen(d.upgrade("v1", "v2"), "v2", rollout.BakeOptions{
				Window: 3 * time.Second, Interval: time.Second, Analyzers: []rollout.Analyzer{errorsAnalyzer{d.splitter}},
			}).Named("blue-green-v2"),
		}
		steps = append(steps, canarySteps...)
		steps = append(steps,
			rollout.Migration(d.runners, "split_name", rollout.MigrationBackfill).Named("split-name-backfill"),
			rollout.RampFlag(d.flags, "read-new-name", rollout.RampOptions{
				Percentages: []float64{50, 100}, Interval: 2 * time.Second, Analyzer: consistency{d.db},
			}).Named("flag-read-new-name"),
			rollout.Migration(d.runners, "split_name", rollout.MigrationSwitchReads).Named("split-name-switch-reads"),
			rollout.WaitOldGone(d.registry, "v2", 250*time.Millisecond).Named("wait-v1-gone").WithTimeout(30*time.Second),
			rollout.Migration(d.runners, "split_name", rollout.MigrationComplete).Named("split-name-contract"),
		)
		return rollout.Plan{ID: id, Steps: steps}, nil
	case "release-v3":
		an := &bind.CanaryAnalyzer{Splitter: d.splitter}
		steps := []rollout.Step{
			rollout.Migration(d.runners, "add_nickname", rollout.MigrationStart).Named("add-nickname-expand"),
			rollout.RampFlag(d.flags, "nickname-ui", rollout.RampOptions{Percentages: []float64{25, 50}, Interval: time.Second}).Named("flag-nickname-ui"),
			rollout.SetWeight(d.weights("v3"), 2000).Named("canary-weight-v3-2000"),
			rollout.BlueGreen(d.upgrade("v2", "v3"), "v3", rollout.BakeOptions{
				Window: 16 * time.Second, Interval: 2 * time.Second,
				Analyzers: []rollout.Analyzer{an},
			}).Named("blue-green-v3"),
			rollout.SetWeight(d.weights("v3"), 10000).Named("canary-weight-v3-10000"),
			rollout.Migration(d.runners, "add_nickname", rollout.MigrationBackfill).Named("add-nickname-backfill"),
			rollout.WaitOldGone(d.registry, "v3", 250*time.Millisecond).Named("wait-v2-gone").WithTimeout(30 * time.Second),
			rollout.Migration(d.runners, "add_nickname", rollout.MigrationComplete).Named("add-nickname-contract"),
		}
		return rollout.Plan{ID: id, Steps: steps}, nil
	}
	return rollout.Plan{}, fmt.Errorf("unknown rollout %q", id)
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
	if b, err := os.ReadFile(weightFile(dir, version)); err == nil {
		bp, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
		if err != nil {
			return fmt.Errorf("weight file: %w", err)
		}
		if err := splitter.SetWeight(uint32(bp)); err != nil {
			return err
		}
	}

	upg, err := graceful.New(graceful.Options{
		// Longer than any bake of the plans: the old process must still
		// be a fallback when the rollout decides.
		BakeWindow:     time.Minute,
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
	d := &deps{dir: dir, version: version, db: db, gu: bind.NewUpgrader(upg, bind.UpgraderOptions{}), splitter: splitter,
		flags: ramper, runners: runners, registry: bind.MigrateRegistry{Runner: runners["split_name"]}}
	drv := newDriver(d, log)
	defer drv.close()

	mux := http.NewServeMux()
	mux.Handle("/user", splitter)
	mux.Handle("/healthz/", upg.Health())
	mux.HandleFunc("POST /demo/rollout", func(w http.ResponseWriter, r *http.Request) {
		id := r.FormValue("id")
		if _, err := buildPlan(id, d); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := writeAtomic(filepath.Join(dir, activePlanFile), []byte(id)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		drv.start(id)
		w.WriteHeader(http.StatusAccepted)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	upg.HTTP(srv)
	go srv.Serve(ln)
	if err := upg.Ready(ctx); err != nil {
		return err
	}
	log.Info("serving", "addr", ln.Addr().String(), "canary", version, "stable", previous(version), "weight", splitter.Weight())
	// A process started by a handoff picks the rollout up where the
	// previous one left it.
	if id := readTrim(filepath.Join(dir, activePlanFile)); id != "" {
		drv.start(id)
	}
	return upg.Run(ctx)
}

// driver runs the active rollout in this process and serves its admin API
// on a Unix socket (0600) named in admin.current for the demo's parent.
type driver struct {
	d   *deps
	log *slog.Logger
	// ctx ends when the process is done serving (close), which stops a
	// rollout still running here; close then waits for its goroutine.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	running bool
	admins  []*rollout.AdminServer
	n       int
	wg      sync.WaitGroup
}

func newDriver(d *deps, log *slog.Logger) *driver {
	ctx, cancel := context.WithCancel(context.Background())
	return &driver{d: d, log: log, ctx: ctx, cancel: cancel}
}

func (v *driver) start(id string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.running {
		return
	}
	v.running = true
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		err := v.drive(id)
		v.log.Info("driver stopped", "rollout", id, "result", fmt.Sprint(err))
		v.mu.Lock()
		v.running = false
		v.mu.Unlock()
	}()
}

func (v *driver) drive(id string) error {
	ctx := v.ctx
	store, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: filepath.Join(v.d.dir, rolloutDir)})
	if err != nil {
		return err
	}
	for {
		plan, err := buildPlan(id, v.d)
		if err != nil {
			return err
		}
		r, err := rollout.New(ctx, plan, rollout.Options{Store: store, Version: v.d.version, Logger: v.log})
		if err != nil {
			return err
		}
		if r.Status().Phase.Done() {
			return nil
		}
		if err := v.serveAdmin(r); err != nil {
			return err
		}
		err = r.Run(ctx)
		if !errors.Is(err, rollout.ErrHandedOff) {
			return err
		}
		resumed, err := v.d.gu.AwaitDrive(ctx)
		if err != nil || !resumed {
			return err
		}
		// Serving came back to this process: the version it runs is
		// installed again, and the rollout is finished from here.
		v.log.Warn("serving handed back: resuming the rollout's rollback")
		if err := writeAtomic(filepath.Join(v.d.dir, versionFile), []byte(v.d.version)); err != nil {
			return err
		}
	}
}

func (v *driver) serveAdmin(r *rollout.Rollout) error {
	v.mu.Lock()
	v.n++
	path := filepath.Join(v.d.dir, fmt.Sprintf("admin-%d-%d.sock", os.Getpid(), v.n))
	v.mu.Unlock()
	ln, err := rollout.ListenUnix(path)
	if err != nil {
		return err
	}
	a := rollout.ServeAdmin(ln, rollout.NewHandler(r, rollout.HandlerOptions{Logger: v.log}))
	v.mu.Lock()
	v.admins = append(v.admins, a)
	v.mu.Unlock()
	return writeAtomic(filepath.Join(v.d.dir, adminCurrent), []byte(path))
}

func (v *driver) close() {
	v.cancel()
	v.wg.Wait()
	v.mu.Lock()
	admins := v.admins
	v.mu.Unlock()
	for _, a := range admins {
		a.Close()
	}
}
