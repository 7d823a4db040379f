package rollout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// decodeStatus reads a stored state for plan p and checks it is one the
// runner could have written: no unknown field, known phases, statuses and
// handoff positions, indexes and progress within range, the plan's steps
// in the plan's order. Irreversible and Description come from the plan,
// never from the file. A state that fails is refused whole: resuming from
// a guess could repeat a completed step or skip one.
func decodeStatus(data []byte, p Plan) (Status, error) {
	bad := func(field, format string, args ...any) error {
		return &StateError{ID: p.ID, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st Status
	if err := dec.Decode(&st); err != nil {
		return Status{}, bad("", "%v", err)
	}
	if dec.More() {
		return Status{}, bad("", "more than one JSON value")
	}
	if st.ID != p.ID {
		return Status{}, bad("id", "%q, want %q", st.ID, p.ID)
	}
	if st.PlanHash != p.hash() || len(st.Steps) != len(p.Steps) {
		return Status{}, fmt.Errorf("%w: %q was stored with plan %s, this plan is %s: use a new id for a new plan", ErrPlanChanged, p.ID, st.PlanHash, p.hash())
	}
	if !slices.Contains(phases, st.Phase) {
		return Status{}, bad("phase", "unknown phase %q (want one of %q)", st.Phase, phases)
	}
	if st.Run < 0 {
		return Status{}, bad("run", "%d is negative", st.Run)
	}
	if st.Current < -1 || st.Current >= len(st.Steps) {
		return Status{}, bad("current", "%d is outside -1..%d", st.Current, len(st.Steps)-1)
	}
	if st.Weight != nil && *st.Weight > MaxWeight {
		return Status{}, bad("weight", "%d basis points is outside 0..%d", *st.Weight, MaxWeight)
	}
	if err := checkDecisions(p.ID, "decisions", st.Decisions); err != nil {
		return Status{}, err
	}
	for i := range st.Steps {
		s, ps := &st.Steps[i], p.Steps[i]
		f := func(name string) string { return fmt.Sprintf("steps[%d].%s", i, name) }
		if s.Name != ps.Name || s.Kind != ps.act.kind() {
			return Status{}, bad(f("name"), "step %q (%s), the plan has %q (%s) there", s.Name, s.Kind, ps.Name, ps.act.kind())
		}
		if s.Status == "" {
			s.Status = StepPending
		}
		if !slices.Contains(stepStatuses, s.Status) {
			return Status{}, bad(f("status"), "unknown status %q (want one of %q)", s.Status, stepStatuses)
		}
		if !slices.Contains(handoffs, s.Handoff) {
			return Status{}, bad(f("handoff"), "unknown handoff %q (want one of %q)", s.Handoff, handoffs)
		}
		if s.Attempts < 0 {
			return Status{}, bad(f("attempts"), "%d is negative", s.Attempts)
		}
		if s.Progress < 0 {
			return Status{}, bad(f("progress"), "%d is negative", s.Progress)
		}
		if c, ok := ps.act.(progressChecker); ok {
			if err := c.checkProgress(s.Progress); err != nil {
				return Status{}, bad(f("progress"), "%v", err)
			}
		}
		if s.Promoted && s.Kind != KindBlueGreen {
			return Status{}, bad(f("promoted"), "set on a %s step; only a blue-green step is promoted", s.Kind)
		}
		if err := checkDecisions(p.ID, f("decisions"), s.Decisions); err != nil {
			return Status{}, err
		}
		s.Irreversible = ps.act.irreversible()
		s.Description = ps.act.describe()
		// Waiting describes a live runner; the one that wrote it is gone.
		s.Waiting = false
	}
	if st.Phase == PhaseSucceeded {
		for i, s := range st.Steps {
			if s.Status != StepSucceeded && s.Status != StepSkipped {
				return Status{}, bad(fmt.Sprintf("steps[%d].status", i), "%s in a succeeded rollout", s.Status)
			}
		}
	}
	return st, nil
}

func checkDecisions(id, field string, ds []Decision) error {
	if len(ds) > MaxDecisions {
		return &StateError{ID: id, Field: field, Reason: fmt.Sprintf("%d decisions, more than the %d the runner keeps", len(ds), MaxDecisions)}
	}
	for k, d := range ds {
		bad := func(format string, args ...any) error {
			return &StateError{ID: id, Field: fmt.Sprintf("%s[%d]", field, k), Reason: fmt.Sprintf(format, args...)}
		}
		if d.Verdict != "" && !slices.Contains(verdicts, d.Verdict) {
			return bad("unknown verdict %q (want one of %q)", d.Verdict, verdicts)
		}
		if d.Percent != nil && !(*d.Percent >= 0 && *d.Percent <= 100) {
			return bad("percent %v is outside 0..100", *d.Percent)
		}
		if d.Weight != nil && *d.Weight > MaxWeight {
			return bad("weight %d basis points is outside 0..%d", *d.Weight, MaxWeight)
		}
		if m := d.Measurement; m != nil {
			if m.Weight > MaxWeight {
				return bad("measurement weight %d basis points is outside 0..%d", m.Weight, MaxWeight)
			}
			for _, f := range []Figures{m.Canary, m.Stable} {
				if !(f.ErrorRate >= 0 && f.ErrorRate <= 1) || !(f.P50Seconds >= 0) || !(f.P99Seconds >= 0) || f.Errors > f.Requests {
					return bad("measurement figures out of range: %+v", f)
				}
			}
		}
	}
	return nil
}

// progressChecker is implemented by actions whose Progress has a range:
// checkProgress says why p is outside it.
type progressChecker interface {
	checkProgress(p int) error
}

var (
	phases       = []Phase{PhasePending, PhaseRunning, PhaseSucceeded, PhaseRollingBack, PhaseRolledBack, PhaseFailed}
	stepStatuses = []StepStatus{StepPending, StepRunning, StepSucceeded, StepSkipped, StepFailed, StepRollingBack, StepRolledBack, StepRollbackFailed}
	handoffs     = []Handoff{HandoffNone, HandoffHandedOff, HandoffHandedBack}
	verdicts     = []string{Pass.String(), Fail.String(), Inconclusive.String()}
)
