package fleet

import (
	"context"
	"errors"
	"fmt"

	"github.com/batonhq/baton/rollout"
)

var _ rollout.FleetView = (*Registry)(nil)

// Hosts implements rollout.FleetView, for the rollout console's fleet
// page (rollout.HandlerOptions.Fleet): every live member, with what its
// agent last reported (Observed: version, lifecycle state, why the
// desired version was not applied) or, for a member with no agent, its
// membership record. Like Live, it reads the engine each time; an engine
// that cannot be read is an error, which the page shows.
func (r *Registry) Hosts(ctx context.Context) ([]rollout.Host, error) {
	live, err := r.Live(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]rollout.Host, 0, len(live))
	for _, mi := range live {
		h := rollout.Host{Name: mi.ID + " on " + mi.Host, Version: mi.Version, State: mi.State, SeenAt: mi.Updated, Self: mi.ID == r.m.o.ID}
		if mi.Address != "" {
			h.Name += " (" + mi.Address + ")"
		}
		o, err := ReadObserved(ctx, r.m.e, r.m.keys, mi.ID)
		switch {
		case err == nil:
			h.Version, h.State, h.SeenAt = o.Version, o.State, o.At
			if o.DesiredVersion != "" && o.DesiredVersion != o.Version {
				h.State += ", desired " + o.DesiredVersion
			}
			if o.Error != "" {
				h.State += ": " + o.Error
			}
		case !errors.Is(err, ErrNotFound):
			return nil, fmt.Errorf("fleet: reading what %s reports: %w", mi.ID, err)
		}
		out = append(out, h)
	}
	return out, nil
}
