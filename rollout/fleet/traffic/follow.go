package traffic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/internal/atomicfile"
	"github.com/batonhq/baton/rollout/fleet"
)

// FollowOptions configure Follow. Splitter is required; the other zero
// fields mean DefaultName, any target, no cache and no callback.
type FollowOptions struct {
	// Name of the canary document; empty means DefaultName.
	Name string
	// Splitter receives the fleet's weight (Splitter.SetWeight).
	Splitter *canary.Splitter
	// Target is the canary this host's splitter serves (a version, an
	// upstream). A document naming another target makes this host send
	// nobody to its canary (Splitter.Halt). Empty accepts any target.
	Target string
	// CacheFile keeps the last canary document this host received on
	// local disk (written atomically, mode 0600, at every new revision).
	// Follow applies it at once, before the engine answers, so a host
	// that restarts while the engine is down serves the fleet's last
	// weight (Applied.FromCache, Stale) instead of its splitter's own,
	// and keys keep their variant across hosts. A cache that cannot be
	// read or decoded, or holds another document, is logged and not
	// used. Empty means no cache.
	CacheFile string
	// OnApply, if set, is called after each document is applied (or
	// refused), in order, from the Follower's goroutine (the cached
	// document's from Follow).
	OnApply func(Applied)
	// Logger receives what the Follower applies and refuses. Nil
	// discards.
	Logger *slog.Logger
}

// Applied is what a Follower last did with the fleet's canary document.
// The zero value is nothing applied yet.
type Applied struct {
	// Canary is the document as stored.
	Canary Canary
	// Revision is the engine revision of the document (0: none seen).
	Revision int64
	// Refused says why the document was not applied as written (another
	// salt or target, an undecodable document): the splitter then sends
	// nobody to the canary. Empty when it was.
	Refused string
	// Stale: the member is cut off from the engine, and the splitter
	// keeps the weight it last applied.
	Stale bool
	// FromCache: the document was read from FollowOptions.CacheFile at
	// Follow and the engine has not delivered one since.
	FromCache bool
}

// Follower applies the fleet's canary document to a host's Splitter every
// time it changes: the weight with Splitter.SetWeight, so that every host
// serves the same weight within the engine's watch delay. Because keys are
// bucketed by a hash of salt and key, the same key gets the same variant
// on every host that has applied the same document. Make one with Follow;
// Close stops it. The zero value is not usable.
type Follower struct {
	o      FollowOptions
	key    string
	mirror *fleet.Mirror
	rep    *fleet.Reporter
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	applied Applied
	changed chan struct{}
}

// Follow starts applying the canary document of m's fleet to
// o.Splitter. Until a document arrives the splitter keeps the weight it
// has. Each version applied (or refused) is reported with the weight in
// force (fleet.Member.ReportApplied), which the console's fleet page
// shows. With o.CacheFile, the cached document is applied before Follow
// returns. One goroutine, owned by the Follower, applies the changes until
// Close or m's Close.
func Follow(m *fleet.Member, o FollowOptions) (*Follower, error) {
	if o.Splitter == nil {
		return nil, errors.New("traffic: FollowOptions.Splitter is required")
	}
	key := Key(m.Layout(), o.Name)
	mi, err := m.Mirror(key)
	if err != nil {
		return nil, fmt.Errorf("traffic: Follow: %w", err)
	}
	rep, err := m.ReportApplied(strings.TrimPrefix(key, m.Layout().Shared("")))
	if err != nil {
		return nil, fmt.Errorf("traffic: Follow: %w", err)
	}
	f := &Follower{o: o, key: key, mirror: mi, rep: rep, log: o.Logger, done: make(chan struct{}), changed: make(chan struct{})}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if o.CacheFile != "" {
		switch d, err := readCache(o.CacheFile, key); {
		case err == nil:
			f.apply(d, true, true)
		case !errors.Is(err, os.ErrNotExist):
			f.log.Warn("traffic: canary cache not used", "file", o.CacheFile, "err", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() {
		defer close(f.done)
		f.run(ctx)
	}()
	return f, nil
}

// Applied returns what the Follower last applied.
func (f *Follower) Applied() Applied {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// Changed returns a channel closed at the next change of Applied.
func (f *Follower) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// Close stops following; the splitter keeps its weight, and the report of
// it stays until the member's lease ends. It is idempotent.
func (f *Follower) Close() error {
	f.cancel()
	<-f.done
	return f.rep.Close()
}

func (f *Follower) run(ctx context.Context) {
	for {
		ch := f.mirror.Changed()
		d, ok := f.mirror.Get(f.key)
		stale := f.mirror.Stale()
		f.mu.Lock()
		prev := f.applied
		f.mu.Unlock()
		switch {
		case ok && (d.Revision != prev.Revision || prev.FromCache && !stale):
			f.apply(d, stale, false)
		case stale != prev.Stale:
			f.set(func(a *Applied) { a.Stale = stale })
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// apply puts the document in force on the splitter, or halts the canary
// when this host cannot serve it as written; one from the engine is
// cached.
func (f *Follower) apply(d fleet.Document, stale, cached bool) {
	a := Applied{Revision: d.Revision, Stale: stale, FromCache: cached}
	c, err := decode(d)
	switch {
	case err != nil:
		a.Refused = err.Error()
	case c.salt() != f.o.Splitter.Salt():
		a.Canary = c
		a.Refused = fmt.Sprintf("the fleet's salt is %q, this host's splitter hashes with %q", c.salt(), f.o.Splitter.Salt())
	case c.Target != "" && f.o.Target != "" && c.Target != f.o.Target:
		a.Canary = c
		a.Refused = fmt.Sprintf("the fleet's canary is %q, this host's is %q", c.Target, f.o.Target)
	default:
		a.Canary = c
		err = f.o.Splitter.SetWeight(c.Weight)
	}
	if a.Refused != "" {
		// Sending nobody to a canary this host cannot serve as the fleet
		// does keeps every key on one variant fleet-wide: stable.
		f.o.Splitter.Halt()
		f.log.Warn("traffic: canary document refused; this host sends nobody to its canary", "key", f.key, "revision", d.Revision, "reason", a.Refused)
	} else if err != nil {
		a.Refused = err.Error()
	} else {
		f.log.Info("traffic: canary weight applied", "key", f.key, "revision", d.Revision, "weight", c.Weight)
	}
	if f.o.CacheFile != "" && !cached && json.Valid(d.Value) && d.Revision != f.Applied().Revision {
		if err := writeCache(f.o.CacheFile, d); err != nil {
			f.log.Error("traffic: canary cache not written", "file", f.o.CacheFile, "revision", d.Revision, "err", err)
		}
	}
	w := f.o.Splitter.Weight()
	f.rep.Set(fleet.Applied{Revision: d.Revision, Weight: &w, Refused: a.Refused})
	f.set(func(p *Applied) { *p = a })
}

func (f *Follower) set(edit func(*Applied)) {
	f.mu.Lock()
	edit(&f.applied)
	a := f.applied
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	if f.o.OnApply != nil {
		f.o.OnApply(a)
	}
}

// maxCache bounds what readCache reads: a canary document is a few dozen
// bytes.
const maxCache = 64 << 10

// cacheFile is CacheFile's content.
type cacheFile struct {
	Key      string          `json:"key"`
	Revision int64           `json:"revision"`
	Value    json.RawMessage `json:"value"`
}

func writeCache(path string, d fleet.Document) error {
	b, err := json.Marshal(cacheFile{Key: d.Key, Revision: d.Revision, Value: d.Value})
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'))
}

// readCache returns the document cached at path for key.
func readCache(path, key string) (fleet.Document, error) {
	fh, err := os.Open(path)
	if err != nil {
		return fleet.Document{}, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxCache+1))
	switch {
	case err != nil:
		return fleet.Document{}, err
	case len(b) > maxCache:
		return fleet.Document{}, fmt.Errorf("%s is larger than %d bytes", path, maxCache)
	}
	var c cacheFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return fleet.Document{}, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case c.Key != key:
		return fleet.Document{}, fmt.Errorf("%s holds the document %q, not %q", path, c.Key, key)
	case c.Revision <= 0:
		return fleet.Document{}, fmt.Errorf("%s: revision %d is not positive", path, c.Revision)
	}
	d := fleet.Document{Key: c.Key, Revision: c.Revision, Value: c.Value}
	if _, err := decode(d); err != nil {
		return fleet.Document{}, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}
