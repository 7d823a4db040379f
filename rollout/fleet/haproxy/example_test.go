package haproxy_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet/haproxy"
)

// A blue-green plan behind HAProxy: green is started and checked, the
// switch moves the traffic, a bake judges green with traffic on it, and
// blue is stopped once nothing can go back to it. A failure anywhere
// before the end flips the load balancer back to blue.
func ExampleSwitch_Step() {
	c, err := haproxy.NewClient("/run/haproxy/admin.sock", haproxy.ClientOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	sw, err := haproxy.NewSwitch(haproxy.SwitchOptions{
		Client:  c,
		Backend: "app",
		Blue:    haproxy.Group{Servers: []string{"blue1", "blue2"}},
		Green:   haproxy.Group{Servers: []string{"green1", "green2"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	healthy := rollout.AnalyzerFunc(func(context.Context) (rollout.Verdict, string, error) {
		return rollout.Pass, "error rate 0.01%", nil
	})
	startGreen := rollout.Hook(func(context.Context, rollout.HookEvent) error { return nil /* start v2 */ },
		rollout.HookOptions{OnRollback: func(context.Context, rollout.HookEvent) error { return nil /* stop v2 */ }})
	stopBlue := rollout.Hook(func(context.Context, rollout.HookEvent) error { return nil /* stop v1 */ }, rollout.HookOptions{})
	plan := rollout.Plan{ID: "app-v2", Steps: []rollout.Step{
		startGreen.Named("start-green"),
		rollout.Analyze(healthy, rollout.AnalysisOptions{}).Named("smoke"),
		sw.Step(),
		rollout.Analyze(healthy, rollout.AnalysisOptions{Count: 10, Interval: time.Minute}).Named("bake"),
		stopBlue.Named("stop-blue"),
	}}
	store, _ := rollout.NewFileStore(rollout.FileStoreOptions{Dir: os.TempDir()})
	r, err := rollout.New(context.Background(), plan, rollout.Options{Store: store})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = r.Run(context.Background())
}
