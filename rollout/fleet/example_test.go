package fleet_test

import (
	"context"
	"fmt"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

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
