package rollout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/rollouttest"
)

// The kill -9 tests re-execute the test binary as a rollout runner (a
// "child"), let it reach a given point of a given step, kill it with
// SIGKILL, and resume the rollout with a fresh runner. Every effect of the
// fakes (a weight set, a flag changed, a migration phase run, an upgrade)
// is appended, fsynced, to an effects file by whichever process makes it.
//
// A child is killed at one of two points of a step: before the effect
// (the step is recorded running, its effect not made), or after it (the
// effect made, its completion not recorded). After the resume the effects
// must be those of an uninterrupted rollout, except that a step killed
// after its effect makes it once more (at-least-once, which is why
// consumer methods must be idempotent): nothing recorded complete is
// repeated, nothing is lost.

const (
	childDir      = "BATON_ROLLOUT_TEST_DIR"
	childEffects  = "BATON_ROLLOUT_TEST_EFFECTS"
	childVersion  = "BATON_ROLLOUT_TEST_VERSION"
	childBlockAt  = "BATON_ROLLOUT_TEST_BLOCK_CALL" // block inside this fake call
	childAfter    = "BATON_ROLLOUT_TEST_AFTER"      // ... after its effect is made
	childWaitStep = "BATON_ROLLOUT_TEST_WAIT_STEP"  // report when this step waits
	childFail     = "BATON_ROLLOUT_TEST_FAIL_BAKE"
	childComplete = "BATON_ROLLOUT_TEST_COMPLETED" // hold once this step is saved succeeded
)

type namedAnalyzer struct {
	rec  *rollouttest.Recorder
	name string
	fail bool
}

func (a namedAnalyzer) Analyze(ctx context.Context) (rollout.Verdict, string, error) {
	if err := a.rec.Record(ctx, "analyze "+a.name); err != nil {
		return rollout.Inconclusive, "", err
	}
	if a.fail {
		return rollout.Fail, "error rate 7% > 1%", nil
	}
	return rollout.Pass, "healthy", nil
}

// killPlan has one step of every kind; the upgrades come last because they
// move the drive to another process version (v1 -> v2 -> v3). With
// failBake the bake analysis fails, and the rollback travels back through
// the handoffs (v3 -> v2 -> v1) down to the irreversible contract.
func killPlan(rec *rollouttest.Recorder, failBake bool) rollout.Plan {
	w := &rollouttest.Weights{Recorder: rec}
	f := &rollouttest.Flags{Recorder: rec}
	m := &rollouttest.Migrator{Recorder: rec}
	reg := &rollouttest.Registry{Recorder: rec}
	tg := &rollouttest.Target{Recorder: rec, ID: "t1"}
	rolling, _ := rollout.Rolling([]rollout.Target{tg}, "v2", "v1", rollout.RollingOptions{})
	hook := func(ctx context.Context, ev rollout.HookEvent) error { return rec.Record(ctx, "hook "+ev.Step) }
	steps := []rollout.Step{
		rollout.Hook(hook, rollout.HookOptions{}).Named("pre"),
		rollout.Migration(m, "m", rollout.MigrationStart).Named("expand"),
		rollout.Migration(m, "m", rollout.MigrationComplete).Named("contract"),
		rollout.SetWeight(w, 500).Named("weight"),
		rollout.Pause(time.Hour).Named("pause"),
		rollout.Analyze(namedAnalyzer{rec: rec, name: "check"}, rollout.AnalysisOptions{}).Named("check"),
		rollout.RampFlag(f, "f", rollout.RampOptions{Percentages: []float64{10, 50}, Interval: time.Hour, Analyzer: namedAnalyzer{rec: rec, name: "ramp"}}).Named("ramp"),
		rollout.WaitOldGone(reg, "v2", time.Hour).Named("old-gone"),
	}
	steps = append(steps, rolling...)
	steps = append(steps,
		rollout.Upgrade(&rollouttest.Upgrader{Recorder: rec, To: "v2"}, "v2").Named("upgrade"),
		rollout.BlueGreen(&rollouttest.Upgrader{Recorder: rec, To: "v3"}, "v3", rollout.BakeOptions{Window: 3 * time.Hour, Interval: time.Hour, Analyzers: []rollout.Analyzer{namedAnalyzer{rec, "bake", failBake}}}).Named("blue-green"),
		rollout.SetWeight(w, 10000).Named("full"),
	)
	return rollout.Plan{ID: "kill", Steps: steps}
}

// effectsRecorder appends every call to path (fsynced): that is its
// effect. block, if non-empty, names a call that announces itself on
// stdout and never returns (the process is about to be killed), before
// its effect, or after it when afterEffect is set.
func effectsRecorder(path, block string, afterEffect bool, out *os.File) *rollouttest.Recorder {
	var mu sync.Mutex
	hold := func(ctx context.Context, call string) error {
		fmt.Fprintf(out, "BLOCKED %s\n", call)
		<-ctx.Done() // SIGKILL arrives first
		return ctx.Err()
	}
	return &rollouttest.Recorder{Before: func(ctx context.Context, call string) error {
		if call == block && !afterEffect {
			return hold(ctx, call)
		}
		if err := appendEffect(&mu, path, call); err != nil {
			return err
		}
		if call == block {
			return hold(ctx, call)
		}
		return nil
	}}
}

func appendEffect(mu *sync.Mutex, path, call string) error {
	mu.Lock()
	defer mu.Unlock()
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer fh.Close()
	if _, err := fmt.Fprintln(fh, call); err != nil {
		return err
	}
	return fh.Sync()
}

func childMain() int {
	ctx := context.Background()
	fs, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: os.Getenv(childDir)})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	var store rollout.Store = fs
	if step := os.Getenv(childComplete); step != "" {
		store = &holdAfterCompletion{Store: fs, step: step, out: os.Stdout}
	}
	rec := effectsRecorder(os.Getenv(childEffects), os.Getenv(childBlockAt), os.Getenv(childAfter) != "", os.Stdout)
	// Timers of steps before the kill point fire at once on a virtual
	// clock; when the kill point is a wait, timers never fire.
	clock := &skipClock{now: time.Now(), hold: os.Getenv(childWaitStep) != ""}
	r, err := rollout.New(ctx, killPlan(rec, os.Getenv(childFail) != ""), rollout.Options{Store: store, Version: os.Getenv(childVersion), Clock: clock})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	if step := os.Getenv(childWaitStep); step != "" {
		go func() { // ends with the process
			for {
				ch := r.Changed()
				for _, s := range r.Status().Steps {
					if s.Name == step && s.Waiting {
						fmt.Printf("WAITING %s\n", step)
						return
					}
				}
				<-ch
			}
		}()
	}
	err = r.Run(ctx)
	switch {
	case err == nil:
		fmt.Println("DONE")
	case errors.Is(err, rollout.ErrHandedOff):
		fmt.Println("HANDEDOFF")
	case errors.Is(err, rollout.ErrRolledBack):
		fmt.Println("ROLLEDBACK")
	default:
		fmt.Println("ERROR", err)
		return 1
	}
	return 0
}

// holdAfterCompletion holds the runner right after the save that records
// step succeeded, before it can record anything else: it announces
// itself and waits for the SIGKILL.
type holdAfterCompletion struct {
	rollout.Store
	step string
	out  *os.File
}

func (h *holdAfterCompletion) Save(ctx context.Context, id string, prev int64, data []byte) (int64, error) {
	rev, err := h.Store.Save(ctx, id, prev, data)
	if err == nil && stepSucceeded(data, h.step) {
		fmt.Fprintf(h.out, "COMPLETED %s\n", h.step)
		select {} // SIGKILL ends it
	}
	return rev, err
}

// stepSucceeded reports whether the state document data records step
// name succeeded.
func stepSucceeded(data []byte, name string) bool {
	var st struct {
		Steps []struct{ Name, Status string }
	}
	if json.Unmarshal(data, &st) != nil {
		return false
	}
	for _, s := range st.Steps {
		if s.Name == name {
			return s.Status == string(rollout.StepSucceeded)
		}
	}
	return false
}

type killCase struct {
	name     string
	before   []string // versions run in process before the child
	child    string   // version of the child that gets killed
	blockAt  string   // a fake call to block in, or
	waitStep string   // a step to catch while it waits
	after    []string // versions run in process after the kill
	failBake bool
	want     func(ok, failed []string) []string // expected effects
	phase    rollout.Phase
	// afterEffect kills the child after blockAt's effect is made, before
	// the step's completion is recorded.
	afterEffect bool
	// completed kills the child right after this step's completion is
	// saved, before the runner records anything else: the resumed
	// rollout must not make its effect again.
	completed string
}

func asIs(ok, _ []string) []string    { return ok }
func asFailed(_, f []string) []string { return f }
func upTo(l []string, last string) []string {
	return append([]string(nil), l[:slices.Index(l, last)+1]...)
}

var (
	v123 = []string{"v1", "v2", "v3"}
	v23  = []string{"v2", "v3"}
)

var killCases = []killCase{
	{"hook", nil, "v1", "hook pre", "", v123, false, asIs, rollout.PhaseSucceeded, false, ""},
	{"migration", nil, "v1", "migration m complete", "", v123, false, asIs, rollout.PhaseSucceeded, false, ""},
	{"set-weight", nil, "v1", "weight 500", "", v123, false, asIs, rollout.PhaseSucceeded, false, ""},
	{"pause", nil, "v1", "", "pause", v123, false, asIs, rollout.PhaseSucceeded, false, ""},
	{"analyze", nil, "v1", "analyze check", "", v123, false, asIs, rollout.PhaseSucceeded, false, ""},
	{"ramp-flag", nil, "v1", "flag f 50", "", v123, false, asIs, rollout.PhaseSucceeded, false, ""},
	{"wait-old-gone", nil, "v1", "registry", "", v123, false, asIs, rollout.PhaseSucceeded, false, ""},
	{"replace", nil, "v1", "replace t1 v2", "", v123, false, asIs, rollout.PhaseSucceeded, false, ""},
	// The old process dies inside Upgrade: a fresh old process upgrades.
	{"upgrade-handoff", nil, "v1", "upgrade v2", "", v123, false, asIs, rollout.PhaseSucceeded, false, ""},
	// The new process dies during its bake; a fresh new process resumes
	// the bake for what is left of the window.
	{"blue-green-bake", []string{"v1", "v2"}, "v3", "", "blue-green", []string{"v3"}, false, asIs, rollout.PhaseSucceeded, false, ""},
	// The new process dies during its bake and the old one (resumed by
	// graceful) gets the drive: it rolls back, handing back to v1 through
	// the Downgrader, down to the irreversible contract.
	{"blue-green-bake-old-resumes", []string{"v1", "v2"}, "v3", "", "blue-green", []string{"v2", "v1"}, false,
		func(ok, _ []string) []string {
			return append(upTo(ok, "upgrade_v3"), "downgrade", "replace_t1_v1", "flag_f_off", "weight_0")
		}, rollout.PhaseRolledBack, false, ""},
	// A kill in the middle of a rollback that already crossed two handoffs.
	{"rollback", []string{"v1", "v2", "v3", "v2"}, "v1", "flag f off", "", []string{"v1"}, true, asFailed, rollout.PhaseRolledBack, false, ""},

	// Killed after the effect, before the step is recorded complete: the
	// resumed runner makes the effect once more.
	{"hook-after-effect", nil, "v1", "hook pre", "", v123, false, twice("hook_pre", asIs), rollout.PhaseSucceeded, true, ""},
	{"migration-complete-after-effect", nil, "v1", "migration m complete", "", v123, false, twice("migration_m_complete", asIs), rollout.PhaseSucceeded, true, ""},
	{"set-weight-after-effect", nil, "v1", "weight 500", "", v123, false, twice("weight_500", asIs), rollout.PhaseSucceeded, true, ""},
	{"analyze-after-effect", nil, "v1", "analyze check", "", v123, false, twice("analyze_check", asIs), rollout.PhaseSucceeded, true, ""},
	{"ramp-flag-after-effect", nil, "v1", "flag f 50", "", v123, false, twice("flag_f_50", asIs), rollout.PhaseSucceeded, true, ""},
	{"wait-old-gone-after-effect", nil, "v1", "registry", "", v123, false, twice("registry", asIs), rollout.PhaseSucceeded, true, ""},
	{"replace-after-effect", nil, "v1", "replace t1 v2", "", v123, false, twice("replace_t1_v2", asIs), rollout.PhaseSucceeded, true, ""},
	// The old process dies once the new one is ready, before it returns
	// from Upgrade: the new process takes over; nothing is upgraded twice.
	{"upgrade-after-effect", nil, "v1", "upgrade v2", "", v23, false, asIs, rollout.PhaseSucceeded, true, ""},
	// A rollback action interrupted after its effect is undone again.
	{"rollback-after-effect", []string{"v1", "v2", "v3", "v2"}, "v1", "flag f off", "", []string{"v1"}, true, twice("flag_f_off", asFailed), rollout.PhaseRolledBack, true, ""},

	// Killed right after a step's completion is saved: its effect
	// happened once, and the next runner starts with the next step.
	{name: "hook-completed", child: "v1", completed: "pre", after: v123, want: asIs, phase: rollout.PhaseSucceeded},
	{name: "set-weight-completed", child: "v1", completed: "weight", after: v123, want: asIs, phase: rollout.PhaseSucceeded},
	{name: "ramp-flag-completed", child: "v1", completed: "ramp", after: v123, want: asIs, phase: rollout.PhaseSucceeded},
	{name: "upgrade-completed", before: []string{"v1"}, child: "v2", completed: "upgrade", after: v23, want: asIs, phase: rollout.PhaseSucceeded},
	{name: "blue-green-completed", before: []string{"v1", "v2"}, child: "v3", completed: "blue-green", after: []string{"v3"}, want: asIs, phase: rollout.PhaseSucceeded},
}

// twice expects the effects of want with call made once more right after
// its first occurrence: the re-run of the step killed after its effect.
func twice(call string, want func(ok, failed []string) []string) func(ok, failed []string) []string {
	return func(ok, failed []string) []string {
		l := want(ok, failed)
		i := slices.Index(l, call)
		if i < 0 {
			panic("effect " + call + " not in the reference")
		}
		return slices.Insert(slices.Clone(l), i+1, call)
	}
}

// runVersions drives the kill plan in process with fresh runners of the
// given versions in turn, each until it hands off or the rollout ends,
// and returns the final phase.
func runVersions(t *testing.T, dir, effects string, failBake bool, versions ...string) rollout.Phase {
	t.Helper()
	store := mustFileStore(t, dir)
	for _, v := range versions {
		clock := rollouttest.NewClock(time.Now())
		r, err := rollout.New(context.Background(), killPlan(effectsRecorder(effects, "", false, nil), failBake), rollout.Options{Store: store, Version: v, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		e := &env{t: t, clock: clock}
		err = e.run(r, time.Hour)
		if err != nil && !errors.Is(err, rollout.ErrHandedOff) && !errors.Is(err, rollout.ErrRolledBack) {
			t.Fatalf("version %s: %v\n%s", v, err, decisions(r.Status()))
		}
		if st := r.Status(); st.Phase.Done() {
			return st.Phase
		}
	}
	return ""
}

func readEffects(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

// referenceEffects runs the kill plan uninterrupted in process.
func referenceEffects(t *testing.T, failBake bool, versions ...string) []string {
	dir := t.TempDir()
	path := dir + "/effects"
	runVersions(t, dir, path, failBake, versions...)
	return readEffects(t, path)
}

func TestKillDuringEachStepKindResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	ok := referenceEffects(t, false, v123...)
	failed := referenceEffects(t, true, "v1", "v2", "v3", "v2", "v1")
	if !slices.Contains(failed, "downgrade") || !slices.Contains(failed, "flag_f_off") || slices.Contains(failed, "migration_m_rollback") {
		t.Fatalf("the failing reference did not roll back through the handoffs to the contract: %v", failed)
	}
	for _, c := range killCases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			effects := dir + "/effects"
			if len(c.before) > 0 {
				if p := runVersions(t, dir, effects, c.failBake, c.before...); p != "" {
					t.Fatalf("rollout ended (%s) before the child started", p)
				}
			}
			// The bound only stops a hung child; readiness comes from its output.
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			fail, afterEffect := "", ""
			if c.failBake {
				fail = "1"
			}
			if c.afterEffect {
				afterEffect = "1"
			}
			cmd, err := testchild.Command(cctx, roleRunner, childDir+"="+dir, childEffects+"="+effects,
				childVersion+"="+c.child, childBlockAt+"="+c.blockAt, childAfter+"="+afterEffect,
				childWaitStep+"="+c.waitStep, childFail+"="+fail, childComplete+"="+c.completed)
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := testchild.NewLines("runner "+c.child, out)
			ready := "BLOCKED " + c.blockAt
			switch {
			case c.waitStep != "":
				ready = "WAITING " + c.waitStep
			case c.completed != "":
				ready = "COMPLETED " + c.completed
			}
			lines.Await(t, fmt.Sprintf("the runner to reach %q", ready), 0, func(l string) bool { return l == ready })
			if err := cmd.Process.Signal(os.Kill); err != nil {
				t.Fatal(err)
			}
			err = testchild.Wait(t, "runner "+c.child, cmd, 0)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != -1 {
				t.Fatalf("child did not die by the signal: %v", err)
			}
			// Fresh runners resume: the killed version, or the old side that
			// gets the drive back, then whoever the handoffs designate.
			phase := runVersions(t, dir, effects, c.failBake, c.after...)
			if phase != c.phase {
				t.Fatalf("rollout ended %q, want %q", phase, c.phase)
			}
			got, want := readEffects(t, effects), c.want(ok, failed)
			if !slices.Equal(got, want) {
				t.Fatalf("effects after kill -9 and resume:\n got  %v\n want %v", got, want)
			}
			r, err := rollout.New(context.Background(), killPlan(&rollouttest.Recorder{}, c.failBake), rollout.Options{Store: mustFileStore(t, dir), Version: "v1"})
			if err != nil {
				t.Fatal(err)
			}
			st := r.Status()
			if c.completed != "" {
				for _, s := range st.Steps {
					// A handoff step is started once by each side.
					want := 1
					if s.Kind == rollout.KindUpgrade || s.Kind == rollout.KindBlueGreen {
						want = 2
					}
					if s.Name == c.completed && (s.Attempts != want || strings.Contains(fmt.Sprint(s.Decisions), "resuming after a restart")) {
						t.Fatalf("step %s, killed after its completion was saved, ran again (attempts %d):\n%s", s.Name, s.Attempts, decisions(st))
					}
				}
				return
			}
			killed := false
			for _, s := range st.Steps {
				if s.Attempts > 1 || strings.Contains(fmt.Sprint(s.Decisions), "resuming after a restart") || strings.Contains(fmt.Sprint(s.Decisions), "took over and is gone") {
					killed = true
				}
			}
			if !killed && c.name != "rollback" && c.name != "rollback-after-effect" {
				t.Fatalf("no step shows the restart:\n%s", decisions(st))
			}
		})
	}
}

// skipClock is the child's clock: After moves virtual time and fires at
// once, or never when hold is set.
type skipClock struct {
	mu   sync.Mutex
	now  time.Time
	hold bool
}

func (c *skipClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *skipClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	if c.hold {
		return ch
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	ch <- c.now
	c.mu.Unlock()
	return ch
}
