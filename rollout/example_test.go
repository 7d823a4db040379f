package rollout_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/rollouttest"
)

// A canary that ramps a flag once the weight is healthy; the fakes of
// rollouttest stand for the canary router and the flag source.
func Example() {
	dir, _ := os.MkdirTemp("", "rollout-example")
	defer os.RemoveAll(dir)
	store, _ := rollout.NewFileStore(rollout.FileStoreOptions{Dir: dir})

	rec := &rollouttest.Recorder{}
	router := &rollouttest.Weights{Recorder: rec}
	flags := &rollouttest.Flags{Recorder: rec}
	healthy := rollout.AnalyzerFunc(func(ctx context.Context) (rollout.Verdict, string, error) {
		return rollout.Pass, "error rate 0.01% <= 0.1%", nil
	})

	steps, _ := rollout.Canary(router, rollout.CanaryOptions{Weights: []uint32{500, 10000}, Analyzer: healthy})
	steps = append(steps, rollout.RampFlag(flags, "new-checkout", rollout.RampOptions{
		Percentages: []float64{10, 100}, Interval: time.Nanosecond, Analyzer: healthy,
	}))
	r, err := rollout.New(context.Background(), rollout.Plan{ID: "checkout-v2", Steps: steps}, rollout.Options{Store: store})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := r.Run(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	st := r.Status()
	fmt.Println(st.Phase)
	for _, s := range st.Steps {
		fmt.Printf("%-22s %s: %s\n", s.Name, s.Status, s.Decisions[len(s.Decisions)-1].Reason)
	}
	// Output:
	// succeeded
	// canary-weight-500      succeeded: canary weight set to 5.00%
	// canary-analysis-500    succeeded: analysis passed: 1 of 1 measurement(s) conclusive (at least 1 required), 0 inconclusive (0 tolerated)
	// canary-weight-10000    succeeded: canary weight set to 100.00%
	// canary-analysis-10000  succeeded: analysis passed: 1 of 1 measurement(s) conclusive (at least 1 required), 0 inconclusive (0 tolerated)
	// ramp-flag-new-checkout succeeded: analysis at 100%: pass (error rate 0.01% <= 0.1%)
}

// Restarting the program in the middle of a rollout resumes it: New loads
// the state and Run continues after the last completed step.
func ExampleNew_resume() {
	dir, _ := os.MkdirTemp("", "rollout-example")
	defer os.RemoveAll(dir)
	store, _ := rollout.NewFileStore(rollout.FileStoreOptions{Dir: dir})
	rec := &rollouttest.Recorder{}
	w := &rollouttest.Weights{Recorder: rec}
	plan := rollout.Plan{ID: "resume", Steps: []rollout.Step{
		rollout.SetWeight(w, 100), rollout.PauseUntilPromoted().Named("hold"), rollout.SetWeight(w, 10000),
	}}

	ctx, stop := context.WithCancel(context.Background())
	first, _ := rollout.New(ctx, plan, rollout.Options{Store: store})
	done := make(chan error)
	go func() { done <- first.Run(ctx) }()
	for ch := first.Changed(); !first.Status().Steps[1].Waiting; ch = first.Changed() {
		<-ch
	}
	stop() // the process goes away while "hold" waits
	fmt.Println("first run:", <-done)

	second, _ := rollout.New(context.Background(), plan, rollout.Options{Store: store})
	go func() { done <- second.Run(context.Background()) }()
	for ch := second.Changed(); !second.Status().Steps[1].Waiting; ch = second.Changed() {
		<-ch
	}
	_ = second.Promote(context.Background())
	fmt.Println("second run:", <-done)
	fmt.Println(rec.Calls())
	// Output:
	// first run: context canceled
	// second run: <nil>
	// [weight 100 weight 10000]
}
