package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"regexp"
	"time"
)

// Kind names a kind of step. It is persisted, so its values never change.
// The zero value names no kind (the zero Step's).
type Kind string

// Step kinds.
const (
	KindUpgrade     Kind = "upgrade"    // binary upgrade by handoff
	KindBlueGreen   Kind = "blue-green" // upgrade, bake window with analysis, promote
	KindSetWeight   Kind = "set-weight" // canary weight
	KindPause       Kind = "pause"      // for a duration or until promoted
	KindAnalyze     Kind = "analyze"    // analysis or a user check
	KindRampFlag    Kind = "ramp-flag"  // flag percentages with analysis between
	KindMigration   Kind = "migration"  // one expand-contract phase
	KindWaitOldGone Kind = "wait-old-gone"
	KindHook        Kind = "hook"    // Go func or HTTP webhook
	KindReplace     Kind = "replace" // one batch of a Rolling update
)

// Step is one step of a Plan, built by the constructors of this package
// (Upgrade, SetWeight, Pause, ...). The zero Step is invalid.
type Step struct {
	// Name identifies the step in the persisted state; it must be unique in
	// the plan and stable across restarts. Empty means a name made of the
	// step's kind and parameters ("set-weight-500", "blue-green-v2",
	// "migration-users-complete", "pause-30s"), with "-2", "-3"... for a
	// second and third step of the same making; inserting a step of
	// another kind leaves the others' names alone.
	Name string
	// Timeout bounds one attempt of the step and of its rollback; zero
	// means no limit other than the context of Run.
	Timeout time.Duration
	act     action
}

// Kind returns the kind of the step, "" for the zero Step.
func (s Step) Kind() Kind {
	if s.act == nil {
		return ""
	}
	return s.act.kind()
}

// Irreversible reports whether the step is never rolled back (a
// migration's Complete, an upgrade with no way back). A rollback stops at
// a completed irreversible step: the steps before it stay applied, because
// what follows the point of no return depends on them.
func (s Step) Irreversible() bool { return s.act != nil && s.act.irreversible() }

// Describe says what the step does, in words.
func (s Step) Describe() string {
	if s.act == nil {
		return "invalid step"
	}
	return s.act.describe()
}

// Named returns a copy of s with the given name.
func (s Step) Named(name string) Step { s.Name = name; return s }

// WithTimeout returns a copy of s with the given timeout.
func (s Step) WithTimeout(d time.Duration) Step { s.Timeout = d; return s }

// Plan is a rollout: an id and its steps in order. The same Plan must be
// built by every process that may drive the rollout (the old binary and the
// new one across an upgrade), because the state stores only step names and
// progress; funcs and interfaces live in the Plan. The zero Plan is
// invalid (New refuses it: no id, no steps).
type Plan struct {
	// ID names the rollout in the Store: letters, digits, '.', '_', '-'
	// (at most 128). Use a new id for each rollout (e.g. "v2-2026-11-26").
	ID    string
	Steps []Step
	// Release is the manifest the plan was bound from (Release.Plan sets
	// it); New stores it with the state, so that every process that
	// loads the rollout can bind the same release. Nil for a plan built
	// in code.
	Release *Release
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidID reports whether id can name a rollout.
func ValidID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%w: %q: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalidID, id)
	}
	return nil
}

// normalize fills default names and checks the plan.
func (p Plan) normalize() (Plan, error) {
	if err := ValidID(p.ID); err != nil {
		return p, &PlanError{Step: -1, Reason: err.Error()}
	}
	if len(p.Steps) == 0 {
		return p, &PlanError{Step: -1, Reason: "no steps"}
	}
	out := Plan{ID: p.ID, Steps: make([]Step, len(p.Steps)), Release: p.Release}
	seen := map[string]int{}
	for _, s := range p.Steps {
		if s.Name != "" {
			seen[s.Name] = -1
		}
	}
	for i, s := range p.Steps {
		if s.act == nil {
			return p, &PlanError{Step: i, Name: s.Name, Reason: "zero Step: build steps with the constructors of package rollout"}
		}
		if err := s.act.validate(); err != nil {
			return p, &PlanError{Step: i, Name: s.Name, Reason: err.Error()}
		}
		if s.Name == "" {
			base := s.act.defaultName()
			s.Name = base
			for n := 2; seen[s.Name] != 0; n++ {
				s.Name = fmt.Sprintf("%s-%d", base, n)
			}
		} else if len(s.Name) > maxStepName {
			return p, &PlanError{Step: i, Name: s.Name[:maxStepName], Reason: fmt.Sprintf("name longer than %d bytes", maxStepName)}
		}
		if j, ok := seen[s.Name]; ok && j >= 0 {
			return p, &PlanError{Step: i, Name: s.Name, Reason: fmt.Sprintf("name already used by step %d", j)}
		}
		if s.Timeout < 0 {
			return p, &PlanError{Step: i, Name: s.Name, Reason: "negative timeout"}
		}
		seen[s.Name] = i
		out.Steps[i] = s
	}
	if err := out.checkContracts(); err != nil {
		return p, err
	}
	return out, nil
}

// checkContracts refuses a contract (migration Complete) while the plan's
// canary weight is below 100%: the stable side of an in-process canary is
// the old version's code inside the new binary, and it still serves, on
// the columns the contract drops. The old handler must be retired (weight
// 100%) first.
func (p Plan) checkContracts() error {
	var last *weightAction
	lastName := ""
	for i, s := range p.Steps {
		switch a := s.act.(type) {
		case *weightAction:
			last, lastName = a, s.Name
		case *migrationAction:
			if a.phase == MigrationComplete && last != nil && last.bp != MaxWeight {
				return &PlanError{Step: i, Name: s.Name, Reason: fmt.Sprintf(
					"contracts migration %q while the canary weight is %s (step %q): the stable handler, the old version's code inside the new binary, still serves and uses what the contract drops; set the weight to 100%% before the contract",
					a.name, pct(last.bp), lastName)}
			}
		}
	}
	return nil
}

// maxStepName bounds a step name: it is shown on the admin page and kept
// in every saved state.
const maxStepName = 200

// planLooks tells every LookPlanner analyzer of the plan how many times a
// full run calls it.
func (p Plan) planLooks() {
	type count struct {
		lp LookPlanner
		n  int
	}
	var counts []count
	for _, s := range p.Steps {
		c, ok := s.act.(interface{ analyzers(add func(Analyzer, int)) })
		if !ok {
			continue
		}
		c.analyzers(func(a Analyzer, n int) {
			lp, ok := a.(LookPlanner)
			if !ok {
				return
			}
			for i := range counts {
				if sameAnalyzer(counts[i].lp, lp) {
					counts[i].n += n
					return
				}
			}
			counts = append(counts, count{lp, n})
		})
	}
	for _, c := range counts {
		c.lp.PlanLooks(c.n)
	}
}

// sameAnalyzer compares two analyzers that may be of types == cannot
// compare (a func, a struct holding a slice), which are then different.
func sameAnalyzer(a, b LookPlanner) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	return ta == tb && ta.Comparable() && a == b
}

func (p Plan) hash() string {
	h := sha256.New()
	for _, s := range p.Steps {
		fmt.Fprintf(h, "%s\x00%s\x00%t\n", s.Name, s.act.kind(), s.act.irreversible())
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// action is what a step does and how it is undone. run and undo are
// at-least-once: after a crash they are called again with the persisted
// progress.
type action interface {
	kind() Kind
	defaultName() string // the default step name, from the kind and parameters
	describe() string
	irreversible() bool
	validate() error
	run(ctx context.Context, x *stepCtx) error
	undo(ctx context.Context, x *stepCtx) error
}
