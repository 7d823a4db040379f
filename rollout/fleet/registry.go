package fleet

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/batonhq/baton/rollout"
)

// Registry answers rollout's wait-old-gone steps for the whole fleet: an
// instance is alive while its membership lease is, on any host. It reads
// the engine each time (a linearizable read on etcd), never a possibly
// stale copy: a registry that cannot read returns an error, and the step
// retries, instead of counting nobody. The zero value is not usable; use
// Member.Registry.
type Registry struct{ m *Member }

var _ rollout.InstanceRegistry = (*Registry)(nil)

// Registry returns the fleet-wide registry.
func (m *Member) Registry() *Registry { return &Registry{m: m} }

// Live returns the live members' records, sorted by id.
func (r *Registry) Live(ctx context.Context) ([]MemberInfo, error) {
	docs, _, err := r.m.e.List(ctx, r.m.keys.Members())
	if err != nil {
		return nil, fmt.Errorf("fleet: listing members: %w", err)
	}
	out := make([]MemberInfo, 0, len(docs))
	for _, d := range docs {
		var mi MemberInfo
		if err := json.Unmarshal(d.Value, &mi); err != nil {
			return nil, fmt.Errorf("fleet: member record %s is not valid: %w", d.Key, err)
		}
		mi.Revision = d.Revision
		out = append(out, mi)
	}
	return out, nil
}

// OldVersionsAlive implements rollout.InstanceRegistry: how many live
// members run another version than current, draining and baking ones
// included (they still serve or may resume).
func (r *Registry) OldVersionsAlive(ctx context.Context, current string) (int, error) {
	live, err := r.Live(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, mi := range live {
		if mi.Version != current {
			n++
		}
	}
	return n, nil
}
