//go:build unix

package fleetflags_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	of "github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/flags/openfeature"
	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/fleetflags"
	"github.com/batonhq/baton/rollout/fleet/internal/fleethost"
)

func init() { testchild.Register("flags-host", hostMain) }

const localFlags = "flags:\n  local-flag:\n    variants: {on: true, off: false}\n    default: on\n"

// lateWriter is the admin handler's OverrideWriter before the host has
// joined the fleet: changes are refused until then.
type lateWriter struct {
	mu sync.Mutex
	w  *fleetflags.Writer
}

func (l *lateWriter) UpdateOverride(ctx context.Context, key string, edit func(*flags.Override) error) error {
	l.mu.Lock()
	w := l.w
	l.mu.Unlock()
	if w == nil {
		return errors.New("not in the fleet yet")
	}
	return w.UpdateOverride(ctx, key, edit)
}

// hostMain is one host of the flag tests. Before it reaches the engine it
// serves its flags: a local file (local.yaml) and the fleet's document
// from its cache (flags.cache), both in its working directory. It serves
//
//	GET /eval?flag=F   "<value> <document version> <provider state>",
//	                   evaluated through the OpenFeature SDK
//	/admin/...         flags.NewAdminHandler, whose changes go to the
//	                   fleet's document
//
// and prints "ready <id> <address>", then "joined <id>" once it has an
// engine.
func hostMain() int {
	id := os.Getenv("FLEET_ID")
	fail := func(err error) int { fmt.Printf("error %s %v\n", id, err); return 1 }
	if err := os.WriteFile("local.yaml", []byte(localFlags), 0o600); err != nil {
		return fail(err)
	}
	store, err := flags.New(flags.Options{})
	if err != nil {
		return fail(err)
	}
	defer store.Close()
	files, err := flags.NewFileSource(store, flags.FileOptions{Paths: []string{"local.yaml"}})
	if err != nil {
		return fail(err)
	}
	defer files.Close()
	src, err := fleetflags.NewSource(fleetflags.Options{Store: store, CacheFile: "flags.cache"})
	if err != nil {
		return fail(err)
	}
	defer src.Close()
	ctx := context.Background()
	api := isolated.NewAPI()
	if err := api.SetProviderAndWait(ctx, openfeature.New(store, openfeature.Options{})); err != nil {
		return fail(err)
	}
	defer api.Shutdown(context.Background())
	client := api.NewClient()
	late := &lateWriter{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /eval", func(w http.ResponseWriter, r *http.Request) {
		v, _ := client.BooleanValue(r.Context(), r.URL.Query().Get("flag"), false, of.NewEvaluationContext("user-1", nil))
		fmt.Fprintf(w, "%v %d %s", v, src.Current().Version, client.State())
	})
	mux.Handle("/admin/", http.StripPrefix("/admin", flags.NewAdminHandler(store, flags.AdminOptions{Overrides: late})))
	ln, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("FLEET_HOST"), "0"))
	if err != nil {
		return fail(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Printf("ready %s %s\n", id, ln.Addr())

	// The engine may be down: keep trying, serving meanwhile.
	var e fleet.Engine
	for {
		var closeEngine func()
		if e, closeEngine, err = fleethost.OpenFromEnv(); err == nil {
			defer closeEngine()
			break
		}
		time.Sleep(200 * time.Millisecond) // retry pace of a process that waits for its engine
	}
	m, err := fleethost.Join(ctx, e, os.Getenv("FLEET_NS"), id, os.Getenv("FLEET_HOST"), ln.Addr().String())
	if err != nil {
		return fail(err)
	}
	defer m.Close()
	if err := src.Follow(m); err != nil {
		return fail(err)
	}
	late.mu.Lock()
	late.w = src.Writer()
	late.mu.Unlock()
	fmt.Printf("joined %s\n", id)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	return 0
}
