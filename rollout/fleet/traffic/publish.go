package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/rollout/fleet"
)

// DefaultPublishInterval is how often a Publisher writes its snapshot when
// PublishOptions.Interval is zero.
const DefaultPublishInterval = 2 * time.Second

// MetricsKey is the engine key of member's snapshot of canary name
// (DefaultName when empty): Layout.Metrics(member)+"/<name>".
func MetricsKey(l fleet.Layout, member, name string) string {
	if name == "" {
		name = DefaultName
	}
	return l.Metrics(member) + "/" + name
}

// metricsPrefix is the prefix of every member's snapshots.
func metricsPrefix(l fleet.Layout) string { return l.Namespace() + "/metrics/" }

// memberOf returns the member whose snapshot of name key is, or "".
func memberOf(l fleet.Layout, key, name string) string {
	if name == "" {
		name = DefaultName
	}
	rest, ok := strings.CutPrefix(key, metricsPrefix(l))
	if !ok {
		return ""
	}
	member, ok := strings.CutSuffix(rest, "/"+name)
	if !ok || strings.Contains(member, "/") {
		return ""
	}
	return member
}

// PublishOptions configure Publish. Metrics is required; the other zero
// fields mean DefaultName and DefaultPublishInterval.
type PublishOptions struct {
	// Name of the canary; empty means DefaultName.
	Name string
	// Metrics are the host's canary metrics (Splitter.Metrics()).
	Metrics *canary.Metrics
	// Interval between two publications; zero means
	// DefaultPublishInterval. A driver's Analyzer leaves out snapshots
	// older than its MaxAge, so keep Interval well below it.
	Interval time.Duration
	// Logger receives failed publications. Nil discards.
	Logger *slog.Logger
}

// Publisher writes a host's canary snapshot (canary.Metrics.Snapshot) to
// the engine every Interval, under the member's lease: when the host dies
// or is cut off, its snapshot disappears with its membership, and until
// then it ages (the Analyzer leaves out a snapshot older than MaxAge). It
// is written whole each time; its size is bounded by the metrics' window
// (a few KiB per interval that saw traffic). Make one with Publish; Close
// stops it. The zero value is not usable.
type Publisher struct {
	m      *fleet.Member
	o      PublishOptions
	key    string
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
}

// Publish starts publishing o.Metrics for m. One goroutine, owned by the
// Publisher, writes until Close.
func Publish(m *fleet.Member, o PublishOptions) (*Publisher, error) {
	if o.Metrics == nil {
		return nil, errors.New("traffic: PublishOptions.Metrics is required")
	}
	if o.Interval <= 0 {
		o.Interval = DefaultPublishInterval
	}
	key := MetricsKey(m.Layout(), m.ID(), o.Name)
	if err := fleet.ValidKey(key); err != nil {
		return nil, fmt.Errorf("traffic: Publish: %w", err)
	}
	p := &Publisher{m: m, o: o, key: key, log: o.Logger, done: make(chan struct{})}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		defer close(p.done)
		p.run(ctx)
	}()
	return p, nil
}

func (p *Publisher) run(ctx context.Context) {
	t := time.NewTicker(p.o.Interval)
	defer t.Stop()
	for {
		if err := p.PublishNow(ctx); err != nil && ctx.Err() == nil {
			p.log.Debug("traffic: snapshot not published", "key", p.key, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PublishNow writes the current snapshot at once. It fails while the
// member is not registered (the engine is unreachable).
func (p *Publisher) PublishNow(ctx context.Context) error {
	l, _ := p.m.Lease()
	if l == nil {
		return fmt.Errorf("traffic: member %s is not registered: snapshot not published", p.m.ID())
	}
	b, err := json.Marshal(p.o.Metrics.Snapshot())
	if err != nil {
		return err
	}
	if len(b) > fleet.MaxValueSize {
		return fmt.Errorf("traffic: snapshot of %d bytes is above the engine's %d: use a shorter canary window or a coarser resolution", len(b), fleet.MaxValueSize)
	}
	ctx, cancel := context.WithTimeout(ctx, p.o.Interval+time.Second)
	defer cancel()
	_, err = p.m.Engine().Commit(ctx, fleet.Txn{Ops: []fleet.Op{{Key: p.key, Value: b, Prev: fleet.Any, Lease: l.ID()}}})
	return err
}

// Close stops publishing; the last snapshot stays until the member's
// lease ends. It is idempotent.
func (p *Publisher) Close() error {
	p.cancel()
	<-p.done
	return nil
}
