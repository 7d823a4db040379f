// Command lbswitch measures blue-green switches through a real HAProxy: it
// starts HAProxy (haproxy.Find: $BATON_HAPROXY, PATH, /usr/sbin/haproxy)
// in front of -servers blue (v1) and -servers green (v2) HTTP backends in
// this process, with HTTP health checks, sends POSTs from -clients
// keep-alive clients through it, and switches -switches times, alternately
// to green and back to blue, with rollout/fleet/haproxy's Switch. For each
// switch it reports the switch time (from the command to the last new
// request the old side answered: after it every new request reaches the
// new side) and the time the Switch call took (its drain included). It
// exits non-zero if a request failed or a request started after a switch
// returned reached the old side.
//
//	go run ./internal/cmd/lbswitch -switches 20 -clients 8
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/batonhq/baton/rollout/fleet/haproxy"
	"github.com/batonhq/baton/rollout/fleet/haproxy/haproxytest"
)

func main() {
	switches := flag.Int("switches", 20, "switches (alternately to green and back to blue)")
	clients := flag.Int("clients", 8, "concurrent keep-alive clients")
	servers := flag.Int("servers", 2, "servers per colour")
	work := flag.Duration("work", 2*time.Millisecond, "time each request takes in the backend")
	poll := flag.Duration("poll", haproxy.DefaultPollInterval, "Switch's poll interval while it waits for the drain")
	settle := flag.Int("settle", 100, "requests answered by the new side before the next switch")
	flag.Parse()
	if *switches < 1 || *clients < 1 || *servers < 1 {
		fmt.Fprintln(os.Stderr, "lbswitch: -switches, -clients and -servers must be at least 1")
		os.Exit(2)
	}
	if err := run(*switches, *clients, *servers, *work, *poll, *settle); err != nil {
		fmt.Fprintln(os.Stderr, "lbswitch:", err)
		os.Exit(1)
	}
}

type result struct{ switchTime, callTime time.Duration }

func run(switches, clients, servers int, work, poll time.Duration, settle int) error {
	dir, err := os.MkdirTemp("", "lbswitch")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var cfgServers []haproxy.Server
	var blue, green haproxy.Group
	for i := range servers {
		for _, v := range []string{"v1", "v2"} {
			b, err := haproxytest.NewBackend(v, work)
			if err != nil {
				return err
			}
			defer b.Kill()
			name := fmt.Sprintf("%s%d", map[string]string{"v1": "blue", "v2": "green"}[v], i+1)
			cfgServers = append(cfgServers, haproxy.Server{Name: name, Address: b.Addr(), Disabled: v == "v2"})
			if v == "v1" {
				blue.Servers = append(blue.Servers, name)
			} else {
				green.Servers = append(green.Servers, name)
			}
		}
	}
	ctx := context.Background()
	p, err := haproxy.Start(ctx, haproxy.Config{Dir: dir, Backends: []haproxy.Backend{{
		Name: "app", Servers: cfgServers, HealthPath: "/healthz", CheckInterval: 200 * time.Millisecond,
	}}})
	if err != nil {
		return err
	}
	defer p.Close()
	quiet := slog.New(slog.DiscardHandler)
	sw, err := haproxy.NewSwitch(haproxy.SwitchOptions{Client: p.Client(), Backend: "app", Blue: blue, Green: green, PollInterval: poll, Logger: quiet})
	if err != nil {
		return err
	}
	load := haproxytest.StartLoad("http://"+p.Addr("app")+"/", clients)
	stopped := false
	defer func() {
		if !stopped {
			load.Stop()
		}
	}()
	// Warm-up: green's first switch waits for its first health check
	// (it starts in maintenance); it is not measured.
	if err := sw.ToGreen(ctx); err != nil {
		return err
	}
	if err := sw.ToBlue(ctx); err != nil {
		return err
	}

	type mark struct {
		start, end time.Time
		from, to   string
	}
	var marks []mark
	for i := range switches {
		m := mark{from: "v1", to: "v2"}
		do := sw.ToGreen
		if i%2 == 1 {
			m.from, m.to, do = "v2", "v1", sw.ToBlue
		}
		m.start = time.Now()
		if err := do(ctx); err != nil {
			return fmt.Errorf("switch %d: %w", i+1, err)
		}
		m.end = time.Now()
		marks = append(marks, m)
		if err := awaitAnswers(load, m.end, m.to, settle); err != nil {
			return fmt.Errorf("switch %d: %w", i+1, err)
		}
	}
	reqs := load.Stop()
	stopped = true

	var res []result
	late := 0
	for i, m := range marks {
		until := time.Now()
		if i+1 < len(marks) {
			until = marks[i+1].start
		}
		// A request that ended after the next switch began may have
		// reached HAProxy after it: it is not this switch's.
		last := m.start
		for _, r := range reqs {
			if r.Err != nil || !r.Start.After(m.start) || !r.End.Before(until) || r.Version != m.from {
				continue
			}
			if r.Start.After(last) {
				last = r.Start
			}
			if r.Start.After(m.end) {
				late++
			}
		}
		res = append(res, result{switchTime: last.Sub(m.start), callTime: m.end.Sub(m.start)})
	}
	failed := haproxytest.Failed(reqs)
	fmt.Printf("HAProxy blue-green: %d switches, %d servers per colour, %d clients, %s per request, poll %s\n", switches, servers, clients, work, poll)
	fmt.Printf("requests: %d\n", len(reqs))
	fmt.Printf("switch time (command to the last new request on the old side): %s\n", summary(res, func(r result) time.Duration { return r.switchTime }))
	fmt.Printf("Switch call (drain included): %s\n", summary(res, func(r result) time.Duration { return r.callTime }))
	fmt.Printf("requests started after a switch returned that reached the old side: %d\n", late)
	fmt.Printf("failed requests: %d\n", len(failed))
	switch {
	case len(failed) > 0:
		return fmt.Errorf("%d requests failed; first: %v", len(failed), failed[0].Err)
	case late > 0:
		return errors.New("requests reached the old side after a switch returned")
	}
	return nil
}

// awaitAnswers waits until n requests started after t were answered by
// version v.
func awaitAnswers(load *haproxytest.Load, t time.Time, v string, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := 0
		for _, r := range haproxytest.StartedAfter(load.Requests(), t) {
			if r.Version == v {
				got++
			}
		}
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d requests answered by %s in 30 s", got, v)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func summary(res []result, f func(result) time.Duration) string {
	ds := make([]time.Duration, len(res))
	for i, r := range res {
		ds[i] = f(r)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	return fmt.Sprintf("p50 %s, p99 %s, max %s", q(0.5).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), ds[len(ds)-1].Round(10*time.Microsecond))
}
