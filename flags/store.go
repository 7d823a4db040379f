package flags

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// DefaultClockResolution is how often the Store's coarse clock ticks. The
// coarse clock stamps "last evaluated" and drives progressive rollouts and
// time conditions without a clock read per evaluation, so a scheduled step
// takes effect up to this late.
const DefaultClockResolution = 250 * time.Millisecond

// Options configures a Store. The zero Options is usable: no logging, no
// metrics, the wall clock.
type Options struct {
	// Logger receives reloads (Info), rejected updates (Error) and run-time
	// changes (Info). Nil discards.
	Logger *slog.Logger
	// MeterProvider receives the metrics listed in the package
	// documentation. Nil means no metrics.
	MeterProvider metric.MeterProvider
	// OnReject is called, after logging, with every rejected update (a
	// *LoadError, or a read error from a FileSource). The last good
	// configuration stays in force. Nil means no callback. It must not call
	// back into the Store synchronously.
	OnReject func(error)
	// Now replaces the clock, for tests of schedules. It is called on every
	// evaluation that needs the time, and no clock goroutine runs. Nil
	// means the wall clock read through a coarse clock.
	Now func() time.Time
	// ClockResolution is the coarse clock's tick. Zero means
	// DefaultClockResolution.
	ClockResolution time.Duration
}

// EventKind says what an Event reports. The zero EventKind is invalid.
type EventKind uint8

// Event kinds.
const (
	EventUpdated  EventKind = iota + 1 // a new configuration is in force
	EventRejected                      // an update was refused; the previous configuration stays
	// EventStale: a source's configuration, still in force, may be out of
	// date (a DocumentSource started from its cache, or lost its
	// transport). The configuration is unchanged.
	EventStale
	// EventFresh: a stale source is known to be current again with no
	// change to the configuration (its transport confirmed the version
	// in force). An accepted update of the source says so too, as
	// EventUpdated.
	EventFresh
)

// Event reports a configuration change to subscribers. The zero Event
// has no kind and is never delivered.
type Event struct {
	Kind    EventKind
	Source  string   // the source that was set, rejected, stale or fresh
	Changed []string // flags added, removed or changed (EventUpdated), sorted
	Err     error    // why the update was rejected (EventRejected) or the source is stale (EventStale)
	Version uint64   // configuration version in force after the event
}

// Store holds the flag configuration in force and evaluates flags. It is
// safe for concurrent use: evaluations read an immutable snapshot through
// an atomic pointer and never wait for an update; an update compiles a new
// snapshot aside and swaps it in whole, or is rejected whole.
//
// The zero Store is not usable; call New.
type Store struct {
	snap atomic.Pointer[snapshot]

	log      *slog.Logger
	onReject func(error)
	nowFn    func() time.Time
	coarse   atomic.Int64 // unix nanoseconds, ticked by the clock goroutine
	met      *metrics
	unknown  atomic.Uint64 // evaluations of flags that do not exist

	mu        sync.Mutex // guards the fields below and serialises updates
	layers    []layer
	overrides map[string]Override // the Store's own run-time changes
	usage     map[string]*usage
	version   uint64
	subs      map[int]func(Event)
	shards    int // counter lines per variant, a power of two
	nextSub   int
	stale     map[string]error // sources whose configuration may be out of date, and why
	closed    bool
	ticket    uint64 // next event's place in the delivery order

	// Events are delivered in ticket order: a change takes a ticket under
	// mu and, once mu is released, waits for its turn to run the
	// subscribers, so that two racing updates cannot reach subscribers in
	// the opposite order. No lock is held while subscribers run.
	deliverMu sync.Mutex
	turn      *sync.Cond // on deliverMu, signalled when served advances
	served    uint64     // tickets delivered

	stop chan struct{}
	done chan struct{}
}

// New returns a Store with no flags; add definitions with Set or a
// FileSource. It starts a clock goroutine (unless Options.Now is set) that
// Close stops.
func New(opts Options) (*Store, error) {
	s := &Store{
		log:       opts.Logger,
		onReject:  opts.OnReject,
		nowFn:     opts.Now,
		overrides: map[string]Override{},
		usage:     map[string]*usage{},
		subs:      map[int]func(Event){},
		stale:     map[string]error{},
		shards:    1,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	s.turn = sync.NewCond(&s.deliverMu)
	for s.shards < runtime.GOMAXPROCS(0) && s.shards < maxShards {
		s.shards *= 2
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s.snap.Store(&snapshot{flags: map[string]*cflag{}, segments: map[string]*csegment{}, loadedAt: s.now()})
	m, err := newMetrics(s, opts.MeterProvider)
	if err != nil {
		return nil, fmt.Errorf("flags: metrics: %w", err)
	}
	s.met = m
	if s.nowFn != nil {
		close(s.done)
		return s, nil
	}
	res := opts.ClockResolution
	if res <= 0 {
		res = DefaultClockResolution
	}
	s.coarse.Store(time.Now().UnixNano())
	go s.tick(res)
	return s, nil
}

func (s *Store) tick(res time.Duration) {
	defer close(s.done)
	t := time.NewTicker(res)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.coarse.Store(now.UnixNano())
		}
	}
}

// Close stops the clock goroutine and unregisters metric callbacks.
// Evaluations keep working on the last configuration (with a clock frozen
// at Close); updates return ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.nowFn == nil {
		close(s.stop)
	}
	s.mu.Unlock()
	<-s.done
	return s.met.close()
}

func (s *Store) now() time.Time {
	if s.nowFn != nil {
		return s.nowFn()
	}
	return time.Now()
}

func (s *Store) nowNano() int64 {
	if s.nowFn != nil {
		return s.nowFn().UnixNano()
	}
	return s.coarse.Load()
}

// Set replaces the definitions contributed by source (any name: "code",
// a file set...) and swaps in the combined configuration of all sources.
// A flag or segment defined by two sources is an error. On error nothing
// changes, and the error (a *LoadError wrapping ErrInvalid) is also logged,
// counted and passed to Options.OnReject and subscribers.
func (s *Store) Set(source string, cfg Config) error {
	err := s.update(source, func(layers []layer) []layer {
		i := slices.IndexFunc(layers, func(l layer) bool { return l.name == source })
		if i < 0 {
			return append(layers, layer{source, cfg})
		}
		layers[i].cfg = cfg
		return layers
	}, nil)
	if err != nil && !errors.Is(err, ErrClosed) {
		s.reject(source, err)
	}
	return err
}

// Remove drops the definitions of source. Removing a source whose flags
// are prerequisites of another source's flags is rejected, and reported
// like a rejected Set (log, metric, OnReject, subscribers).
func (s *Store) Remove(source string) error {
	err := s.update(source, func(layers []layer) []layer {
		return slices.DeleteFunc(layers, func(l layer) bool { return l.name == source })
	}, nil)
	if err != nil && !errors.Is(err, ErrClosed) {
		s.reject(source, err)
	}
	return err
}

// update recompiles with changed layers or overrides; it holds mu so that
// updates apply in order.
func (s *Store) update(source string, edit func([]layer) []layer, editOverrides func(map[string]Override) error) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	layers := edit(slices.Clone(s.layers))
	overrides := maps.Clone(s.overrides)
	if editOverrides != nil {
		if err := editOverrides(overrides); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	start := time.Now()
	sn, err := compile(layers, overrides)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	old := s.snap.Load()
	s.attach(sn)
	s.version++
	sn.version = s.version
	sn.loadedAt = s.now()
	for _, d := range sn.dropped {
		if d.source != "" {
			s.log.Warn("flags: override skipped: it does not apply to the flag in force", "flag", d.flag, "source", d.source, "err", d.err)
			continue
		}
		s.log.Warn("flags: run-time override dropped", "flag", d.flag, "err", d.err)
		delete(overrides, d.flag)
	}
	for key := range overrides {
		// A flag that comes back later starts from its definition, not
		// from a kill switch thrown at a previous incarnation.
		if sn.flags[key] == nil {
			s.log.Info("flags: run-time override dropped with its flag", "flag", key)
			delete(overrides, key)
		}
	}
	changed := diff(s.layers, layers, old, sn)
	s.layers, s.overrides = layers, overrides
	delete(s.stale, source)
	s.snap.Store(sn)
	ev := Event{Kind: EventUpdated, Source: source, Changed: changed, Version: sn.version}
	subs := s.subscribers()
	t := s.takeTicket()
	s.mu.Unlock()

	s.log.Info("flags: configuration updated", "source", source, "version", sn.version,
		"flags", len(sn.flags), "changed", len(changed), "compile", time.Since(start))
	s.met.updated()
	s.notify(t, subs, ev)
	return nil
}

// takeTicket reserves the next place in the delivery order. Called with mu
// held.
func (s *Store) takeTicket() uint64 {
	t := s.ticket
	s.ticket++
	return t
}

// notify waits until every earlier ticket is delivered, then runs the
// subscribers and lets the next ticket go.
func (s *Store) notify(t uint64, subs []func(Event), ev Event) {
	s.deliverMu.Lock()
	for s.served != t {
		s.turn.Wait()
	}
	s.deliverMu.Unlock()
	defer func() {
		s.deliverMu.Lock()
		s.served++
		s.turn.Broadcast()
		s.deliverMu.Unlock()
	}()
	for _, fn := range subs {
		fn(ev)
	}
}

func (s *Store) subscribers() []func(Event) {
	ids := slices.Sorted(maps.Keys(s.subs))
	fns := make([]func(Event), len(ids))
	for i, id := range ids {
		fns[i] = s.subs[id]
	}
	return fns
}

// reject reports a refused update everywhere the package promises.
func (s *Store) reject(source string, err error) {
	s.log.Error("flags: update rejected; previous configuration stays in force", "source", source, "err", err)
	s.met.rejected()
	if s.onReject != nil {
		s.onReject(err)
	}
	s.staleEvent(EventRejected, source, err)
}

// markStale records that source's configuration may be out of date and
// tells subscribers (EventStale); the configuration stays in force.
func (s *Store) markStale(source string, why error) {
	s.log.Warn("flags: source may be out of date; its last configuration stays in force", "source", source, "why", why)
	s.staleEvent(EventStale, source, why)
}

// staleEvent records source as stale for why and delivers an event of
// kind, in its turn.
func (s *Store) staleEvent(kind EventKind, source string, why error) {
	s.mu.Lock()
	s.stale[source] = why
	subs := s.subscribers()
	ev := Event{Kind: kind, Source: source, Err: why, Version: s.version}
	t := s.takeTicket()
	s.mu.Unlock()
	s.notify(t, subs, ev)
}

// markFresh records that a stale source is current again with its
// configuration unchanged (EventFresh); it does nothing for a source that
// is not stale.
func (s *Store) markFresh(source string) {
	s.mu.Lock()
	if _, ok := s.stale[source]; !ok {
		s.mu.Unlock()
		return
	}
	delete(s.stale, source)
	subs := s.subscribers()
	ev := Event{Kind: EventFresh, Source: source, Version: s.version}
	t := s.takeTicket()
	s.mu.Unlock()
	s.log.Info("flags: source is current again", "source", source, "version", ev.Version)
	s.notify(t, subs, ev)
}

// StaleSources returns, for each source whose configuration may be out of
// date, why: its last update was rejected (the error), or it says so
// itself (a DocumentSource serving its cache or cut off from its
// transport). Empty when every source is current. The OpenFeature provider
// reads it to report STALE from the start.
func (s *Store) StaleSources() map[string]error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.stale)
}

// Subscribe calls fn after every update and every rejection, on the
// goroutine that made the change. Events are delivered one at a time, in
// the order the changes took effect (Version never goes backwards), even
// when sources update concurrently: a change that races another waits for
// the other's subscribers to return. fn must return quickly and must not
// update the Store (that would wait for its own turn forever). The
// returned function unsubscribes.
func (s *Store) Subscribe(fn func(Event)) (cancel func()) {
	s.mu.Lock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = fn
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
	}
}

// Version returns the version of the configuration in force: 0 before the
// first update, then one more per accepted update.
func (s *Store) Version() uint64 { return s.snap.Load().version }

// attach gives the new snapshot's flags the usage counters of the flags
// they replace, so counts survive reloads. Called with mu held.
func (s *Store) attach(sn *snapshot) {
	now := s.now()
	for key, f := range sn.flags {
		u := s.usage[key]
		if u == nil {
			u = &usage{since: now}
			s.usage[key] = u
		}
		f.usage = u
		f.counters = make([]*vcounters, len(f.variants))
		for i := range f.variants {
			name := f.variants[i].name
			j := slices.IndexFunc(u.variants, func(nc namedCounters) bool { return nc.variant == name })
			if j < 0 {
				j = len(u.variants)
				u.variants = append(u.variants, namedCounters{name, &vcounters{lines: make([]counterLine, s.shards)}})
			}
			f.counters[i] = u.variants[j].c
		}
	}
	for key := range s.usage {
		if sn.flags[key] == nil {
			delete(s.usage, key)
		}
	}
}

// diff lists the flags whose definition or run-time state changed.
func diff(oldLayers, newLayers []layer, old, sn *snapshot) []string {
	find := func(ls []layer, hint int, key string) (Flag, bool) {
		if hint < len(ls) {
			if f, ok := ls[hint].cfg.Flags[key]; ok {
				return f, true
			}
		}
		for _, l := range ls {
			if f, ok := l.cfg.Flags[key]; ok {
				return f, true
			}
		}
		return Flag{}, false
	}
	var changed []string
	for i, l := range newLayers {
		for key, nf := range l.cfg.Flags {
			o, f := old.flags[key], sn.flags[key]
			of, ok := find(oldLayers, i, key)
			if o == nil || !ok || !flagEqual(&of, &nf) || o.disabled != f.disabled || !overrideEqual(o.override, f.override) {
				changed = append(changed, key)
			}
		}
	}
	for key := range old.flags {
		if sn.flags[key] == nil {
			changed = append(changed, key)
		}
	}
	slices.Sort(changed)
	return changed
}
