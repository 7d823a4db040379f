package bind_test

import (
	"context"
	"path/filepath"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/graceful"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/bind"
)

// A service's rollout side, as the README shows it: a Driver binds each
// release manifest to this process's adapters and drives its side of it,
// served on a per-process admin socket with a stable name.
func ExampleNewUpgrader() {
	ctx := context.Background()
	dir, version := "/srv/orders/var", "v2"
	upg, err := graceful.New(graceful.Options{})
	if err != nil {
		return
	}
	split, err := canary.New(canary.Options{})
	if err != nil {
		return
	}
	up := bind.NewUpgrader(upg, bind.UpgraderOptions{Install: "/srv/orders/bin/orders"})
	store, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: filepath.Join(dir, "rollouts")})
	if err != nil {
		return
	}
	bindings := func(rel *rollout.Release) (rollout.Bindings, error) {
		return rollout.Bindings{Version: version, Upgrader: up, Weights: bind.CanaryWeights{Splitter: split},
			Analyzers: map[string]rollout.Analyzer{"canary": &bind.CanaryAnalyzer{Splitter: split}}}, nil
	}

	sock, _ := rollout.ListenAdmin(filepath.Join(dir, "admin.sock")) // <path>.<pid>, 0600, and a stable name
	d, _ := rollout.NewDriver(ctx, rollout.DriverOptions{Store: store, Version: version, Socket: sock,
		AwaitDrive: up.AwaitDrive, Bind: bindings}) // before Ready: restores the release's canary weight
	srv := rollout.ServeAdmin(sock, d.Handler(rollout.HandlerOptions{})) // serves in its own goroutine
	defer srv.Close()
	go d.Run(ctx)
}
