package fleet_test

import (
	"context"
	"fmt"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/etcd"
	"github.com/batonhq/baton/rollout/fleet/etcd/etcdtest"
)

// Two instances of a service join a fleet on an embedded etcd server and
// see each other; one leaves.
func Example() {
	srv, err := etcdtest.Start(etcdtest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	e, err := etcd.Open(clientv3.Config{Endpoints: []string{srv.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	a, _ := fleet.Join(ctx, e, fleet.Options{Namespace: "shop", ID: "web-1", Version: "v1", State: fleet.StateReady})
	defer a.Close()
	b, _ := fleet.Join(ctx, e, fleet.Options{Namespace: "shop", ID: "web-2", Version: "v2", State: fleet.StateReady})

	live, _ := a.Registry().Live(ctx)
	old, _ := a.Registry().OldVersionsAlive(ctx, "v2")
	fmt.Println(len(live), "members;", old, "not on v2")
	b.Leave(ctx)
	old, _ = a.Registry().OldVersionsAlive(ctx, "v1")
	fmt.Println(old, "not on v1 after web-2 left")
	// Output:
	// 2 members; 1 not on v2
	// 0 not on v1 after web-2 left
}

// A version reaches a path only once checked: a resolver refuses one that
// would climb out of the releases directory.
func ExamplePathTemplate() {
	p := fleet.PathTemplate("/opt/svc/releases/{version}/svc")
	_, err := p.Binary("../../../bin/sh")
	fmt.Println(err)
	// Output: fleet: invalid version "../../../bin/sh": use 1 to 64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit
}

// A rolling update of three hosts, one at a time, each baking 30 s with its
// predecessor warm, with an analysis after each host; every member builds
// the same plan, whichever leads drives it.
func ExampleRolling() {
	var analyzer rollout.Analyzer // canary or SLO analysis
	drive, _ := fleet.DriveRollout(fleet.RolloutOptions{Plan: func(l *fleet.Lead) (rollout.Plan, error) {
		steps, err := fleet.Rolling(l, fleet.RollingOptions{
			Hosts: []string{"web-1", "web-2", "web-3"}, Version: "v2", Previous: "v1", Rollout: "release-v2",
			Bake: 30 * time.Second, Analyzer: analyzer,
		})
		return rollout.Plan{ID: "release-v2", Steps: steps}, err
	}})
	_ = drive // fleet.NewDriver(member, fleet.DriverOptions{Drive: drive})
}
