package fleetflags

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
)

// DefaultApplyWait bounds how long a Writer made by Source.Writer waits for
// its own host to apply a change it stored.
const DefaultApplyWait = 5 * time.Second

// maxAttempts bounds the read-edit-write rounds of one change against
// concurrent writers.
const maxAttempts = 16

// Writer stores new versions of the fleet's flag document, each validated
// first with the same checks, and the same line-accurate errors, as a file
// (flags.ValidateDocument): a bad document is refused before it is stored,
// so it never reaches a host. A change of one flag's override is a
// read-edit-write of the whole document with compare-and-swap on the
// revision read (flags.EditOverride), retried on a concurrent change. It
// implements flags.OverrideWriter (give it to flags.AdminOptions.Overrides,
// so that an admin change on any host goes to every host) and, through
// Ramps, rollout.FlagRamper. The zero value is not usable.
type Writer struct {
	e      fleet.Engine
	key    string
	doc    string
	commit func(ctx context.Context, op fleet.Op) (int64, error)
	src    *Source // awaited after a write, when set
}

// Writer returns a Writer for the Source's document that writes from the
// member it follows, unfenced (compare-and-swap keeps concurrent writers
// apart), and returns once this host has applied the change (at most
// DefaultApplyWait after it was stored), so that an admin answer shows
// it. Before Follow it is nil.
func (s *Source) Writer() *Writer {
	s.mu.Lock()
	m := s.m
	s.mu.Unlock()
	if m == nil {
		return nil
	}
	w := NewWriter(m, s.o.Document)
	w.src = s
	return w
}

// NewWriter returns a Writer of the document doc (DefaultDocument when
// empty) that writes from m, unfenced, and does not wait for any host.
func NewWriter(m *fleet.Member, doc string) *Writer {
	if doc == "" {
		doc = DefaultDocument
	}
	e := m.Engine()
	return &Writer{e: e, key: Key(m.Layout(), doc), doc: doc, commit: func(ctx context.Context, op fleet.Op) (int64, error) {
		return e.Commit(ctx, fleet.Txn{Ops: []fleet.Op{op}})
	}}
}

// LeadWriter returns a Writer of the document doc (DefaultDocument when
// empty) whose writes are fenced by l's leadership: a rollout's flag ramp,
// refused once the driver is deposed.
func LeadWriter(l *fleet.Lead, doc string) *Writer {
	if doc == "" {
		doc = DefaultDocument
	}
	m := l.Member()
	return &Writer{e: m.Engine(), key: Key(m.Layout(), doc), doc: doc, commit: func(ctx context.Context, op fleet.Op) (int64, error) {
		return l.Commit(ctx, op)
	}}
}

// Get returns the stored document and its revision (0 when there is
// none).
func (w *Writer) Get(ctx context.Context) ([]byte, int64, error) {
	d, err := w.e.Get(ctx, w.key)
	if errors.Is(err, fleet.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("fleetflags: reading %s: %w", w.key, err)
	}
	return d.Value, d.Revision, nil
}

// Put validates data and stores it as the new version of the document if
// the stored one is still at revision prev (0: none stored; fleet.Any:
// whatever is stored). A bad document is refused with a *flags.LoadError
// (wrapping flags.ErrInvalid) and nothing is stored; a lost race fails
// with an error wrapping fleet.ErrConflict. It returns the new revision,
// the document's version on every host.
func (w *Writer) Put(ctx context.Context, data []byte, prev int64) (int64, error) {
	if err := flags.ValidateDocument(w.doc, data); err != nil {
		return 0, err
	}
	rev, err := w.commit(ctx, fleet.Op{Key: w.key, Value: data, Prev: prev})
	if err != nil {
		return 0, fmt.Errorf("fleetflags: storing %s: %w", w.key, err)
	}
	w.await(ctx, rev)
	return rev, nil
}

// UpdateOverride implements flags.OverrideWriter: edit changes the
// document's override of flag key, and the new version is stored.
func (w *Writer) UpdateOverride(ctx context.Context, key string, edit func(*flags.Override) error) error {
	for range maxAttempts {
		data, rev, err := w.Get(ctx)
		if err != nil {
			return err
		}
		if rev == 0 {
			return fmt.Errorf("fleetflags: no flag document at %s to change flag %q in: store one first", w.key, key)
		}
		out, err := flags.EditOverride(w.doc, data, key, edit)
		if err != nil {
			return err
		}
		_, err = w.Put(ctx, out, rev)
		if !errors.Is(err, fleet.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("fleetflags: flag %q in %s: %d concurrent changes in a row; try again", key, w.key, maxAttempts)
}

// await waits, boundedly, for this host to apply revision rev.
func (w *Writer) await(ctx context.Context, rev int64) {
	if w.src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultApplyWait)
	defer cancel()
	_ = w.src.awaitProcessed(ctx, rev)
}

// DefaultVariant is the variant Ramps serves to the ramped share when
// Ramps.Variant is empty.
const DefaultVariant = "on"

// Ramps drives a fleet rollout's ramp-flag steps through the fleet's
// document: SetPercent serves Variant to that share of subjects with the
// kill switch off, Disable turns the flag's kill switch on, each a new
// version every host applies. Give it a LeadWriter, so that a deposed
// driver's ramp is refused. The zero value (nil Writer) fails every call.
type Ramps struct {
	Writer  *Writer
	Variant string // empty means DefaultVariant
}

// SetPercent implements rollout.FlagRamper.
func (r Ramps) SetPercent(ctx context.Context, key string, percent float64) error {
	if !(percent >= 0 && percent <= 100) {
		return fmt.Errorf("fleetflags: flag %q: percentage %v is outside 0..100", key, percent)
	}
	v := r.Variant
	if v == "" {
		v = DefaultVariant
	}
	off := false
	return r.update(ctx, key, func(o *flags.Override) error {
		o.Disabled, o.Percent = &off, &flags.Percent{Variant: v, Percent: percent}
		return nil
	})
}

// Disable implements rollout.FlagRamper.
func (r Ramps) Disable(ctx context.Context, key string) error {
	on := true
	return r.update(ctx, key, func(o *flags.Override) error { o.Disabled = &on; return nil })
}

func (r Ramps) update(ctx context.Context, key string, edit func(*flags.Override) error) error {
	if r.Writer == nil {
		return errors.New("fleetflags: Ramps has no Writer")
	}
	return r.Writer.UpdateOverride(ctx, key, edit)
}

var (
	_ flags.OverrideWriter = (*Writer)(nil)
	_ rollout.FlagRamper   = Ramps{}
)
