package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"
)

// InstanceInfo is one row of the instance registry.
// The zero value describes no instance (empty ID); LiveInstances never
// returns one.
type InstanceInfo struct {
	ID        string
	Version   string
	Started   time.Time
	Heartbeat time.Time
	// Phase is the phase of the runner's migration this instance last
	// reported acting on (Instance.Observe, Instance.Phase); "" when it
	// reported none, or declared the migration (RegistryOptions.Migrations)
	// without observing it yet.
	Phase Phase
	// Acts reports whether the instance acts on the runner's migration:
	// it declared it or has observed a phase of it. Complete waits only
	// for such instances.
	Acts bool
}

// RegistryOptions configures Register. Zero fields mean the defaults.
type RegistryOptions struct {
	// Dialect and StateTablePrefix must match the runner's Options.
	Dialect          Dialect
	StateTablePrefix string
	// ID identifies the instance; zero means a random ID.
	ID string
	// Interval between heartbeats; zero means DefaultHeartbeat. Keep it well
	// under the runner's InstanceTTL.
	Interval time.Duration
	// Migrations names the migrations whose phase this instance acts on
	// (it picks columns by their phase). Complete of such a migration
	// waits until the instance has observed read_new (Instance.Observe or
	// Instance.Phase), from the moment it registers. An instance that
	// declares nothing is waited for once it has observed a phase. Nil
	// declares nothing.
	Migrations []string
	// OnError, if set, receives heartbeat failures (the heartbeat keeps
	// trying; an instance that cannot heartbeat looks dead to Complete).
	OnError func(error)
}

// Instance is a registered application instance that heartbeats in the
// instance registry until Close. Complete reads the registry to refuse
// dropping old columns while an instance of an older version is alive, and
// to wait until every instance acting on the migration has observed
// read_new; Rollback refuses dropping new columns while an instance of the
// migration's version or a newer one is alive.
// The zero Instance is unusable (Close panics): get one from Register.
type Instance struct {
	db       *sql.DB
	d        Dialect
	opts     Options
	t        tables
	id       string
	version  string
	beatSQL  string
	phaseSQL string

	mu       sync.Mutex
	observed map[string]Phase // last phase written per migration

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Register records an instance of the application at version and starts
// its heartbeat goroutine, owned by the returned Instance (stop it with
// Close). Call it at process start, with the version the binary was built
// as. Heartbeats and liveness are stamped by the database's clock, so
// application hosts' clocks do not matter.
func Register(ctx context.Context, db *sql.DB, version string, opts RegistryOptions) (*Instance, error) {
	d := opts.Dialect
	if d == DialectAuto {
		var err error
		if d, err = DetectDialect(db); err != nil {
			return nil, err
		}
	}
	if !d.known() {
		return nil, fmt.Errorf("%w: unknown dialect %q", ErrInvalid, string(d))
	}
	prefix := opts.StateTablePrefix
	if prefix == "" {
		prefix = DefaultStateTablePrefix
	}
	if !nameRe.MatchString(prefix) {
		return nil, fmt.Errorf("%w: StateTablePrefix %q: want letters, digits and '_'", ErrInvalid, prefix)
	}
	if version == "" {
		return nil, fmt.Errorf("%w: Register: empty version", ErrInvalid)
	}
	if opts.ID == "" {
		opts.ID = randomID()
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultHeartbeat
	}
	t := newTables(d, prefix)
	if err := ensureState(ctx, db, d, t); err != nil {
		return nil, err
	}
	im := d.impl()
	now := im.nowMS()
	in := &Instance{db: db, d: d, opts: Options{Dialect: d, StateTablePrefix: prefix}, t: t, id: opts.ID, version: version,
		observed: map[string]Phase{}, stop: make(chan struct{}), done: make(chan struct{})}
	in.beatSQL = d.rebind(im.upsert(t.instances, []string{"id", "version", "started_ms", "heartbeat_ms"}, []string{"?", "?", now, now},
		[]string{"id"}, []string{"version", "heartbeat_ms"}))
	in.phaseSQL = d.rebind(im.upsert(t.observed, []string{"instance", "migration", "phase", "observed_ms"}, []string{"?", "?", "?", now},
		[]string{"instance", "migration"}, []string{"phase", "observed_ms"}))
	if err := in.beat(ctx); err != nil {
		return nil, err
	}
	for _, m := range opts.Migrations {
		if _, err := db.ExecContext(ctx, in.phaseSQL, in.id, m, string(PhaseNone)); err != nil {
			return nil, fmt.Errorf("migrate: declare migration %q: %w", m, err)
		}
	}
	go func() { // owner: in.Close
		defer close(in.done)
		tk := time.NewTicker(opts.Interval)
		defer tk.Stop()
		for {
			select {
			case <-in.stop:
				return
			case <-tk.C:
				ctx, cancel := context.WithTimeout(context.Background(), opts.Interval)
				err := in.beat(ctx)
				cancel()
				if err != nil && opts.OnError != nil {
					opts.OnError(err)
				}
			}
		}
	}()
	return in, nil
}

// ID returns the instance's ID.
func (in *Instance) ID() string { return in.id }

func (in *Instance) beat(ctx context.Context) error {
	if _, err := in.db.ExecContext(ctx, in.beatSQL, in.id, in.version); err != nil {
		return fmt.Errorf("migrate: instance heartbeat: %w", err)
	}
	return nil
}

// Observe records that this instance now acts on phase p of migration
// (reads and writes the columns p says): call it when the application
// starts using a phase it read, for example when its cached phase
// changes. Complete waits until every live instance acting on the
// migration has observed read_new. Writing the same phase again is free.
func (in *Instance) Observe(ctx context.Context, migration string, p Phase) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if last, ok := in.observed[migration]; ok && last == p {
		return nil
	}
	if _, err := in.db.ExecContext(ctx, in.phaseSQL, in.id, migration, string(p)); err != nil {
		return fmt.Errorf("migrate: observe phase %q of %q: %w", p, migration, err)
	}
	in.observed[migration] = p
	return nil
}

// Phase reads the phase of migration (as CurrentPhase) and records it as
// the phase this instance acts on (as Observe): use it instead of
// CurrentPhase where the application picks its columns.
func (in *Instance) Phase(ctx context.Context, migration string) (Phase, error) {
	p, err := CurrentPhase(ctx, in.db, in.opts, migration)
	if err != nil {
		return p, err
	}
	return p, in.Observe(ctx, migration, p)
}

// Close stops the heartbeat and removes the instance from the registry.
// It is idempotent and returns the first call's error.
func (in *Instance) Close() error {
	in.closeOnce.Do(func() {
		close(in.stop)
		<-in.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, t := range []string{in.t.instances, in.t.observed} {
			col := "id"
			if t == in.t.observed {
				col = "instance"
			}
			if _, err := in.db.ExecContext(ctx, in.d.rebind(`DELETE FROM `+t+` WHERE `+col+` = ?`), in.id); err != nil && in.closeErr == nil {
				in.closeErr = fmt.Errorf("migrate: deregister instance %s: %w", in.id, err)
			}
		}
	})
	return in.closeErr
}

// LiveInstances lists the instances whose last heartbeat is within the
// runner's InstanceTTL, by the database's clock, with the phase of the
// runner's migration each acts on.
func (r *Runner) LiveInstances(ctx context.Context) ([]InstanceInfo, error) {
	if err := r.ensureState(ctx); err != nil {
		return nil, err
	}
	rows, err := r.db.QueryContext(ctx, r.d.rebind(`SELECT i.id, i.version, i.started_ms, i.heartbeat_ms, o.phase FROM `+r.t.instances+` i
		LEFT JOIN `+r.t.observed+` o ON o.instance = i.id AND o.migration = ?
		WHERE i.heartbeat_ms >= `+r.im.nowMS()+` - ? ORDER BY i.id`), r.m.Name, r.opts.InstanceTTL.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("migrate: read instance registry: %w", err)
	}
	defer rows.Close()
	var out []InstanceInfo
	for rows.Next() {
		var in InstanceInfo
		var s, h int64
		var p sql.NullString
		if err := rows.Scan(&in.ID, &in.Version, &s, &h, &p); err != nil {
			return nil, fmt.Errorf("migrate: read instance registry: %w", err)
		}
		in.Started, in.Heartbeat = time.UnixMilli(s), time.UnixMilli(h)
		in.Phase, in.Acts = Phase(p.String), p.Valid
		out = append(out, in)
	}
	return out, rows.Err()
}

// Lagging lists the live instances acting on the migration (see
// InstanceInfo.Acts) that have not yet observed a phase that reads the new
// columns (Phase.ReadNew): those that may still write only the old
// columns, which Complete drops. Empty means Complete will not wait.
func (r *Runner) Lagging(ctx context.Context) ([]InstanceInfo, error) {
	live, err := r.LiveInstances(ctx)
	if err != nil {
		return nil, err
	}
	var out []InstanceInfo
	for _, in := range live {
		if in.Acts && !in.Phase.ReadNew() {
			out = append(out, in)
		}
	}
	return out, nil
}

// AwaitCaughtUp waits until Lagging is empty, asking again every
// Options.InstancePoll, for at most Options.CatchUpTimeout and as long as
// ctx allows. It fails with a *LaggingError naming the instances that
// have not caught up. Complete calls it before anything changes.
func (r *Runner) AwaitCaughtUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.CatchUpTimeout)
	defer cancel()
	for {
		lag, err := r.Lagging(ctx)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if err == nil && len(lag) == 0 {
			return nil
		}
		if err := sleepCtx(ctx, r.opts.InstancePoll); err != nil {
			if lag == nil {
				lag, _ = r.Lagging(context.WithoutCancel(ctx))
			}
			return &LaggingError{Migration: r.m.Name, Waited: r.opts.CatchUpTimeout, Lagging: lag, Err: err}
		}
	}
}

func (r *Runner) awaitCaughtUp(ctx context.Context) error { return r.AwaitCaughtUp(ctx) }

// checkInstances refuses Complete while an older version is alive. With
// no Migration.Version, every live instance must report the same version.
func (r *Runner) checkInstances(ctx context.Context) error {
	live, err := r.LiveInstances(ctx)
	if err != nil {
		return err
	}
	need := r.m.Version
	if need == "" {
		for _, in := range live {
			if need == "" || r.opts.CompareVersions(in.Version, need) > 0 {
				need = in.Version
			}
		}
	}
	var old []InstanceInfo
	for _, in := range live {
		if r.opts.CompareVersions(in.Version, need) < 0 {
			old = append(old, in)
		}
	}
	if len(old) > 0 {
		return &OldVersionsError{Migration: r.m.Name, Need: need, Alive: old}
	}
	return nil
}

// checkNewInstances refuses Rollback while an instance of Migration.Version
// or newer is alive: it may use the new columns that Rollback drops. Every
// phase Rollback starts from has new columns (Start may have added some
// before it crashed; a crashed Rollback may have left some), so the phase
// does not exempt anything.
func (r *Runner) checkNewInstances(ctx context.Context, cur Phase) error {
	if r.m.Version == "" {
		return nil
	}
	live, err := r.LiveInstances(ctx)
	if err != nil {
		return err
	}
	var alive []InstanceInfo
	for _, in := range live {
		if r.opts.CompareVersions(in.Version, r.m.Version) >= 0 {
			alive = append(alive, in)
		}
	}
	if len(alive) > 0 {
		return &NewVersionsError{Migration: r.m.Name, Version: r.m.Version, Phase: cur, Alive: alive}
	}
	return nil
}

// describe lists instances as "id (version v, phase p)".
func describe(ins []InstanceInfo) string {
	parts := make([]string, len(ins))
	for i, in := range ins {
		p := string(in.Phase)
		if p == "" {
			p = "none observed"
		}
		parts[i] = fmt.Sprintf("%s (version %s, phase %s)", in.ID, in.Version, p)
	}
	return strings.Join(parts, ", ")
}
