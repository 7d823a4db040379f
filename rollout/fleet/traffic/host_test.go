//go:build unix

package traffic_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/internal/fleethost"
	"github.com/batonhq/baton/rollout/fleet/traffic"
)

func init() { testchild.Register("traffic-host", hostMain) }

// hostMain is one host of the process tests: a member of the fleet on its
// own loopback address, a splitter that follows the fleet's canary
// document and publishes its snapshot. It serves
//
//	GET /route    the variant the splitter picks for X-User (nothing served)
//	GET /         the splitter: "stable", or "canary" (a 500 for
//	              CANARY_ERRORS of the canary's requests)
//
// and prints
//
//	ready <id> <address>
//	applied <id> <revision> <weight> <refused reason>
func hostMain() int {
	id := os.Getenv("FLEET_ID")
	var mu sync.Mutex
	printf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	fail := func(err error) int { printf("error %s %v", id, err); return 1 }
	e, closeEngine, err := fleethost.OpenFromEnv()
	if err != nil {
		return fail(err)
	}
	defer closeEngine()
	ln, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("FLEET_HOST"), "0"))
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	m, err := fleethost.Join(ctx, e, os.Getenv("FLEET_NS"), id, os.Getenv("FLEET_HOST"), ln.Addr().String())
	if err != nil {
		return fail(err)
	}
	defer m.Close()
	if err := m.AwaitFresh(ctx); err != nil {
		return fail(err)
	}
	if err := m.SetState(ctx, fleet.StateReady); err != nil {
		return fail(err)
	}
	errRate, _ := strconv.ParseFloat(os.Getenv("CANARY_ERRORS"), 64)
	stable := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "stable") })
	canaryH := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rand.Float64() < errRate {
			http.Error(w, "canary failed", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "canary")
	})
	sp, err := canary.New(canary.Options{Stable: stable, Canary: canaryH, Salt: os.Getenv("CANARY_SALT"),
		Key: canary.KeyOptions{Header: "X-User"}, Resolution: time.Second, Window: 30 * time.Second})
	if err != nil {
		return fail(err)
	}
	defer sp.Close()
	f, err := traffic.Follow(m, traffic.FollowOptions{Splitter: sp, Target: "v2", OnApply: func(a traffic.Applied) {
		printf("applied %s %d %d %s", id, a.Revision, a.Canary.Weight, a.Refused)
	}})
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	p, err := traffic.Publish(m, traffic.PublishOptions{Metrics: sp.Metrics(), Interval: 200 * time.Millisecond})
	if err != nil {
		return fail(err)
	}
	defer p.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /route", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, sp.Route(r)) })
	mux.Handle("/", sp)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	printf("ready %s %s", id, ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	return 0
}
