package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Defaults of Options.
const (
	DefaultLeaseTTL      = 5 * time.Second
	DefaultProbeInterval = time.Second
)

// Lifecycle states of a member: graceful.State's words, so that an agent
// reports Upgrader.State().String() as it is.
const (
	StateStarting  = "starting"
	StateReady     = "ready"
	StateUpgrading = "upgrading"
	StateBaking    = "baking"
	StateDraining  = "draining"
	StateStopped   = "stopped"
)

func validState(s string) bool {
	switch s {
	case StateStarting, StateReady, StateUpgrading, StateBaking, StateDraining, StateStopped:
		return true
	}
	return false
}

// Options configure Join. Version is required; every other zero field
// means its documented default.
type Options struct {
	// Namespace is the root of the fleet's keys (see Layout). Every
	// instance of one fleet uses the same. Empty means DefaultNamespace.
	Namespace string
	// ID names this instance in the fleet: a key segment (letters,
	// digits, '.', '_', '-'). An instance restarted with the same ID takes
	// its record over. Empty means "<host>-<pid>".
	ID string
	// Host is the machine's name. Empty means os.Hostname.
	Host string
	// Address is where the instance serves (host:port), as a load
	// balancer or a peer would reach it. Empty means not advertised.
	Address string
	// Version of the running binary (required).
	Version string
	// State is the first lifecycle state. Empty means StateStarting.
	State string
	// LeaseTTL: a member that stops renewing (dead, stopped, cut off)
	// disappears this long after its last renewal, and a driver's
	// successor takes over within it. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// ProbeInterval is how often the engine is probed; a probe that gets
	// no answer within it makes the member stale. Zero means
	// DefaultProbeInterval.
	ProbeInterval time.Duration
	// Logger receives the member's transitions. Nil discards.
	Logger *slog.Logger
	// MeterProvider gets the fleet's gauges and counters. Nil means no-op.
	MeterProvider metric.MeterProvider
}

// MemberInfo is one member's record. The zero value is a record with no
// id.
type MemberInfo struct {
	ID      string    `json:"id"`
	Host    string    `json:"host"`
	Address string    `json:"address,omitempty"`
	Version string    `json:"version"`
	PID     int       `json:"pid"`
	State   string    `json:"state"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	// Revision is the engine revision of the record (not stored in it).
	Revision int64 `json:"-"`
}

// Member is this instance's membership in a fleet: its record under a
// lease (renewed while the process lives and reaches the engine), the
// engine's health as seen from here, and the live members. Create it with
// Join; Leave or Close it. The zero value is not usable.
//
// One goroutine, owned by the Member, probes the engine, renews the
// registration after a lost lease, and keeps the members' list current;
// Close and Leave stop it and every Mirror made by the Member.
type Member struct {
	e    Engine
	o    Options
	keys Layout
	log  *slog.Logger
	tel  *telemetry

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	health *healthState

	mu      sync.Mutex
	info    MemberInfo
	lease   Lease
	leaseCh chan struct{} // closed and replaced when the lease changes
	closed  bool
	members *Mirror
}

// Join registers this instance in the fleet on e and starts keeping the
// registration alive. If the engine cannot be reached now, Join still
// returns the Member, stale, and it registers as soon as the engine
// answers; only invalid options are an error.
func Join(ctx context.Context, e Engine, o Options) (*Member, error) {
	if e == nil {
		return nil, errors.New("fleet: Join: nil Engine")
	}
	if o.Version == "" {
		return nil, errors.New("fleet: Join: Options.Version is required")
	}
	if o.Host == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		o.Host = h
	}
	if o.ID == "" {
		o.ID = o.Host + "-" + strconv.Itoa(os.Getpid())
	}
	if o.State == "" {
		o.State = StateStarting
	}
	if !validState(o.State) {
		return nil, fmt.Errorf("fleet: Join: state %q is not a lifecycle state (starting, ready, upgrading, baking, draining, stopped)", o.State)
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	keys := NewLayout(o.Namespace)
	if err := ValidKey(keys.Member(o.ID)); err != nil {
		return nil, fmt.Errorf("fleet: Join: namespace %q and id %q: %w", o.Namespace, o.ID, err)
	}
	m := &Member{e: e, o: o, keys: keys, log: o.Logger, health: newHealthState(), leaseCh: make(chan struct{})}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.log = m.log.With("fleet.member", o.ID)
	now := time.Now()
	m.info = MemberInfo{ID: o.ID, Host: o.Host, Address: o.Address, Version: o.Version, PID: os.Getpid(), State: o.State, Started: now}
	m.tel = newTelemetry(o.MeterProvider, m)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.probe(ctx)
	m.register(ctx)
	m.members = m.newMirror(keys.Members())
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.run()
	}()
	return m, nil
}

// ID returns the member's id.
func (m *Member) ID() string { return m.o.ID }

// Engine returns the engine the member is on.
func (m *Member) Engine() Engine { return m.e }

// Layout returns the fleet's key layout.
func (m *Member) Layout() Layout { return m.keys }

// Info returns this member's record as last written (or to be written).
func (m *Member) Info() MemberInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.info
}

// Health returns the member's view of the engine.
func (m *Member) Health() Health {
	h, _ := m.health.get()
	return h
}

// HealthChanged returns a channel closed at the next change of Health.
func (m *Member) HealthChanged() <-chan struct{} {
	_, ch := m.health.get()
	return ch
}

// AwaitFresh blocks until the member is registered and reaches the
// engine, or ctx ends.
func (m *Member) AwaitFresh(ctx context.Context) error { return m.health.awaitFresh(ctx) }

// Lease returns the current membership lease (nil while not registered)
// and a channel closed when it changes.
func (m *Member) Lease() (Lease, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lease, m.leaseCh
}

// SetState records a new lifecycle state (one of the State constants) in
// the member's record. While the engine is unreachable the state is kept
// and written at the next registration; the error then says so.
func (m *Member) SetState(ctx context.Context, state string) error {
	if !validState(state) {
		return fmt.Errorf("fleet: SetState: %q is not a lifecycle state (starting, ready, upgrading, baking, draining, stopped)", state)
	}
	m.mu.Lock()
	m.info.State = state
	m.mu.Unlock()
	return m.write(ctx)
}

// write puts the record under the current lease.
func (m *Member) write(ctx context.Context) error {
	m.mu.Lock()
	l := m.lease
	m.info.Updated = time.Now()
	info := m.info
	m.mu.Unlock()
	if l == nil {
		return fmt.Errorf("fleet: member %s is not registered now (engine unreachable?); the record is written when it is", info.ID)
	}
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.o.LeaseTTL)
	defer cancel()
	_, err = m.e.Commit(ctx, Txn{Ops: []Op{{Key: m.keys.Member(info.ID), Value: b, Prev: Any, Lease: l.ID()}}})
	return err
}

// run probes the engine every ProbeInterval and registers again after a
// lost lease, until Close.
func (m *Member) run() {
	t := time.NewTicker(m.o.ProbeInterval)
	defer t.Stop()
	for {
		l, _ := m.Lease()
		var lost <-chan struct{}
		if l != nil {
			lost = l.Done()
		}
		select {
		case <-m.ctx.Done():
			return
		case <-lost:
			m.leaseLost(l)
		case <-t.C:
			m.probe(m.ctx)
			if l == nil {
				m.register(m.ctx)
			}
		}
	}
}

func (m *Member) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, m.o.ProbeInterval)
	err := m.e.Ping(ctx)
	cancel()
	if m.ctx.Err() != nil {
		return
	}
	before, after := m.health.update(func(h *Health) {
		h.Reachable = err == nil
		if err == nil {
			h.LastContact = time.Now()
			if h.Registered {
				h.Err = ""
			}
		} else {
			h.Err = err.Error()
		}
	})
	switch {
	case before.Reachable && !after.Reachable:
		m.tel.outages.Add(context.Background(), 1, m.tel.attrs)
		m.log.Warn("fleet: engine unreachable; this instance keeps serving what it last applied and reports stale", "err", err)
	case !before.Reachable && after.Reachable && !before.Since.IsZero() && before.LastContact != (time.Time{}):
		m.log.Info("fleet: engine reachable again; catching up", "unreachable_for", time.Since(before.Since).Round(time.Millisecond))
	}
}

// register grants a lease and writes the record under it.
func (m *Member) register(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, m.o.LeaseTTL)
	defer cancel()
	l, err := m.e.Grant(ctx, m.o.LeaseTTL)
	if err == nil {
		m.mu.Lock()
		m.lease = l
		m.mu.Unlock()
		if err = m.write(ctx); err != nil {
			m.mu.Lock()
			m.lease = nil
			m.mu.Unlock()
			_ = l.Revoke(ctx)
		}
	}
	if m.ctx.Err() != nil {
		return
	}
	if err != nil {
		m.health.update(func(h *Health) { h.Registered = false; h.Err = err.Error() })
		return
	}
	m.mu.Lock()
	close(m.leaseCh)
	m.leaseCh = make(chan struct{})
	m.mu.Unlock()
	_, after := m.health.update(func(h *Health) {
		h.Registered = true
		if h.Reachable {
			h.Err = ""
		}
	})
	m.log.Info("fleet: registered", "lease", l.ID(), "ttl", l.TTL(), "stale", after.Stale())
}

func (m *Member) leaseLost(l Lease) {
	m.mu.Lock()
	if m.lease != l {
		m.mu.Unlock()
		return
	}
	m.lease = nil
	close(m.leaseCh)
	m.leaseCh = make(chan struct{})
	closed := m.closed
	m.mu.Unlock()
	if closed || m.ctx.Err() != nil {
		return
	}
	m.tel.leaseLost.Add(context.Background(), 1, m.tel.attrs)
	m.health.update(func(h *Health) { h.Registered = false; h.Err = "membership lease lost" })
	m.log.Warn("fleet: membership lease lost; registering again when the engine answers", "lease", l.ID())
	// The lease may still live on the server (a server that restarted
	// extends leases): revoke it so its record and candidacy go now.
	ctx, cancel := context.WithTimeout(m.ctx, m.o.ProbeInterval)
	_ = l.Revoke(ctx)
	cancel()
	m.register(m.ctx)
}

// Members returns the live members as last seen (sorted by id). While the
// member is stale the list is the last one known.
func (m *Member) Members() []MemberInfo {
	if m.members == nil {
		return nil
	}
	docs, _ := m.members.Snapshot()
	out := make([]MemberInfo, 0, len(docs))
	for _, d := range docs {
		var mi MemberInfo
		if json.Unmarshal(d.Value, &mi) == nil {
			mi.Revision = d.Revision
			out = append(out, mi)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// MembersChanged returns a channel closed at the next change of Members.
func (m *Member) MembersChanged() <-chan struct{} { return m.members.Changed() }

// Leave stops the member like Close, then deletes its record at once
// (revoking its lease). The member stops first so that nothing registers
// it again once the lease is gone: a process handing over to a successor
// with the same ID would otherwise write its record back over the
// successor's, under a lease that dies with it.
func (m *Member) Leave(ctx context.Context) error {
	cerr := m.Close()
	m.mu.Lock()
	l := m.lease
	m.mu.Unlock()
	var err error
	if l != nil {
		err = l.Revoke(ctx)
	}
	return errors.Join(err, cerr)
}

// Close stops the member's goroutines and Mirrors. Its record stays: the
// engine keeps renewing the lease until the engine is closed (or the
// process ends), and the record goes one TTL later; Leave deletes it now.
// It is idempotent. The engine is the caller's to close.
func (m *Member) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	m.tel.close()
	return nil
}
