package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of DriverOptions.
const (
	// DefaultIndexID is the Store id of the document that names a
	// service's releases and the active one.
	DefaultIndexID = "baton-releases"
	// DefaultRetryInterval is how long Driver.Run waits before running
	// again after the store refused a write.
	DefaultRetryInterval = 5 * time.Second
	// maxIndexed is how many past releases the index keeps.
	maxIndexed = 50
)

// DriverOptions configure NewDriver. Store, Version and Bind are required;
// the other zero fields mean no handoffs (AwaitDrive), no admin socket,
// DefaultIndexID, DefaultRetryInterval, the system clock, no logs and
// no-op telemetry.
type DriverOptions struct {
	// Store keeps the releases' states and the index naming the active
	// one; every process of the service uses the same.
	Store Store
	// Version is the version this process runs (Options.Version).
	Version string
	// Bind returns this process's adapters for rel: it is called for
	// every release the driver starts or loads, in every process.
	Bind func(rel *Release) (Bindings, error)
	// AwaitDrive is called after a Run handed the drive to another
	// process (an upgrade): it waits until this process has the drive
	// again (true: serving came back after a rollback) or never will
	// (false: it is done serving). bind.Upgrader.AwaitDrive fits. Nil
	// means false at once.
	AwaitDrive func(ctx context.Context) (resumed bool, err error)
	// Socket is this process's admin socket (ListenAdmin): the driver
	// points its stable name at it whenever this process takes the
	// drive, so that rolloutctl follows the rollout across handoffs. Nil
	// means none.
	Socket *AdminSocket
	// IndexID is the Store id of the index. Empty means DefaultIndexID.
	IndexID string
	// RetryInterval is the wait before running again after the store
	// refused a write. Zero means DefaultRetryInterval.
	RetryInterval time.Duration
	// Clock, Logger, TracerProvider and MeterProvider are given to every
	// Rollout (see Options).
	Clock          Clock
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// Driver runs the releases of a service: Start takes a release manifest,
// validates it and binds it to this process's adapters before anything
// moves, stores it with the rollout's state and names it the active
// release in an index document of the Store; Run drives the active
// release in this process, across handoffs (the old process hands the
// drive to the new one, which loads the same manifest, binds it to its
// own adapters and continues) and rollbacks (serving comes back to the
// old process, which finishes the rollback). A process that starts loads
// the active release from the store, and restores what the last release
// of its own version set that lives in memory (the canary weight).
// Handler serves the admin API for the active release, POST /api/start
// included.
//
// A Driver starts no goroutine: Run is the caller's. The zero value is not
// usable: use NewDriver.
type Driver struct {
	o DriverOptions

	mu       sync.Mutex // guards below; serializes Start
	cur      *Rollout
	switched chan struct{} // closed and replaced when cur changes
}

// releaseIndex is the document under DriverOptions.IndexID.
type releaseIndex struct {
	// Active is the id of the release being rolled out or last rolled
	// out.
	Active string `json:"active,omitempty"`
	// Releases are the releases started, oldest first.
	Releases []indexEntry `json:"releases,omitempty"`
}

type indexEntry struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

// NewDriver loads the active release, if any, binds it to this process
// and restores the canary weight of the last release of o.Version. A
// release this process cannot bind fails NewDriver: a new process that
// cannot drive its side of a rollout must not become ready (its upgrade
// then fails in the old process, which rolls back).
func NewDriver(ctx context.Context, o DriverOptions) (*Driver, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("rollout: DriverOptions.Store is required")
	case o.Version == "":
		return nil, errors.New("rollout: DriverOptions.Version is required")
	case o.Bind == nil:
		return nil, errors.New("rollout: DriverOptions.Bind is required")
	}
	if o.IndexID == "" {
		o.IndexID = DefaultIndexID
	}
	if err := ValidID(o.IndexID); err != nil {
		return nil, err
	}
	if o.RetryInterval == 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Driver{o: o, switched: make(chan struct{})}
	idx, _, err := d.index(ctx)
	if err != nil {
		return nil, err
	}
	if idx.Active != "" {
		r, _, err := d.load(ctx, idx.Active)
		if err != nil {
			return nil, err
		}
		d.cur = r
	}
	for i := len(idx.Releases) - 1; i >= 0; i-- {
		if e := idx.Releases[i]; e.Version == o.Version {
			if err := d.restore(ctx, e.ID); err != nil {
				return nil, err
			}
			break
		}
	}
	return d, nil
}

func (d *Driver) options() Options {
	return Options{Store: d.o.Store, Version: d.o.Version, Clock: d.o.Clock, Logger: d.o.Logger,
		TracerProvider: d.o.TracerProvider, MeterProvider: d.o.MeterProvider}
}

// index reads the index document.
func (d *Driver) index(ctx context.Context) (releaseIndex, int64, error) {
	var idx releaseIndex
	data, rev, err := d.o.Store.Load(ctx, d.o.IndexID)
	switch {
	case errors.Is(err, ErrNotFound):
		return idx, 0, nil
	case err != nil:
		return idx, 0, fmt.Errorf("rollout: loading the release index %q: %w", d.o.IndexID, err)
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return idx, 0, &StateError{ID: d.o.IndexID, Reason: err.Error()}
	}
	return idx, rev, nil
}

// stored reads the manifest and weight a rollout's state keeps, before
// the plan exists to check the rest against.
func (d *Driver) stored(ctx context.Context, id string) (*Release, *uint32, error) {
	data, _, err := d.o.Store.Load(ctx, id)
	if err != nil {
		return nil, nil, fmt.Errorf("rollout: loading release %q: %w", id, err)
	}
	var st struct {
		Release *Release `json:"release"`
		Weight  *uint32  `json:"weight"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, nil, &StateError{ID: id, Reason: err.Error()}
	}
	if st.Release == nil {
		return nil, nil, &StateError{ID: id, Field: "release", Reason: "missing: the rollout was not started from a release manifest"}
	}
	return st.Release, st.Weight, nil
}

// load binds a stored release to this process and loads its rollout.
func (d *Driver) load(ctx context.Context, id string) (*Rollout, Bindings, error) {
	rel, _, err := d.stored(ctx, id)
	if err != nil {
		return nil, Bindings{}, err
	}
	b, plan, err := d.bind(rel)
	if err != nil {
		return nil, b, err
	}
	r, err := New(ctx, plan, d.options())
	return r, b, err
}

func (d *Driver) bind(rel *Release) (Bindings, Plan, error) {
	b, err := d.o.Bind(rel)
	if err != nil {
		return b, Plan{}, fmt.Errorf("rollout: binding release %q to version %s: %w", rel.ID, d.o.Version, err)
	}
	if b.Version == "" {
		b.Version = d.o.Version
	}
	if b.Version != d.o.Version {
		return b, Plan{}, fmt.Errorf("rollout: Bind returned Bindings of version %s in a process of version %s", b.Version, d.o.Version)
	}
	plan, err := rel.Plan(b)
	return b, plan, err
}

// restore applies the canary weight release id recorded, through this
// process's WeightSetter for it.
func (d *Driver) restore(ctx context.Context, id string) error {
	rel, w, err := d.stored(ctx, id)
	if err != nil || w == nil {
		return err
	}
	b, err := d.o.Bind(rel)
	if err != nil {
		return fmt.Errorf("rollout: restoring the canary weight of release %q: %w", id, err)
	}
	if b.Weights == nil {
		return fmt.Errorf("rollout: release %q set a canary weight and version %s has no WeightSetter (Bindings.Weights)", id, d.o.Version)
	}
	if err := b.Weights.SetWeight(ctx, *w); err != nil {
		return fmt.Errorf("rollout: restoring the canary weight %s of release %q: %w", pct(*w), id, err)
	}
	d.o.Logger.Info("rollout canary weight restored", "release", id, "weight", *w)
	return nil
}

// Current returns the active release's rollout in this process, nil when
// no release was started.
func (d *Driver) Current() *Rollout {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur
}

// Changed returns a channel closed when another release becomes the
// active one (Start, or the reload after serving came back): watch it and
// Current's Rollout.Changed together.
func (d *Driver) Changed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.switched
}

func (d *Driver) current() (*Rollout, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur, d.switched
}

func (d *Driver) setCurrentLocked(r *Rollout) {
	d.cur = r
	close(d.switched)
	d.switched = make(chan struct{})
}

// Start validates rel, binds it to this process's adapters, stores it and
// makes it the active release, which Run then drives. Nothing moves
// before all of that succeeded. It is refused with a *CommandError while
// the active release has not ended, or when rel.ID was used before (a
// release id names one rollout); with a *ReleaseError when the manifest
// is invalid or names what this process cannot bind.
func (d *Driver) Start(ctx context.Context, rel *Release) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := rel.Validate(); err != nil {
		return err
	}
	if d.cur != nil {
		if st := d.cur.Status(); !st.Phase.Done() {
			return refuse(CmdStart, "release %q is %s: let it end, or abort it, before starting another", st.ID, phaseName(st.Phase))
		}
	}
	if rel.ID == d.o.IndexID {
		return refuse(CmdStart, "release id %q is the release index's id", rel.ID)
	}
	switch _, _, err := d.o.Store.Load(ctx, rel.ID); {
	case err == nil:
		return refuse(CmdStart, "release id %q was started before: give each release an id of its own", rel.ID)
	case !errors.Is(err, ErrNotFound):
		return fmt.Errorf("rollout: start %q: %w", rel.ID, err)
	}
	_, plan, err := d.bind(rel)
	if err != nil {
		return err
	}
	idx, rev, err := d.index(ctx)
	if err != nil {
		return err
	}
	r, err := New(ctx, plan, d.options())
	if err != nil {
		return err
	}
	idx.Active = rel.ID
	idx.Releases = append(idx.Releases, indexEntry{ID: rel.ID, Version: rel.Version})
	if n := len(idx.Releases); n > maxIndexed {
		idx.Releases = idx.Releases[n-maxIndexed:]
	}
	data, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if _, err := d.o.Store.Save(ctx, d.o.IndexID, rev, data); err != nil {
		return fmt.Errorf("%w: release %q is stored but not active (the index was not saved): %w", ErrNotSaved, rel.ID, err)
	}
	d.o.Logger.Info("rollout release started", "release", rel.ID, "release.version", rel.Version, "steps", len(plan.Steps))
	d.setCurrentLocked(r)
	return nil
}

func (d *Driver) start(ctx context.Context, rel *Release) error { return d.Start(ctx, rel) }

func (d *Driver) view(context.Context) (StatusView, <-chan struct{}, <-chan struct{}, error) {
	r, switched := d.current()
	if r == nil {
		return StatusView{}, nil, switched, ErrNoRollout
	}
	ch := r.Changed()
	return view(r), ch, switched, nil
}

func (d *Driver) command(ctx context.Context, cmd, reason string) error {
	r, _ := d.current()
	if r == nil {
		return ErrNoRollout
	}
	return r.Command(ctx, cmd, reason)
}

// Handler returns the admin API of the active release (see NewHandler),
// with POST /api/start, which takes a release manifest as
// application/json or application/yaml (at most MaxReleaseSize) and
// answers the new rollout's status, or 400 with the manifest's error and
// line, or 409 when a release is still running.
func (d *Driver) Handler(o HandlerOptions) http.Handler { return newHandler(d, o) }

// Run drives the active release in this process until ctx ends (it
// returns ctx.Err()), until this process handed the drive away for good
// (an upgrade that the new process keeps: nil), or until the drive is lost
// to another runner (the error). Between releases it waits for Start, and
// after a release ended for a Retry or a new Start. A write the store
// refused is retried every RetryInterval.
func (d *Driver) Run(ctx context.Context) error {
	for {
		r, switched := d.current()
		if r == nil {
			select {
			case <-switched:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if d.o.Socket != nil {
			if err := d.o.Socket.Claim(); err != nil {
				d.o.Logger.Warn("rollout admin socket not claimed", "err", err)
			}
		}
		err := r.Run(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrHandedOff):
			resumed := false
			if d.o.AwaitDrive != nil {
				if resumed, err = d.o.AwaitDrive(ctx); err != nil {
					return err
				}
			}
			if !resumed {
				d.o.Logger.Info("rollout handed off: this process no longer drives", "rollout", r.ID())
				return nil
			}
			// Serving came back: the other process wrote the state
			// meanwhile; load it afresh and finish the rollback here.
			next, _, err := d.load(ctx, r.ID())
			if err != nil {
				return err
			}
			d.mu.Lock()
			if d.cur == r {
				d.setCurrentLocked(next)
			}
			d.mu.Unlock()
		case errors.Is(err, ErrNotSaved):
			d.o.Logger.Warn("rollout state not saved; retrying", "rollout", r.ID(), "err", err, "in", d.o.RetryInterval)
			t := time.NewTimer(d.o.RetryInterval)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		case err == nil, errors.Is(err, ErrRolledBack), errors.Is(err, ErrRollbackFailed):
			d.o.Logger.Info("rollout ended; waiting for a retry or another release", "rollout", r.ID(), "result", fmt.Sprint(err))
			for {
				ch := r.Changed()
				if !r.Status().Phase.Done() {
					break
				}
				select {
				case <-ch:
					continue
				case <-switched:
				case <-ctx.Done():
					return ctx.Err()
				}
				break
			}
		default:
			return err
		}
	}
}
