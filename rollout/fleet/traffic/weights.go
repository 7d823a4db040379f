package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
)

// DefaultName names a fleet's canary when an Options' Name is empty: one
// canary per namespace.
const DefaultName = "canary"

// Canary is the document every host of a fleet applies to its splitter:
// the weight, and the salt and target that give the weight its meaning.
// The zero value is weight 0 with the default salt and any target.
type Canary struct {
	// Weight is the canary's share in basis points (0..canary.MaxWeight).
	Weight uint32 `json:"weight"`
	// Salt is hashed before each key (canary.Options.Salt); every host's
	// splitter must use it, or two hosts would split keys differently.
	// Empty means canary.DefaultSalt.
	Salt string `json:"salt,omitempty"`
	// Target names what serves the canary's share (a version, an
	// upstream); a host whose canary is another one sends nobody to it.
	// Empty means any.
	Target string `json:"target,omitempty"`
}

func (c Canary) salt() string {
	if c.Salt == "" {
		return canary.DefaultSalt
	}
	return c.Salt
}

// Key is the engine key of the canary document name (DefaultName when
// empty): Layout.Shared("canary/<name>").
func Key(l fleet.Layout, name string) string {
	if name == "" {
		name = DefaultName
	}
	return l.Shared("canary/" + name)
}

// decode reads a stored canary document.
func decode(d fleet.Document) (Canary, error) {
	var c Canary
	if err := json.Unmarshal(d.Value, &c); err != nil {
		return Canary{}, fmt.Errorf("traffic: canary document %s at revision %d: %w", d.Key, d.Revision, err)
	}
	if c.Weight > canary.MaxWeight {
		return Canary{}, fmt.Errorf("traffic: canary document %s at revision %d: weight %d is above %d", d.Key, d.Revision, c.Weight, canary.MaxWeight)
	}
	return c, nil
}

// WeightsOptions configure a Weights. The zero value writes the document
// DefaultName with the default salt and no target.
type WeightsOptions struct {
	// Name of the canary document; empty means DefaultName.
	Name string
	// Salt and Target are written with every weight (see Canary).
	Salt, Target string
}

// Weights writes the fleet's canary document: the WeightSetter of a fleet
// rollout's set-weight and canary steps (LeadWeights, fenced by the
// leadership), or an operator's tool (MemberWeights). Every host's
// Follower applies what it writes. The zero value is not usable.
type Weights struct {
	key    string
	salt   string
	target string
	commit func(ctx context.Context, op fleet.Op) (int64, error)
}

// LeadWeights returns the Weights of a driver: every write is fenced by
// l's leadership, so a deposed driver's weight is refused, never applied.
func LeadWeights(l *fleet.Lead, o WeightsOptions) *Weights {
	return newWeights(l.Member().Layout(), o, func(ctx context.Context, op fleet.Op) (int64, error) {
		return l.Commit(ctx, op)
	})
}

// MemberWeights returns Weights that write from any member, unfenced (an
// operator's command, a test). A rollout that drives the same canary
// overwrites it at its next step: use Member.Command to pause the rollout
// first.
func MemberWeights(m *fleet.Member, o WeightsOptions) *Weights {
	e := m.Engine()
	return newWeights(m.Layout(), o, func(ctx context.Context, op fleet.Op) (int64, error) {
		return e.Commit(ctx, fleet.Txn{Ops: []fleet.Op{op}})
	})
}

func newWeights(l fleet.Layout, o WeightsOptions, commit func(context.Context, fleet.Op) (int64, error)) *Weights {
	return &Weights{key: Key(l, o.Name), salt: o.Salt, target: o.Target, commit: commit}
}

// Key is the engine key Weights writes.
func (w *Weights) Key() string { return w.key }

// SetWeight writes weight (basis points) with the salt and target, and
// returns once the engine has stored it; hosts apply it as their watches
// deliver it. It implements rollout.WeightSetter.
func (w *Weights) SetWeight(ctx context.Context, weight uint32) error {
	_, err := w.Put(ctx, Canary{Weight: weight, Salt: w.salt, Target: w.target})
	return err
}

// Put writes c as the fleet's canary document and returns the engine
// revision it was stored at.
func (w *Weights) Put(ctx context.Context, c Canary) (int64, error) {
	if c.Weight > canary.MaxWeight {
		return 0, fmt.Errorf("traffic: weight %d basis points is above %d (100%%)", c.Weight, canary.MaxWeight)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return 0, err
	}
	rev, err := w.commit(ctx, fleet.Op{Key: w.key, Value: b, Prev: fleet.Any})
	if err != nil {
		return 0, fmt.Errorf("traffic: writing weight %d to %s: %w", c.Weight, w.key, err)
	}
	return rev, nil
}

var _ rollout.WeightSetter = (*Weights)(nil)

// errNoSplitter is the error of a FollowOptions without a Splitter.
var errNoSplitter = errors.New("traffic: FollowOptions.Splitter is required")
