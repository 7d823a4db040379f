package rollout

import (
	"time"
)

// StatusView is the JSON of GET /api/status and of an accepted command:
// the state, with what the console shows computed from the plan. Its zero
// value is an empty status.
type StatusView struct {
	Status
	// Revision is the store revision of the state: pass it to
	// GET /api/status?wait= to be answered at the next change.
	Revision int64      `json:"revision"`
	Now      time.Time  `json:"now"`
	Steps    []StepView `json:"steps"`
	// Refusals maps each command that would be refused now to the
	// reason the API would give; a command missing from it applies.
	Refusals map[string]string `json:"refusals,omitempty"`
	// Version is the version of the process that answers.
	Version string `json:"version,omitempty"`
}

// StepView is one step in StatusView, with its duration and progress
// computed. The zero value is an empty step.
type StepView struct {
	StepState
	DurationSeconds float64 `json:"durationSeconds"`
	// Units is the number of units of a step made of several, Unit what
	// they are ("percentage", "measurement", "bake round", "instance")
	// and UnitsDone how many are done; Units 0 for a step of one.
	Units     int    `json:"units,omitempty"`
	UnitsDone int    `json:"unitsDone,omitempty"`
	Unit      string `json:"unit,omitempty"`
	// Flag and Percentages are a ramp-flag step's flag key and its
	// percentages in order.
	Flag        string    `json:"flag,omitempty"`
	Percentages []float64 `json:"percentages,omitempty"`
	// WaitEndsAt is when the running step's current timed wait ends (a
	// pause, a bake window, the interval before the next measurement or
	// percentage), and WaitLeftSeconds the time left; zero when it waits
	// for nothing timed.
	WaitEndsAt      time.Time `json:"waitEndsAt,omitzero"`
	WaitLeftSeconds float64   `json:"waitLeftSeconds,omitempty"`
	// Backfill is how far a running backfill has come, when its
	// MigrationPhaser is a BackfillReporter.
	Backfill *BackfillProgress `json:"backfill,omitempty"`
}

// detailer is implemented by actions that can say more of their progress
// than Progress: it fills v's progress fields from the step's record.
type detailer interface {
	detail(v *StepView)
}

func view(r *Rollout) StatusView {
	// One snapshot under the lock: the refusals match the state shown.
	r.mu.Lock()
	st, refusals := r.st.clone(), r.refusalsLocked()
	r.mu.Unlock()
	now := r.clock.Now()
	v := StatusView{Status: st, Revision: st.Revision, Now: now, Version: r.opts.Version}
	for i, s := range st.Steps {
		sv := StepView{StepState: s, DurationSeconds: s.Duration(now).Seconds()}
		if i < len(r.plan.Steps) {
			if d, ok := r.plan.Steps[i].act.(detailer); ok {
				d.detail(&sv)
			}
		}
		if s.Status != StepRunning {
			sv.WaitEndsAt = time.Time{}
		}
		if !sv.WaitEndsAt.IsZero() {
			sv.WaitLeftSeconds = max(0, sv.WaitEndsAt.Sub(now).Seconds())
		}
		v.Steps = append(v.Steps, sv)
	}
	for cmd, err := range refusals {
		if v.Refusals == nil {
			v.Refusals = map[string]string{}
		}
		if ce, ok := err.(*CommandError); ok {
			v.Refusals[cmd] = ce.Reason
		} else {
			v.Refusals[cmd] = err.Error()
		}
	}
	return v
}

func waitEnd(s *StepState, d time.Duration) time.Time {
	if s.WaitStartedAt.IsZero() || d <= 0 {
		return time.Time{}
	}
	return s.WaitStartedAt.Add(d)
}

func (a *analyzeAction) detail(v *StepView) {
	v.Unit, v.Units, v.UnitsDone = "measurement", a.o.Count, v.Progress&0xffff
	v.WaitEndsAt = waitEnd(&v.StepState, a.o.Interval)
}

func (a *rampAction) detail(v *StepView) {
	v.Unit, v.Units, v.UnitsDone = "percentage", len(a.o.Percentages), v.Progress
	v.Flag, v.Percentages = a.key, a.o.Percentages
	if a.o.Analyzer != nil {
		v.WaitEndsAt = waitEnd(&v.StepState, a.o.Interval)
	}
}

func (a *pauseAction) detail(v *StepView) { v.WaitEndsAt = waitEnd(&v.StepState, a.d) }

func (a *upgradeAction) detail(v *StepView) {
	if !a.blueGreen || a.bake.Interval <= 0 {
		return
	}
	v.Unit = "conclusive bake round"
	v.Units = int((a.bake.Window + a.bake.Interval - 1) / a.bake.Interval)
	v.UnitsDone = min(v.Progress, v.Units)
	if v.Handoff == HandoffHandedOff && !v.Promoted {
		v.WaitEndsAt = waitEnd(&v.StepState, a.bake.Window)
	}
}

func (a *replaceAction) detail(v *StepView) {
	v.Unit, v.Units = "instance", len(a.targets)
	if v.Status == StepSucceeded {
		v.UnitsDone = v.Units
	}
}

func (a *migrationAction) detail(v *StepView) {
	br, ok := a.m.(BackfillReporter)
	if !ok || a.phase != MigrationBackfill || (v.Status != StepRunning && v.Status != StepSucceeded) {
		return
	}
	if p, ok := br.BackfillProgress(a.name); ok {
		v.Backfill = &p
	}
}

// View returns r's StatusView, what GET /api/status answers, for a
// process that publishes it to others (rollout/fleet's driver does, for
// NewRemoteHandler on every member).
func (r *Rollout) View() StatusView { return view(r) }
