package migrate

import (
	"context"
	"database/sql"
	"fmt"
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
	// OnError, if set, receives heartbeat failures (the heartbeat keeps
	// trying; an instance that cannot heartbeat looks dead to Complete).
	OnError func(error)
}

// Instance is a registered application instance that heartbeats in the
// instance registry until Close. Complete reads the registry to refuse
// dropping old columns while an instance of an older version is alive, and
// Rollback to refuse dropping new columns while an instance of the
// migration's version or a newer one is alive.
// The zero Instance is unusable (Close panics): get one from Register.
type Instance struct {
	db      *sql.DB
	d       Dialect
	t       tables
	id      string
	version string
	upsert  string

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Register records an instance of the application at version and starts
// its heartbeat goroutine, owned by the returned Instance (stop it with
// Close). Call it at process start, with the version the binary was built
// as. Clocks must agree within the runner's InstanceTTL: heartbeats are
// the application host's time.
func Register(ctx context.Context, db *sql.DB, version string, opts RegistryOptions) (*Instance, error) {
	d := opts.Dialect
	if d == DialectAuto {
		var err error
		if d, err = DetectDialect(db); err != nil {
			return nil, err
		}
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
	in := &Instance{db: db, d: d, t: t, id: opts.ID, version: version, stop: make(chan struct{}), done: make(chan struct{})}
	switch d {
	case MySQL:
		in.upsert = `INSERT INTO ` + t.instances + ` (id, version, started_ms, heartbeat_ms) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE version = VALUES(version), heartbeat_ms = VALUES(heartbeat_ms)`
	default:
		in.upsert = d.rebind(`INSERT INTO ` + t.instances + ` (id, version, started_ms, heartbeat_ms) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET version = excluded.version, heartbeat_ms = excluded.heartbeat_ms`)
	}
	if err := in.beat(ctx); err != nil {
		return nil, err
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
	now := nowMS()
	if _, err := in.db.ExecContext(ctx, in.upsert, in.id, in.version, now, now); err != nil {
		return fmt.Errorf("migrate: instance heartbeat: %w", err)
	}
	return nil
}

// Close stops the heartbeat and removes the instance from the registry.
// It is idempotent and returns the first call's error.
func (in *Instance) Close() error {
	in.closeOnce.Do(func() {
		close(in.stop)
		<-in.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := in.db.ExecContext(ctx, in.d.rebind(`DELETE FROM `+in.t.instances+` WHERE id = ?`), in.id); err != nil {
			in.closeErr = fmt.Errorf("migrate: deregister instance %s: %w", in.id, err)
		}
	})
	return in.closeErr
}

// LiveInstances lists the instances whose last heartbeat is within the
// runner's InstanceTTL.
func (r *Runner) LiveInstances(ctx context.Context) ([]InstanceInfo, error) {
	if err := r.ensureState(ctx); err != nil {
		return nil, err
	}
	rows, err := r.db.QueryContext(ctx, r.d.rebind(`SELECT id, version, started_ms, heartbeat_ms FROM `+r.t.instances+` WHERE heartbeat_ms >= ? ORDER BY id`),
		nowMS()-r.opts.InstanceTTL.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("migrate: read instance registry: %w", err)
	}
	defer rows.Close()
	var out []InstanceInfo
	for rows.Next() {
		var in InstanceInfo
		var s, h int64
		if err := rows.Scan(&in.ID, &in.Version, &s, &h); err != nil {
			return nil, fmt.Errorf("migrate: read instance registry: %w", err)
		}
		in.Started, in.Heartbeat = time.UnixMilli(s), time.UnixMilli(h)
		out = append(out, in)
	}
	return out, rows.Err()
}

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
