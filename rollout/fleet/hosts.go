package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/batonhq/baton/rollout"
)

var _ rollout.FleetView = (*Registry)(nil)

// Hosts implements rollout.FleetView, for the rollout console's fleet
// page (rollout.HandlerOptions.Fleet): every live member, with what its
// agent last reported (Observed: version, lifecycle state, why the
// desired version was not applied) or, for a member with no agent, its
// membership record. Weight and FlagVersion come from the member's
// Applied reports (Member.ReportApplied, which traffic.Follow and
// fleetflags.Source.Follow keep): Weight from its report of a canary
// document, FlagVersion from its report of a flag document (a
// "flags/..." one), the revision it has in force; with several, the first
// by name; a document a host refused (another salt or target, a flag
// document that did not load) adds why to its State. A member that
// reports neither leaves them empty. Like Live, it
// reads the engine each time; an engine that cannot be read is an error,
// which the page shows.
func (r *Registry) Hosts(ctx context.Context) ([]rollout.Host, error) {
	live, err := r.Live(ctx)
	if err != nil {
		return nil, err
	}
	reports, _, err := r.m.e.List(ctx, r.m.keys.AppliedReports())
	if err != nil {
		return nil, fmt.Errorf("fleet: listing what members applied: %w", err)
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
		applied(&h, r.m.keys.Applied(mi.ID, ""), reports)
		out = append(out, h)
	}
	return out, nil
}

// applied fills h's canary weight and flag version from the reports whose
// keys start with prefix (one member's), and adds to its state why a
// document was refused there.
func applied(h *rollout.Host, prefix string, reports []Document) {
	for _, d := range reports {
		doc, ok := strings.CutPrefix(d.Key, prefix)
		if !ok {
			continue
		}
		var a Applied
		if json.Unmarshal(d.Value, &a) != nil {
			continue // a report this version cannot read shows nothing
		}
		if a.Weight != nil && h.Weight == nil {
			w := *a.Weight
			h.Weight = &w
		}
		if strings.HasPrefix(doc, "flags/") && h.FlagVersion == "" && a.Revision > 0 {
			h.FlagVersion = strconv.FormatInt(a.Revision, 10)
		}
		if a.Refused != "" {
			// The host serves something else than the fleet's document
			// says: the page says why.
			h.State += fmt.Sprintf("; %s revision %d not applied: %s", doc, a.Revision, a.Refused)
		}
	}
}
