//go:build unix

package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/batonhq/baton/graceful"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/bind"
	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/etcd"
	"github.com/batonhq/baton/rollout/fleet/postgres"
)

// The example's timing: a short lease so that a takeover is quick.
const (
	leaseTTL      = 2 * time.Second
	probeInterval = 200 * time.Millisecond
)

// release is the document the operator writes at Layout.Shared("release")
// to start a rollout; every host builds the same plan from it.
type release struct {
	ID       string        `json:"id"`
	Version  string        `json:"version"`
	Previous string        `json:"previous"`
	Bake     time.Duration `json:"bake"`
	// Latency is the analysis's budget for the median answer time of
	// every host once the release runs on all of them.
	Latency time.Duration `json:"latency"`
	// Kind "canary" is the fleet canary of canary.go (canaryPlan);
	// empty is a rolling update to Version.
	Kind string `json:"kind,omitempty"`
}

// hostConfig is what a host process is started with.
type hostConfig struct {
	id, addr, engine, endpoint, schema, ns string
}

// hostMain is one instance of the service, on its own loopback address and
// working directory. Its version is the name of the directory its binary
// was started from (releases/<version>/svc), as a deploy tool lays out
// releases; a rollout moves it to another version by a socket handoff to
// that version's binary.
func hostMain(args []string) int {
	fs := flag.NewFlagSet("host", flag.ExitOnError)
	var c hostConfig
	fs.StringVar(&c.id, "id", "", "member id")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:0", "address to serve on (a loopback address and port)")
	fs.StringVar(&c.engine, "engine", "etcd", "etcd or postgres")
	fs.StringVar(&c.endpoint, "endpoint", "", "etcd endpoint or PostgreSQL URL")
	fs.StringVar(&c.schema, "schema", "", "PostgreSQL schema")
	fs.StringVar(&c.ns, "ns", "", "fleet namespace")
	_ = fs.Parse(args)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("host", c.id, "pid", os.Getpid())
	if err := runHost(c, log); err != nil {
		log.Error("host failed", "err", err)
		return 1
	}
	return 0
}

// ownVersion reads the version from the binary's path.
func ownVersion() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	v := filepath.Base(filepath.Dir(exe))
	if err := fleet.ValidVersion(v); err != nil {
		return "", fmt.Errorf("the binary %s is not in a releases/<version>/ directory: %w", exe, err)
	}
	return v, nil
}

func openEngine(ctx context.Context, kind, endpoint, schema string) (fleet.Engine, func(), error) {
	switch kind {
	case "etcd":
		e, err := etcd.Open(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return nil, nil, err
		}
		return e, func() { e.Close() }, nil
	case "postgres":
		db, err := sql.Open("pgx", endpoint)
		if err != nil {
			return nil, nil, err
		}
		db.SetMaxOpenConns(4)
		e, err := postgres.New(ctx, db, postgres.Options{Schema: schema, PollInterval: 250 * time.Millisecond, ReapInterval: 100 * time.Millisecond})
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		return e, func() { e.Close(); db.Close() }, nil
	}
	return nil, nil, fmt.Errorf("unknown engine %q (etcd or postgres)", kind)
}

func runHost(c hostConfig, log *slog.Logger) error {
	version, err := ownVersion()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	upg, err := graceful.New(graceful.Options{UpgradeTimeout: 30 * time.Second, DrainTimeout: 10 * time.Second, Logger: log})
	if err != nil {
		return err
	}
	defer upg.Close()
	ln, err := upg.Listen(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	dir, err := os.Getwd()
	if err != nil {
		return err
	}
	ch, err := newCanaryHost(dir, log)
	if err != nil {
		return err
	}
	defer ch.close()
	ch.register(mux)
	mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		if version == "v3" {
			time.Sleep(40 * time.Millisecond) // the bad release: correct, but slow
		}
		fmt.Fprintf(w, "%s %s\n", c.id, version)
	})
	mux.Handle("/healthz", upg.Health())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	upg.HTTP(srv)
	go srv.Serve(ln)

	e, closeEngine, err := openEngine(ctx, c.engine, c.endpoint, c.schema)
	if err != nil {
		return err
	}
	defer closeEngine()
	host, _, _ := net.SplitHostPort(c.addr)
	m, err := fleet.Join(ctx, e, fleet.Options{Namespace: c.ns, ID: c.id, Host: host, Address: ln.Addr().String(),
		Version: version, LeaseTTL: leaseTTL, ProbeInterval: probeInterval, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		lctx, lcancel := context.WithTimeout(context.Background(), time.Second)
		m.Leave(lctx)
		lcancel()
	}()
	if err := ch.follow(m, log); err != nil {
		return err
	}
	// Every host serves the fleet's console: the rollout the driver
	// drives, wherever it runs, with its commands.
	adm, err := rollout.ListenAdmin(filepath.Join(dir, "admin.sock"))
	if err != nil {
		return err
	}
	admSrv := &http.Server{Handler: m.Console(rollout.HandlerOptions{Logger: log}), ReadHeaderTimeout: 5 * time.Second}
	go admSrv.Serve(adm)
	defer admSrv.Close()
	if err := upg.Ready(ctx); err != nil {
		return err
	}
	// Serving: the host's console name is this process's.
	if err := adm.Claim(); err != nil {
		return err
	}
	// Each host finds a version's binary in its own releases directory.
	agent, err := fleet.NewAgent(m, fleet.AgentOptions{
		Upgrader: bind.NewUpgrader(upg, bind.UpgraderOptions{BakeMargin: 10 * time.Second}),
		Binaries: fleet.PathTemplate(filepath.Join(dir, "releases", fleet.VersionPlaceholder, "svc")),
		Check: func(context.Context) error {
			if version == "v4" {
				return errors.New("v4 cannot open its cache (the bad release's own check)")
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	releases, err := m.Mirror(m.Layout().Shared("release"))
	if err != nil {
		return err
	}
	drv, err := fleet.NewDriver(m, fleet.DriverOptions{Drive: func(ctx context.Context, l *fleet.Lead) error {
		return driveReleases(ctx, l, releases, log)
	}})
	if err != nil {
		return err
	}
	log.Info("serving", "addr", ln.Addr().String(), "version", version)
	actx, stopAgent := context.WithCancel(ctx)
	defer stopAgent()
	dctx, stopDriver := context.WithCancel(ctx)
	defer stopDriver()
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		if err := agent.Run(actx); err == nil {
			// Handed over for good: the successor drives from now on.
			stopDriver()
		}
	}()
	go func() { defer func() { done <- struct{}{} }(); drv.Run(dctx) }()
	err = upg.Run(ctx)
	stopAgent()
	stopDriver()
	<-done
	<-done
	return err
}

// driveReleases drives the release named by the operator's document, one
// at a time, while this host leads; a new release document starts the next
// rollout.
func driveReleases(ctx context.Context, l *fleet.Lead, releases *fleet.Mirror, log *slog.Logger) error {
	key := l.Member().Layout().Shared("release")
	for {
		ch := releases.Changed()
		var rel release
		if d, ok := releases.Get(key); ok {
			if err := json.Unmarshal(d.Value, &rel); err != nil {
				log.Warn("release document is not valid", "err", err)
			}
		}
		if rel.ID == "" {
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		drive, err := fleet.DriveRollout(fleet.RolloutOptions{
			Plan:    func(l *fleet.Lead) (rollout.Plan, error) { return releasePlan(l, rel) },
			Rollout: rollout.Options{Version: rel.Version, Logger: log},
		})
		if err != nil {
			return err
		}
		rctx, cancel := context.WithCancel(ctx)
		driven := make(chan error, 1)
		go func() { driven <- drive(rctx, l) }()
		ended, err := waitRelease(ctx, releases, key, rel.ID, driven)
		cancel()
		if !ended {
			err = <-driven
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, fleet.ErrStepDown) || errors.Is(err, fleet.ErrFenced) {
			return err
		}
		if ended {
			// The drive stopped on its own: wait for the next release.
			waitRelease(ctx, releases, key, rel.ID, nil)
		}
	}
}

// waitRelease returns when ctx ends, the drive ends (ended: its error), or
// the release document names another release than id.
func waitRelease(ctx context.Context, releases *fleet.Mirror, key, id string, driven <-chan error) (ended bool, err error) {
	for {
		ch := releases.Changed()
		var rel release
		if d, ok := releases.Get(key); ok && json.Unmarshal(d.Value, &rel) == nil && rel.ID != id {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case err := <-driven:
			return true, err
		case <-ch:
		}
	}
}

// releasePlan is a host-by-host rolling update with a bake on each host, an
// analysis after each host (every host answers), and a latency analysis
// once every host runs the release.
func releasePlan(l *fleet.Lead, rel release) (rollout.Plan, error) {
	if rel.Kind == "canary" {
		return canaryPlan(l, rel)
	}
	m := l.Member()
	hosts := []string{"host1", "host2", "host3"}
	steps, err := fleet.Rolling(l, fleet.RollingOptions{
		Hosts: hosts, Version: rel.Version, Previous: rel.Previous, Rollout: rel.ID,
		MaxUnavailable: 1, Bake: rel.Bake, HealthTimeout: 60 * time.Second,
		Analyzer: rollout.AnalyzerFunc(func(ctx context.Context) (rollout.Verdict, string, error) {
			return probeFleet(ctx, m, 5, 0)
		}),
		Analysis: rollout.AnalysisOptions{Count: 1, FailInconclusive: true},
	})
	if err != nil {
		return rollout.Plan{}, err
	}
	steps = append(steps, rollout.Analyze(rollout.AnalyzerFunc(func(ctx context.Context) (rollout.Verdict, string, error) {
		return probeFleet(ctx, m, 10, rel.Latency)
	}), rollout.AnalysisOptions{Count: 1, FailInconclusive: true}).Named("fleet-"+rel.Version+"-latency"))
	return rollout.Plan{ID: rel.ID, Steps: steps}, nil
}

// probeFleet asks every live member n times; it fails when one does not
// answer 200, or, with a budget, when a member's median answer time is
// above it.
func probeFleet(ctx context.Context, m *fleet.Member, n int, budget time.Duration) (rollout.Verdict, string, error) {
	live, err := m.Registry().Live(ctx)
	if err != nil {
		return rollout.Inconclusive, "", err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	worst, worstHost := time.Duration(0), ""
	for _, mi := range live {
		var lat []time.Duration
		for range n {
			start := time.Now()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+mi.Address+"/work", nil)
			resp, err := client.Do(req)
			if err != nil {
				return rollout.Inconclusive, "", fmt.Errorf("probing %s: %w", mi.ID, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return rollout.Fail, fmt.Sprintf("%s answered %s", mi.ID, resp.Status), nil
			}
			lat = append(lat, time.Since(start))
		}
		if med := median(lat); med > worst {
			worst, worstHost = med, mi.ID
		}
	}
	if budget > 0 && worst > budget {
		return rollout.Fail, fmt.Sprintf("median answer time of %s is %s, above the budget of %s", worstHost, worst.Round(time.Millisecond), budget), nil
	}
	return rollout.Pass, fmt.Sprintf("%d hosts answered %d probes each; slowest median %s (%s)", len(live), n, worst.Round(100*time.Microsecond), worstHost), nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
