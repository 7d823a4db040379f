package fleetflags

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/rollout/fleet"
)

// DefaultDocument names the fleet's flag document when Options.Document is
// empty: a YAML document.
const DefaultDocument = "flags.yaml"

// Key is the engine key of flag document doc (DefaultDocument when
// empty): Layout.Shared("flags/<doc>"). The key's last segment is the
// document's name, whose extension picks its syntax (".json" is JSON,
// anything else YAML), as a file's does.
func Key(l fleet.Layout, doc string) string {
	if doc == "" {
		doc = DefaultDocument
	}
	return l.Shared("flags/" + doc)
}

// emptyDocument is what a host applies when the engine holds no document:
// a configuration with no flags (valid YAML and JSON alike).
var emptyDocument = []byte("{}\n")

// Options configure NewSource. Store is required; the other zero fields
// mean DefaultDocument, flags.DefaultDocumentSourceName, no cache and no
// logger.
type Options struct {
	// Document is the document's name (see Key). Every host of the fleet
	// uses the same.
	Document string
	// Store receives the document as one of its sources, beside its file
	// sources.
	Store *flags.Store
	// SourceName is the document's source name in the Store; empty means
	// flags.DefaultDocumentSourceName.
	SourceName string
	// CacheFile keeps the last applied version on local disk (written
	// atomically on every applied version), so that a host that starts
	// while the engine is unreachable serves it, STALE, until it catches
	// up. Empty means no cache.
	CacheFile string
	// OnApply, if set, is called from the Source's goroutine after each
	// new version the engine delivers is applied (err nil) or refused
	// (err says why), with the engine revision as doc.Version. The version
	// in force confirmed again (after an outage, say) is not reported.
	OnApply func(doc flags.Document, err error)
	// Logger receives what the source applies and refuses. Nil discards.
	Logger *slog.Logger
}

// Source makes the fleet's engine a source of whole, versioned flag
// documents for a host's flags.Store: every version stored under Key is
// validated and applied whole, or refused whole and reported like a bad
// file, by a flags.DocumentSource whose version is the engine revision.
// While the member is stale (the engine does not answer) the Store keeps
// the last version and the source reports STALE (through the OpenFeature
// provider too); when the engine answers again the Mirror lists anew and
// the current version is applied, or confirmed, which makes it fresh.
//
// It starts in two steps, so that a host serves its cached flags before
// it can even reach the engine: NewSource serves the cache (STALE), and
// Follow, once the host has joined the fleet, follows the engine. Close
// stops it. The zero value is not usable.
type Source struct {
	o   Options
	ds  *flags.DocumentSource
	log *slog.Logger

	mu        sync.Mutex
	m         *fleet.Member
	key       string
	mirror    *fleet.Mirror
	rep       *fleet.Reporter
	reported  fleet.Applied // last report Set, At cleared
	cancel    context.CancelFunc
	done      chan struct{} // nil until Follow
	closed    bool
	processed int64 // revision of the last document applied or refused
	changed   chan struct{}
}

// NewSource adds the fleet's flag document to o.Store as a source: it
// starts from o.CacheFile when that holds a version (served, STALE, until
// the engine delivers) and follows nothing until Follow.
func NewSource(o Options) (*Source, error) {
	if o.Store == nil {
		return nil, errors.New("fleetflags: Options.Store is required")
	}
	if o.Document == "" {
		o.Document = DefaultDocument
	}
	if err := fleet.ValidKey(Key(fleet.NewLayout(""), o.Document)); err != nil {
		return nil, fmt.Errorf("fleetflags: document %q: %w", o.Document, err)
	}
	ds, err := flags.NewDocumentSource(o.Store, flags.DocumentOptions{Name: o.SourceName, CacheFile: o.CacheFile})
	if err != nil {
		return nil, fmt.Errorf("fleetflags: %w", err)
	}
	s := &Source{o: o, ds: ds, log: o.Logger, changed: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Follow starts applying the document of m's fleet, once. The version in
// force is reported (fleet.Member.ReportApplied), which the console's
// fleet page shows. One goroutine, owned by the Source, applies the
// versions until Close.
func (s *Source) Follow(m *fleet.Member) error {
	key := Key(m.Layout(), s.o.Document)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return errors.New("fleetflags: Follow after Close")
	case s.m != nil:
		return errors.New("fleetflags: the Source already follows a member")
	}
	mi, err := m.Mirror(key)
	if err != nil {
		return fmt.Errorf("fleetflags: %w", err)
	}
	rep, err := m.ReportApplied(strings.TrimPrefix(key, m.Layout().Shared("")))
	if err != nil {
		return fmt.Errorf("fleetflags: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.m, s.key, s.mirror, s.rep, s.cancel, s.done = m, key, mi, rep, cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		s.run(ctx)
	}()
	return nil
}

// Current returns the document in force on this host (Version is the
// engine revision it was stored at), or the zero Document.
func (s *Source) Current() flags.Document { return s.ds.Current() }

// Close stops following the engine; the Store keeps the document in
// force. It is idempotent.
func (s *Source) Close() error {
	s.mu.Lock()
	s.closed = true
	cancel, done, rep := s.cancel, s.done, s.rep
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
		_ = rep.Close()
	}
	return s.ds.Close()
}

func (s *Source) run(ctx context.Context) {
	wasStale := false
	for {
		ch := s.mirror.Changed()
		stale := s.mirror.Stale()
		switch {
		case stale && !wasStale:
			s.ds.MarkStale(fmt.Errorf("member %s has not reached the fleet's engine (or lost it): serving version %d until it answers", s.m.ID(), s.ds.Current().Version))
		case !stale:
			s.sync()
		}
		wasStale = stale
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// sync applies the mirrored document, or confirms the one in force.
func (s *Source) sync() {
	d, ok := s.mirror.Get(s.key)
	doc := flags.Document{Version: uint64(d.Revision), Name: s.o.Document, Data: d.Value}
	if !ok {
		// No document: the fleet serves no flag of its own. Applied at
		// the listing's revision, so that any document stored later has
		// a higher version.
		rev := s.mirror.Revision()
		if cur := s.ds.Current(); cur.Version != 0 && string(cur.Data) == string(emptyDocument) {
			rev = int64(cur.Version) // confirm it
		}
		doc = flags.Document{Version: uint64(rev), Name: s.o.Document, Data: emptyDocument}
		d.Revision = rev
	}
	if doc.Version == 0 {
		return
	}
	prev := s.ds.Current().Version
	err := s.ds.Apply(doc)
	confirmed := err == nil && doc.Version == prev // the version in force is the engine's
	switch {
	case confirmed:
	case err == nil:
		s.log.Debug("fleetflags: document in force", "key", s.key, "version", doc.Version)
	case errors.Is(err, flags.ErrOldVersion):
		// The cache holds a newer version than the engine (the engine
		// was restored from an older backup): keep serving it.
		s.log.Warn("fleetflags: the engine's document is older than the one in force; keeping it", "key", s.key, "err", err)
	default:
		s.log.Warn("fleetflags: document refused; the last good configuration stays in force", "key", s.key, "version", doc.Version, "err", err)
	}
	if s.o.OnApply != nil && !confirmed {
		s.o.OnApply(doc, err)
	}
	s.report(err)
	s.mu.Lock()
	if d.Revision > s.processed {
		s.processed = d.Revision
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()
}

// report sets this host's report to the version in force, when it
// changed; err is why the latest version was not applied.
func (s *Source) report(err error) {
	a := fleet.Applied{Revision: int64(s.ds.Current().Version)}
	if err != nil {
		a.Refused = err.Error()
	}
	if a != s.reported {
		s.reported = a
		s.rep.Set(a)
	}
}

// awaitProcessed waits until this host has applied (or refused) a version
// at revision rev or later, or ctx ends.
func (s *Source) awaitProcessed(ctx context.Context, rev int64) error {
	for {
		s.mu.Lock()
		done, ch := s.processed >= rev, s.changed
		s.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done: // set before the Writer exists
			return errors.New("fleetflags: source closed")
		}
	}
}
