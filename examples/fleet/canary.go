//go:build unix

package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/fleetflags"
	"github.com/batonhq/baton/rollout/fleet/traffic"
)

// The fleet canary: every host serves /checkout through a splitter whose
// canary is the new checkout code of the same binary; the fleet's canary
// document (weight, salt, target) moves every host's splitter at once, and
// the fleet's flag document holds the new-checkout flag, ramped by the
// same rollout.
const (
	canarySalt   = "checkout-v2"
	canaryTarget = "checkout-v2"
	flagKey      = "new-checkout"
)

// flagDoc is the fleet's flag document before the ramp.
const flagDoc = `# the fleet's flags, stored in the engine; every host applies each version
flags:
  new-checkout:
    description: the new checkout's extra step
    variants: {on: true, off: false}
    default: off
`

// canaryHost is a host's part of the fleet canary: the splitter, the flag
// store fed by the fleet's document, and, once the host has joined, the
// Follower and Publisher (flag and canary documents are cached in the
// host's directory).
type canaryHost struct {
	dir   string
	sp    *canary.Splitter
	store *flags.Store
	src   *fleetflags.Source

	mu sync.Mutex
	f  *traffic.Follower
	p  *traffic.Publisher
}

func newCanaryHost(dir string, log *slog.Logger) (*canaryHost, error) {
	store, err := flags.New(flags.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	src, err := fleetflags.NewSource(fleetflags.Options{Store: store, CacheFile: filepath.Join(dir, "flags.cache"), Logger: log})
	if err != nil {
		store.Close()
		return nil, err
	}
	h := &canaryHost{dir: dir, store: store, src: src}
	answer := func(variant string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			extra := store.Bool(flagKey, flags.EvalContext{TargetingKey: r.Header.Get("X-User")}, false)
			fmt.Fprintf(w, "%s %v\n", variant, extra)
		}
	}
	h.sp, err = canary.New(canary.Options{Stable: answer("stable"), Canary: answer("canary"), Salt: canarySalt,
		Key: canary.KeyOptions{Header: "X-User"}, Resolution: time.Second, Window: time.Minute, Logger: log})
	if err != nil {
		src.Close()
		store.Close()
		return nil, err
	}
	return h, nil
}

// register serves /checkout and /canary/state ("<canary document
// revision> <weight> <flag document version>", what this host serves now).
func (h *canaryHost) register(mux *http.ServeMux) {
	mux.Handle("/checkout", h.sp)
	mux.HandleFunc("/canary/state", func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		f := h.f
		h.mu.Unlock()
		var rev int64
		if f != nil {
			rev = f.Applied().Revision
		}
		fmt.Fprintf(w, "%d %d %d\n", rev, h.sp.Weight(), h.src.Current().Version)
	})
}

// follow starts applying the fleet's documents and publishing this host's
// canary measurements.
func (h *canaryHost) follow(m *fleet.Member, log *slog.Logger) error {
	if err := h.src.Follow(m); err != nil {
		return err
	}
	f, err := traffic.Follow(m, traffic.FollowOptions{Splitter: h.sp, Target: canaryTarget, CacheFile: filepath.Join(h.dir, "canary.cache"), Logger: log})
	if err != nil {
		return err
	}
	p, err := traffic.Publish(m, traffic.PublishOptions{Metrics: h.sp.Metrics(), Interval: 500 * time.Millisecond, Logger: log})
	if err != nil {
		f.Close()
		return err
	}
	h.mu.Lock()
	h.f, h.p = f, p
	h.mu.Unlock()
	return nil
}

func (h *canaryHost) close() {
	h.mu.Lock()
	f, p := h.f, h.p
	h.mu.Unlock()
	if p != nil {
		p.Close()
	}
	if f != nil {
		f.Close()
	}
	h.src.Close()
	h.sp.Close()
	h.store.Close()
}

// canaryPlan is the fleet canary of the new checkout, 5% -> 25% -> 100%,
// each weight judged on the merged measurements of every host, then a
// ramp of the new-checkout flag to 10%, 50% and 100% of users.
func canaryPlan(l *fleet.Lead, rel release) (rollout.Plan, error) {
	an, err := traffic.NewAnalyzer(l.Member(), traffic.AnalyzerOptions{
		// A short example: a wide pass margin (10 points) so that a
		// healthy canary passes on a few seconds of traffic at 5%, and an
		// absolute limit to judge it alone at 100%. Latency is left out:
		// both variants run in one process, the error rate says enough.
		Analysis: canary.AnalysisOptions{SkipLatency: true, PassErrorMargin: 0.1, MaxErrorRate: 0.05},
		MaxAge:   2 * time.Second,
	})
	if err != nil {
		return rollout.Plan{}, err
	}
	steps, err := rollout.Canary(traffic.LeadWeights(l, traffic.WeightsOptions{Salt: canarySalt, Target: canaryTarget}), rollout.CanaryOptions{
		Weights:  []uint32{500, 2500, 10000},
		Analyzer: an,
		Analysis: rollout.AnalysisOptions{Count: 4, Interval: 1500 * time.Millisecond, MaxInconclusive: 3},
	})
	if err != nil {
		return rollout.Plan{}, err
	}
	steps = append(steps, rollout.RampFlag(fleetflags.Ramps{Writer: fleetflags.LeadWriter(l, "")}, flagKey,
		rollout.RampOptions{Percentages: []float64{10, 50, 100}, Interval: time.Second}).Named("ramp-"+flagKey))
	return rollout.Plan{ID: rel.ID, Steps: steps}, nil
}
