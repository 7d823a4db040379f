package fleet

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"
)

// Mirror is a local copy of every document under a prefix, kept current by
// a watch. When the member goes stale the copy stays as it was (what the
// instance last applied keeps being served) and is marked stale; when the
// member is fresh again the Mirror lists the prefix anew, publishes the
// difference as one change, and watches from the listing's revision, so it
// has caught up at a revision it can name. A watch whose history was
// compacted is handled the same way. Make one with Member.Mirror; it stops
// with the member. The zero value is not usable.
type Mirror struct {
	m      *Member
	prefix string

	mu      sync.Mutex
	docs    map[string]Document
	rev     int64
	synced  bool // listed since the last time the member was stale
	changed chan struct{}
}

// Mirror starts mirroring the documents under prefix (a key prefix such as
// Layout.Shared("weights")+"/"). It returns at once; Changed is closed when
// the first listing arrives.
func (m *Member) Mirror(prefix string) (*Mirror, error) {
	if err := ValidPrefix(prefix); err != nil {
		return nil, err
	}
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	return m.newMirror(prefix), nil
}

func (m *Member) newMirror(prefix string) *Mirror {
	mi := &Mirror{m: m, prefix: prefix, docs: map[string]Document{}, changed: make(chan struct{})}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		mi.run(m.ctx)
	}()
	return mi
}

// Snapshot returns the mirrored documents sorted by key, and the revision
// they are current as of.
func (mi *Mirror) Snapshot() ([]Document, int64) {
	mi.mu.Lock()
	defer mi.mu.Unlock()
	out := make([]Document, 0, len(mi.docs))
	for _, d := range mi.docs {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, mi.rev
}

// Get returns the mirrored document at key.
func (mi *Mirror) Get(key string) (Document, bool) {
	mi.mu.Lock()
	defer mi.mu.Unlock()
	d, ok := mi.docs[key]
	return d, ok
}

// Revision is the revision the copy is current as of.
func (mi *Mirror) Revision() int64 {
	mi.mu.Lock()
	defer mi.mu.Unlock()
	return mi.rev
}

// Stale reports whether the copy may be behind: the member is stale, or the
// Mirror has not listed since it was.
func (mi *Mirror) Stale() bool {
	mi.mu.Lock()
	synced := mi.synced
	mi.mu.Unlock()
	return !synced || mi.m.Health().Stale()
}

// Changed returns a channel closed at the next change of the copy or of its
// staleness.
func (mi *Mirror) Changed() <-chan struct{} {
	mi.mu.Lock()
	defer mi.mu.Unlock()
	return mi.changed
}

func (mi *Mirror) notifyLocked() {
	close(mi.changed)
	mi.changed = make(chan struct{})
}

const (
	minRelist = 100 * time.Millisecond
	maxRelist = 2 * time.Second
)

func (mi *Mirror) run(ctx context.Context) {
	backoff := minRelist
	for ctx.Err() == nil {
		if err := mi.sync(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			mi.m.log.Debug("fleet: mirror listing failed", "prefix", mi.prefix, "err", err)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, maxRelist)
			continue
		}
		backoff = minRelist
		mi.follow(ctx)
	}
}

// sync lists the prefix and replaces the copy, publishing one change.
func (mi *Mirror) sync(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, mi.m.o.LeaseTTL)
	docs, rev, err := mi.m.e.List(lctx, mi.prefix)
	cancel()
	if err != nil {
		return err
	}
	next := make(map[string]Document, len(docs))
	for _, d := range docs {
		next[d.Key] = d
	}
	mi.mu.Lock()
	mi.docs, mi.rev, mi.synced = next, rev, true
	mi.notifyLocked()
	mi.mu.Unlock()
	return nil
}

// follow applies the watch from the copy's revision until the member goes
// stale (then it waits until it is fresh and returns, to list again) or
// the watch ends.
func (mi *Mirror) follow(ctx context.Context) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := mi.m.e.Watch(wctx, mi.prefix, mi.Revision())
	for {
		h, hch := mi.m.health.get()
		if h.Stale() {
			mi.mu.Lock()
			mi.synced = false
			mi.notifyLocked()
			mi.mu.Unlock()
			cancel()
			for range w {
			}
			_ = mi.m.health.awaitFresh(ctx)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-hch:
		case r, ok := <-w:
			if !ok {
				return
			}
			if r.Err != nil {
				if !errors.Is(r.Err, ErrCompacted) {
					mi.m.log.Debug("fleet: mirror watch ended", "prefix", mi.prefix, "err", r.Err)
				}
				return
			}
			mi.apply(r)
		}
	}
}

func (mi *Mirror) apply(r WatchResponse) {
	mi.mu.Lock()
	defer mi.mu.Unlock()
	for _, ev := range r.Events {
		if ev.Type == Delete {
			delete(mi.docs, ev.Doc.Key)
		} else {
			mi.docs[ev.Doc.Key] = ev.Doc
		}
	}
	if r.Revision > mi.rev {
		mi.rev = r.Revision
	}
	mi.notifyLocked()
}
