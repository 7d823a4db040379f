package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/batonhq/baton/rollout"
)

// ViewInterval is how often the driver looks for progress that moves
// without a change of the rollout's state (a backfill's rows) to publish.
const ViewInterval = time.Second

// publishViews writes r's view to Layout.Console, fenced, at every change
// of r and every ViewInterval when it differs from the last one written,
// until ctx ends.
func (l *Lead) publishViews(ctx context.Context, r *rollout.Rollout) {
	tick := time.NewTicker(ViewInterval)
	defer tick.Stop()
	var last []byte
	for {
		ch := r.Changed()
		l.publishView(ctx, r, &last)
		select {
		case <-ch:
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// publishView writes r's view once if it differs from *last.
func (l *Lead) publishView(ctx context.Context, r *rollout.Rollout, last *[]byte) {
	m := l.d.m
	v := r.View()
	// Times that only count up are the reader's to compute (see
	// rollout.Remote); leaving them out writes a view only when it changed.
	v.Now = time.Time{}
	for i := range v.Steps {
		v.Steps[i].DurationSeconds, v.Steps[i].WaitLeftSeconds = 0, 0
	}
	b, err := json.Marshal(v)
	switch {
	case err != nil:
		m.log.Warn("fleet: encoding the rollout's view", "rollout", v.ID, "err", err)
		return
	case bytes.Equal(b, *last):
		return
	case len(b) > MaxValueSize:
		m.log.Warn("fleet: the rollout's view is larger than a document may be; the members' consoles show the last one", "rollout", v.ID, "bytes", len(b), "limit", MaxValueSize)
		*last = b
		return
	}
	wctx, cancel := context.WithTimeout(ctx, m.o.LeaseTTL)
	defer cancel()
	if _, err := l.Commit(wctx, Op{Key: m.keys.Console(), Value: b, Prev: Any}); err != nil {
		if ctx.Err() == nil {
			m.log.Debug("fleet: publishing the rollout's view", "rollout", v.ID, "err", err)
		}
		return
	}
	*last = b
}

// Remote returns the rollout the fleet's driver drives, seen from this
// member, for rollout.NewRemoteHandler: its view is the one the driver
// last published (Layout.Console), and commands are sent to the driver
// (Member.Command) wherever it runs. An accepted command is answered once
// the published view shows its effect.
func (m *Member) Remote() rollout.Remote { return &remoteRollout{m: m} }

// Console returns the rollout console and admin API of the fleet on this
// member (rollout.NewRemoteHandler over Member.Remote): every member
// serves the same rollout, pages and commands, whichever one drives. With
// o.Fleet nil, the fleet page lists the members (Member.Registry). Serve
// it as the rollout admin API is served: on a Unix socket or loopback.
func (m *Member) Console(o rollout.HandlerOptions) http.Handler {
	if o.Fleet == nil {
		o.Fleet = m.Registry()
	}
	return rollout.NewRemoteHandler(m.Remote(), o)
}

type remoteRollout struct {
	m *Member

	once   sync.Once
	mirror *Mirror
	err    error
}

// changed returns a channel closed at the next change of the published
// view, from a Mirror made at the first call.
func (r *remoteRollout) changed() (<-chan struct{}, error) {
	r.once.Do(func() { r.mirror, r.err = r.m.Mirror(r.m.keys.Console()) })
	if r.err != nil {
		return nil, r.err
	}
	return r.mirror.Changed(), nil
}

// View implements rollout.Remote. It reads the engine, so a view read
// after a command's answer shows what the driver published before it.
func (r *remoteRollout) View(ctx context.Context) (rollout.StatusView, <-chan struct{}, error) {
	ch, err := r.changed()
	if err != nil {
		return rollout.StatusView{}, nil, err
	}
	doc, err := r.m.e.Get(ctx, r.m.keys.Console())
	switch {
	case errors.Is(err, ErrNotFound):
		return rollout.StatusView{}, ch, rollout.ErrNoRollout
	case err != nil:
		return rollout.StatusView{}, ch, fmt.Errorf("fleet: reading the rollout's view: %w", err)
	}
	var v rollout.StatusView
	if err := json.Unmarshal(doc.Value, &v); err != nil {
		return rollout.StatusView{}, ch, fmt.Errorf("fleet: the rollout's view at revision %d: %w", doc.Revision, err)
	}
	return v, ch, nil
}

// Command implements rollout.Remote: it sends the command for the rollout
// of the published view, and once accepted waits until the view shows
// the state it made, for at most the lease TTL (the command stands
// either way).
func (r *remoteRollout) Command(ctx context.Context, command, reason string) error {
	v, _, err := r.View(ctx)
	if err != nil {
		return err
	}
	ans, err := r.m.command(ctx, v.ID, command, reason)
	if err != nil || ans.Revision == 0 {
		return err
	}
	wait := time.NewTimer(r.m.o.LeaseTTL)
	defer wait.Stop()
	for {
		now, ch, err := r.View(ctx)
		if err == nil && (now.ID != v.ID || now.Revision >= ans.Revision) {
			return nil
		}
		select {
		case <-ch:
		case <-wait.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}
