package openfeature

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	of "github.com/open-feature/go-sdk/openfeature"

	"github.com/batonhq/baton/flags"
)

// DefaultName is the provider name reported in OpenFeature metadata when
// Options.Name is empty.
const DefaultName = "baton-flags"

// DefaultEventBuffer is the capacity of the event channel when
// Options.EventBuffer is zero.
const DefaultEventBuffer = 64

// Options configures a Provider. The zero Options uses the defaults.
type Options struct {
	// Name is reported as the provider's metadata name. Empty means
	// DefaultName.
	Name string
	// EventBuffer is the event channel's capacity. Zero means
	// DefaultEventBuffer. When the SDK falls this far behind, events are
	// not waited for (that would hold up reloads and Close): a
	// CONFIGURATION_CHANGED that does not fit is dropped and counted
	// (Provider.Dropped), and a READY or STALE that does not fit is kept,
	// the latest one only, and sent before the next event.
	EventBuffer int
}

// Provider serves a flags.Store through the OpenFeature Go SDK. It
// implements of.FeatureProvider, of.StateHandler and of.EventHandler.
// The zero Provider is not usable; call New.
type Provider struct {
	store  *flags.Store
	name   string
	events chan of.Event

	mu      sync.Mutex // guards cancel, stop, stale, owed and initial
	cancel  func()
	stop    chan struct{}
	stale   map[string]bool // sources whose last update was rejected, or that say they are stale
	owed    *of.Event       // the latest READY or STALE the full channel refused
	initial *of.Event       // the STALE owed since Init, sent at the first evaluation
	pending atomic.Bool     // initial is set
	dropped atomic.Uint64
}

var (
	_ of.FeatureProvider = (*Provider)(nil)
	_ of.StateHandler    = (*Provider)(nil)
	_ of.EventHandler    = (*Provider)(nil)
)

// New returns a provider for store. The store's lifecycle stays with the
// caller: Shutdown stops the provider's events, not the store.
func New(store *flags.Store, opts Options) *Provider {
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.EventBuffer <= 0 {
		opts.EventBuffer = DefaultEventBuffer
	}
	return &Provider{store: store, name: opts.Name, events: make(chan of.Event, opts.EventBuffer)}
}

// Metadata returns the provider's name.
func (p *Provider) Metadata() of.Metadata { return of.Metadata{Name: p.name} }

// Hooks returns no hooks.
func (p *Provider) Hooks() []of.Hook { return nil }

// Init subscribes to the store's updates; the SDK then reports READY.
// Updates become PROVIDER_CONFIGURATION_CHANGED events; rejected updates,
// and sources that say their configuration may be out of date (a
// DocumentSource serving its cache or cut off from its transport),
// PROVIDER_STALE (the last good configuration is still served); and
// PROVIDER_READY follows once every such source is current again (accepted,
// confirmed or removed): an admin change or another file does not clear
// a file that is still bad.
//
// A store that already has stale sources at Init owes the SDK a STALE
// after the READY that Init's return causes. The SDK records that READY
// only after Init returns, so a STALE sent from Init could be overtaken by
// it; the provider sends it at the first evaluation instead, since the
// SDK evaluates only once it has recorded READY. (Events forwarded
// meanwhile do not send it: one could still precede that READY.)
func (p *Provider) Init(of.EvaluationContext) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel != nil {
		return nil
	}
	p.stop = make(chan struct{})
	stop := p.stop
	p.cancel = p.store.Subscribe(func(e flags.Event) { p.forward(e, stop) })
	// Read after subscribing, so that no change falls between the two;
	// events already on their way wait for p.mu and apply after this.
	stale := p.store.StaleSources()
	p.stale = map[string]bool{}
	if len(stale) == 0 {
		return nil
	}
	var why []string
	for _, src := range slices.Sorted(maps.Keys(stale)) {
		p.stale[src] = true
		why = append(why, src+": "+stale[src].Error())
	}
	p.initial = &of.Event{ProviderName: p.name, EventType: of.ProviderStale,
		ProviderEventDetails: of.ProviderEventDetails{
			Message:       "serving a configuration that may be out of date (" + strings.Join(why, "; ") + ")",
			EventMetadata: map[string]any{"version": int64(p.store.Version())},
		}}
	p.pending.Store(true)
	return nil
}

// flushInitial sends the STALE owed since Init, if its sources are still
// stale.
func (p *Provider) flushInitial() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.initial == nil {
		return
	}
	ev := *p.initial
	p.initial = nil
	p.pending.Store(false)
	if len(p.stale) == 0 || p.cancel == nil {
		return
	}
	if p.owed == nil && p.trySend(ev) {
		return
	}
	if p.owed != nil {
		p.dropped.Add(1)
	}
	p.owed = &ev
}

// Shutdown stops forwarding events. The event channel stays open (the SDK
// may still be selecting on it) and Init may be called again.
func (p *Provider) Shutdown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel == nil {
		return
	}
	p.cancel()
	close(p.stop)
	p.cancel, p.stop = nil, nil
	p.initial = nil
	p.pending.Store(false)
}

// EventChannel returns the channel the SDK reads events from.
func (p *Provider) EventChannel() <-chan of.Event { return p.events }

// forward turns a store event into SDK events. Staleness is tracked per
// source: a rejected file stays stale until that file is accepted (or
// removed), whatever other sources (code, admin overrides) do meanwhile.
func (p *Provider) forward(e flags.Event, stop <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-stop:
		return // shut down while this event was on its way
	default:
	}
	wasStale := len(p.stale) > 0
	if e.Kind == flags.EventRejected || e.Kind == flags.EventStale {
		if p.stale == nil {
			p.stale = map[string]bool{}
		}
		p.stale[e.Source] = true
	} else {
		delete(p.stale, e.Source)
	}
	wasStale = wasStale && len(p.stale) == 0 // READY again only when no source is stale
	var evs []of.Event
	if wasStale {
		evs = append(evs, of.Event{ProviderName: p.name, EventType: of.ProviderReady,
			ProviderEventDetails: of.ProviderEventDetails{Message: "configuration current again (" + e.Source + ")"}})
	}
	switch e.Kind {
	case flags.EventUpdated:
		evs = append(evs, of.Event{ProviderName: p.name, EventType: of.ProviderConfigChange,
			ProviderEventDetails: of.ProviderEventDetails{
				Message:       "configuration updated by " + e.Source,
				FlagChanges:   e.Changed,
				EventMetadata: map[string]any{"version": int64(e.Version), "source": e.Source},
			}})
	case flags.EventRejected:
		evs = append(evs, of.Event{ProviderName: p.name, EventType: of.ProviderStale,
			ProviderEventDetails: of.ProviderEventDetails{
				Message:   "update rejected, serving the last good configuration: " + e.Err.Error(),
				ErrorCode: of.ParseErrorCode,
				// The SDK does not pass ErrorCode on to handlers; the
				// metadata carries it too.
				EventMetadata: map[string]any{"version": int64(e.Version), "source": e.Source, "errorCode": string(of.ParseErrorCode)},
			}})
	case flags.EventStale:
		evs = append(evs, of.Event{ProviderName: p.name, EventType: of.ProviderStale,
			ProviderEventDetails: of.ProviderEventDetails{
				Message:       "serving a configuration that may be out of date: " + e.Source + ": " + e.Err.Error(),
				EventMetadata: map[string]any{"version": int64(e.Version), "source": e.Source},
			}})
	}
	// Never block: the store delivers events on the updating goroutine (a
	// FileSource's reload, an admin request), which must not wait for a
	// slow SDK reader.
	if p.owed != nil && p.trySend(*p.owed) {
		p.owed = nil
	}
	for _, ev := range evs {
		if p.owed == nil && p.trySend(ev) {
			continue
		}
		if ev.EventType == of.ProviderConfigChange {
			p.dropped.Add(1)
			continue
		}
		// A state change must not be lost, or the SDK would report the
		// wrong state until the next one: keep the latest for later.
		if p.owed != nil {
			p.dropped.Add(1)
		}
		p.owed = &ev
	}
}

func (p *Provider) trySend(ev of.Event) bool {
	select {
	case p.events <- ev:
		return true
	default:
		return false
	}
}

// Dropped returns the number of events not delivered because the SDK did
// not read the event channel fast enough (see Options.EventBuffer).
func (p *Provider) Dropped() uint64 { return p.dropped.Load() }

func resolution(flag string, r flags.Result) of.ProviderResolutionDetail {
	code := r.ErrorCode()
	if code == flags.CodeNone {
		return of.ProviderResolutionDetail{Reason: of.Reason(r.Reason()), Variant: r.Variant(), FlagMetadata: r.Metadata()}
	}
	d := of.ProviderResolutionDetail{Reason: of.ErrorReason, FlagMetadata: r.Metadata()}
	switch code {
	case flags.CodeFlagNotFound:
		d.ResolutionError = of.NewFlagNotFoundResolutionError("flag " + flag + " not found")
	case flags.CodeTypeMismatch:
		d.ResolutionError = of.NewTypeMismatchResolutionError("flag " + flag + " has another type")
	default:
		d.ResolutionError = of.NewGeneralResolutionError("flag " + flag + ": " + string(code))
	}
	return d
}

// The flattened map already holds "targetingKey", which EvalContext reads
// from Attributes: the context is used in place, with no copy.

// BooleanEvaluation evaluates a bool flag.
func (p *Provider) BooleanEvaluation(_ context.Context, flag string, def bool, flat of.FlattenedContext) of.BoolResolutionDetail {
	if p.pending.Load() {
		p.flushInitial()
	}
	r := p.store.Evaluate(flag, &flags.EvalContext{Attributes: flat}, flags.TypeBool)
	return of.BoolResolutionDetail{Value: r.Bool(def), ProviderResolutionDetail: resolution(flag, r)}
}

// StringEvaluation evaluates a string flag.
func (p *Provider) StringEvaluation(_ context.Context, flag string, def string, flat of.FlattenedContext) of.StringResolutionDetail {
	if p.pending.Load() {
		p.flushInitial()
	}
	r := p.store.Evaluate(flag, &flags.EvalContext{Attributes: flat}, flags.TypeString)
	return of.StringResolutionDetail{Value: r.String(def), ProviderResolutionDetail: resolution(flag, r)}
}

// FloatEvaluation evaluates a float flag (or an int flag, converted).
func (p *Provider) FloatEvaluation(_ context.Context, flag string, def float64, flat of.FlattenedContext) of.FloatResolutionDetail {
	if p.pending.Load() {
		p.flushInitial()
	}
	r := p.store.Evaluate(flag, &flags.EvalContext{Attributes: flat}, flags.TypeFloat)
	return of.FloatResolutionDetail{Value: r.Float(def), ProviderResolutionDetail: resolution(flag, r)}
}

// IntEvaluation evaluates an int flag.
func (p *Provider) IntEvaluation(_ context.Context, flag string, def int64, flat of.FlattenedContext) of.IntResolutionDetail {
	if p.pending.Load() {
		p.flushInitial()
	}
	r := p.store.Evaluate(flag, &flags.EvalContext{Attributes: flat}, flags.TypeInt)
	return of.IntResolutionDetail{Value: r.Int(def), ProviderResolutionDetail: resolution(flag, r)}
}

// ObjectEvaluation evaluates a flag of any type and returns its value as
// defined; an object flag's value is shared and must not be modified.
func (p *Provider) ObjectEvaluation(_ context.Context, flag string, def any, flat of.FlattenedContext) of.InterfaceResolutionDetail {
	if p.pending.Load() {
		p.flushInitial()
	}
	r := p.store.EvaluateAny(flag, &flags.EvalContext{Attributes: flat})
	return of.InterfaceResolutionDetail{Value: r.Object(def), ProviderResolutionDetail: resolution(flag, r)}
}
