//go:build unix

// Command fleet is one rollout across three hosts with no control plane,
// on one machine with nothing to install: go run ./examples/fleet.
//
// It starts an embedded etcd server (or, with -engine postgres -db URL,
// uses that PostgreSQL) and three hosts: this same binary in host mode,
// each on its own loopback address (127.0.0.2, .3, .4) and working
// directory with its own releases/<version>/svc binaries, as if on three
// machines. Every host joins the fleet (rollout/fleet), runs an Agent that
// applies its desired state by socket handoff (graceful through
// rollout/bind) and reports what it runs, and a Driver that campaigns to
// drive rollouts. Client load from this process goes to the hosts the
// membership lists as serving (a load balancer's server list), with the
// connection-failure retries of a load balancer.
//
// The operator (this process) then asks for four releases by writing a
// release document; whichever host leads drives it:
//
//   - release-v2: a rolling update host by host, each host's new process
//     baking with the old one warm before it reports ready, an analysis
//     after each host, and a latency analysis at the end. In the middle,
//     the leading host is killed with SIGKILL; another host takes over
//     within the lease TTL and finishes the rollout from its stored state,
//     and the killed host is restarted as its supervisor would. The third
//     host's console (every host serves the fleet's, Member.Console, on
//     admin.sock in its directory: `rolloutctl -socket DIR/host3/admin.sock
//     console`) shows the rollout running on.
//   - release-v3: answers correctly but 40 ms late. It reaches every host,
//     the latency analysis fails, and the rollout rolls every host back to
//     v2, in reverse order.
//   - release-v4: its own health check fails while it bakes on the first
//     host, which gives serving back: the v2 process there, kept warm,
//     resumes (same PID), and the rollout is rolled back.
//   - release-checkout: a fleet canary of the new checkout code
//     (canary.go), 5% -> 25% -> 100% of the users of every host, with one
//     weight, salt and target for the fleet (rollout/fleet/traffic), each
//     weight judged on the merged measurements of all hosts, then a ramp
//     of the new-checkout flag in the fleet's flag document
//     (rollout/fleet/fleetflags). The same keys are sent to every host
//     throughout (canaryrun.go), and afterwards 60 changes of the weight
//     and the flag document are timed from the write to every host
//     serving them.
//
// The report lists the steps and decisions of the rollouts, a line
// "fleet analysis: <verdict> (<hosts> hosts, <requests> requests) ..." per
// fleet analysis, "sticky across hosts: <n> of <m> keys changed variant"
// (n must be 0) and "propagation p99: <duration>", and ends with
// "leader takeover: <duration>" and "failed requests: <n>" (every request
// that got no 200 after the balancer's retries; it must be 0). The exit
// status is non-zero if a request failed, v2 did not succeed, v3 or v4
// was not rolled back, the canary did not succeed or a key changed
// variant. With -lb haproxy the load goes through HAProxy (found on PATH)
// in front of the hosts instead, with health checks and the retries of a
// load balancer that loses a server.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/etcd/etcdtest"
)

var hostIDs = []string{"host1", "host2", "host3"}

type options struct {
	engine, db, schema, lb string
	bake                   time.Duration
	clients, rate          int
	keep                   bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "host" {
		os.Exit(hostMain(os.Args[2:]))
	}
	var o options
	flag.StringVar(&o.engine, "engine", "etcd", "etcd (embedded) or postgres (with -db)")
	flag.StringVar(&o.db, "db", "", "PostgreSQL URL for -engine postgres")
	flag.StringVar(&o.schema, "schema", "baton_fleet_example", "PostgreSQL schema of the engine's tables")
	flag.StringVar(&o.lb, "lb", "client", "load balancer: client (in this process) or haproxy")
	flag.DurationVar(&o.bake, "bake", 2*time.Second, "bake on each host")
	flag.IntVar(&o.clients, "clients", 8, "concurrent clients")
	flag.IntVar(&o.rate, "rate", 200, "requests per second in all")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (hosts' logs)")
	flag.Parse()
	os.Exit(run(o))
}

type example struct {
	o       options
	dir     string
	start   time.Time
	e       fleet.Engine
	keys    fleet.Layout
	args    []string // engine arguments of a host
	pgroups []int
	addrs   map[string]string // each host's service address

	killRetries func() int64
}

func (x *example) logf(format string, args ...any) {
	fmt.Printf("%6.1fs  %s\n", time.Since(x.start).Seconds(), fmt.Sprintf(format, args...))
}

func run(o options) int {
	x := &example{o: o, start: time.Now(), addrs: map[string]string{}}
	dir, err := os.MkdirTemp("", "baton-fleet-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		return 2
	}
	x.dir = dir
	if o.keep {
		fmt.Printf("directory: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	code, err := x.run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		x.dumpLogs()
		if code == 0 {
			code = 2
		}
	}
	return code
}

func (x *example) run() (int, error) {
	ctx := context.Background()
	ns := fmt.Sprintf("ex%d", time.Now().UnixNano())
	x.keys = fleet.NewLayout(ns)
	switch x.o.engine {
	case "etcd":
		srv, err := etcdtest.Start(etcdtest.Options{Dir: filepath.Join(x.dir, "etcd")})
		if err != nil {
			return 2, err
		}
		defer srv.Close()
		x.args = []string{"-engine", "etcd", "-endpoint", srv.Endpoint()}
		x.logf("embedded etcd at %s", srv.Endpoint())
	case "postgres":
		if x.o.db == "" {
			return 2, errors.New("-engine postgres needs -db URL")
		}
		x.args = []string{"-engine", "postgres", "-endpoint", x.o.db, "-schema", x.o.schema}
		x.logf("PostgreSQL, schema %s", x.o.schema)
	default:
		return 2, fmt.Errorf("-engine %q: want etcd or postgres", x.o.engine)
	}
	x.args = append(x.args, "-ns", ns)
	e, closeEngine, err := openEngine(ctx, x.o.engine, x.args[3], x.o.schema)
	if err != nil {
		return 2, err
	}
	defer closeEngine()
	x.e = e
	if err := x.install(); err != nil {
		return 2, err
	}
	defer x.stopAll()
	// The last host starts first and leads: the rollout replaces the
	// other hosts while it drives, and it is killed in the middle.
	if err := x.startHost(hostIDs[2], 2, "v1"); err != nil {
		return 2, err
	}
	if err := x.await(hostIDs[2]+" to lead", 30*time.Second, func() error {
		v, _, err := e.Leader(ctx, x.keys.Election(fleet.DefaultElection))
		if err == nil && !strings.Contains(string(v), `"`+hostIDs[2]+`"`) {
			err = fmt.Errorf("%s leads", v)
		}
		return err
	}); err != nil {
		return 2, err
	}
	for i, id := range hostIDs[:2] {
		if err := x.startHost(id, i, "v1"); err != nil {
			return 2, err
		}
	}
	if err := x.await("every host serving v1", 30*time.Second, x.hostsOn("v1")); err != nil {
		return 2, err
	}
	x.logf("three hosts serve v1: %s", x.describeHosts())
	var lb *balancer
	switch x.o.lb {
	case "client":
		lb = &balancer{e: e, keys: x.keys}
	case "haproxy":
		front, stop, err := x.startHAProxy(ctx)
		if err != nil {
			return 2, fmt.Errorf("-lb haproxy: %w", err)
		}
		defer stop()
		x.logf("HAProxy in front of the hosts at %s", front)
		lb = &balancer{fixed: []string{front}}
	default:
		return 2, fmt.Errorf("-lb %q: want client or haproxy", x.o.lb)
	}
	ld := startLoad(lb, x.o.clients, x.o.rate)
	defer ld.halt()

	v2 := release{ID: "release-v2", Version: "v2", Previous: "v1", Bake: x.o.bake, Latency: 25 * time.Millisecond}
	if err := x.put(v2); err != nil {
		return 2, err
	}
	x.logf("release-v2 asked for: a rolling update host by host, a %s bake on each", x.o.bake)
	before := ld.retried.Load()
	takeover, err := x.killLeaderMidRollout(v2)
	if err != nil {
		return 2, err
	}
	x.killRetries = func() int64 { return ld.retried.Load() - before }
	st2, err := x.awaitPhase(v2.ID, 120*time.Second, rollout.PhaseSucceeded)
	if err != nil {
		return 2, err
	}
	if err := x.await("every host serving v2", 20*time.Second, x.hostsOn("v2")); err != nil {
		return 2, err
	}
	x.logf("release-v2 succeeded: %s; %d requests retried on another host since the kill", x.describeHosts(), x.killRetries())

	v3 := release{ID: "release-v3", Version: "v3", Previous: "v2", Bake: x.o.bake, Latency: 25 * time.Millisecond}
	if err := x.put(v3); err != nil {
		return 2, err
	}
	x.logf("release-v3 asked for (a slow release)")
	st3, err := x.awaitPhase(v3.ID, 120*time.Second, rollout.PhaseRolledBack)
	if err != nil {
		return 2, err
	}
	if err := x.await("every host back on v2", 20*time.Second, x.hostsOn("v2")); err != nil {
		return 2, err
	}
	x.logf("release-v3 rolled back: %s; %d requests retried since the kill", x.describeHosts(), x.killRetries())

	first, err := x.pidOf(hostIDs[0])
	if err != nil {
		return 2, err
	}
	v4 := release{ID: "release-v4", Version: "v4", Previous: "v2", Bake: x.o.bake, Latency: 25 * time.Millisecond}
	if err := x.put(v4); err != nil {
		return 2, err
	}
	x.logf("release-v4 asked for (its own health check fails while it bakes)")
	st4, err := x.awaitPhase(v4.ID, 60*time.Second, rollout.PhaseRolledBack)
	if err != nil {
		return 2, err
	}
	if err := x.await("every host back on v2", 20*time.Second, x.hostsOn("v2")); err != nil {
		return 2, err
	}
	after, err := x.pidOf(hostIDs[0])
	if err != nil {
		return 2, err
	}
	if after != first {
		return 1, fmt.Errorf("%s's v2 process was %d before release-v4 and is %d after: serving was not given back to it", hostIDs[0], first, after)
	}
	x.logf("release-v4 rolled back: %s gave serving back in its bake, its v2 process resumed (same pid %d)", hostIDs[0], after)
	cr, err := x.canaryPhase()
	if err != nil {
		return 2, err
	}
	ld.halt()

	fmt.Println()
	printStatus(st2)
	printStatus(st3)
	printStatus(st4)
	printStatus(cr.status)
	for _, l := range cr.lines {
		fmt.Println(l)
	}
	fmt.Printf("checkout requests: %d answered, %d failed\n", cr.ok, cr.failed)
	if x.o.lb == "haproxy" {
		fmt.Printf("requests: %d answered through HAProxy (by version: %s); HAProxy sent a request whose server died to another (retries 3, redispatch)\n", ld.ok.Load(), ld.byVersion())
	} else {
		fmt.Printf("requests: %d answered (by version: %s), %d retried on another host after a connection failure\n",
			ld.ok.Load(), ld.byVersion(), ld.retried.Load())
	}
	for _, f := range ld.failures {
		fmt.Printf("  failure: %s\n", f)
	}
	fmt.Printf("wall time: %s\n", time.Since(x.start).Round(100*time.Millisecond))
	fmt.Printf("leader takeover: %s\n", takeover.Round(time.Millisecond))
	fmt.Printf("failed requests: %d\n", ld.failed.Load()+cr.failed)
	if ld.failed.Load()+cr.failed != 0 || cr.changed != 0 {
		return 1, nil
	}
	return 0, nil
}

// install lays out each host's releases: one directory per version, the
// same binary in each (this one, hard-linked), its version given by the
// directory's name.
func (x *example) install() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	store := filepath.Join(x.dir, "svc")
	if err := copyFile(self, store); err != nil {
		return err
	}
	for _, id := range hostIDs {
		for _, v := range []string{"v1", "v2", "v3", "v4"} {
			d := filepath.Join(x.dir, id, "releases", v)
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			if err := os.Link(store, filepath.Join(d, "svc")); err != nil {
				if err := copyFile(store, filepath.Join(d, "svc")); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// startHost starts host id from its release of version, in a process
// group of its own (its later generations, started by handoffs, join it).
func (x *example) startHost(id string, i int, version string) error {
	hdir := filepath.Join(x.dir, id)
	logf, err := os.OpenFile(filepath.Join(hdir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	addr := x.addrs[id]
	if addr == "" {
		// A port of its own, kept across restarts, as a machine's
		// service port is (a load balancer's server list names it).
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", 2+i))
		if err != nil {
			return err
		}
		addr = ln.Addr().String()
		ln.Close()
		x.addrs[id] = addr
	}
	cmd := exec.Command(filepath.Join(hdir, "releases", version, "svc"), append([]string{"host", "-id", id, "-addr", addr}, x.args...)...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = hdir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", id, err)
	}
	x.pgroups = append(x.pgroups, cmd.Process.Pid)
	go cmd.Wait() // reaps the first generation; later ones are reparented
	return nil
}

// stopAll stops every host's processes: SIGTERM (they leave the fleet and
// drain), then SIGKILL for what is left.
func (x *example) stopAll() {
	for _, g := range x.pgroups {
		_ = syscall.Kill(-g, syscall.SIGTERM)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, g := range x.pgroups {
		for syscall.Kill(-g, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		_ = syscall.Kill(-g, syscall.SIGKILL)
	}
}

// killLeaderMidRollout waits until the rollout bakes a host other than the
// leader's, kills the leader with SIGKILL, measures how long until another
// host leads, and restarts the killed host as a supervisor would.
func (x *example) killLeaderMidRollout(rel release) (time.Duration, error) {
	ctx := context.Background()
	election := x.keys.Election(fleet.DefaultElection)
	var victim fleet.MemberInfo
	var term int64
	err := x.await("a host baking while another leads", 60*time.Second, func() error {
		v, t, err := x.e.Leader(ctx, election)
		if err != nil {
			return err
		}
		var li fleet.LeaderInfo
		if err := json.Unmarshal(v, &li); err != nil {
			return err
		}
		ms, err := liveMembers(ctx, x.e, x.keys)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.ID == li.Member {
				victim, term = m, t
			}
		}
		for _, m := range ms {
			if m.ID != li.Member && m.State == fleet.StateBaking && victim.ID == li.Member && victim.State == fleet.StateReady {
				return nil
			}
		}
		return errors.New("not yet")
	})
	if err != nil {
		return 0, err
	}
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("killing the leader %s (pid %d): %w", victim.ID, victim.PID, err)
	}
	killed := time.Now()
	x.logf("SIGKILL to the leader, %s (pid %d, term %d), while another host bakes %s", victim.ID, victim.PID, term, rel.Version)
	var next fleet.LeaderInfo
	err = x.await("another host to lead", 30*time.Second, func() error {
		v, t, err := x.e.Leader(ctx, election)
		if err != nil || t <= term {
			return fmt.Errorf("term %d: %v", t, err)
		}
		next.Term = t
		return json.Unmarshal(v, &next)
	})
	if err != nil {
		return 0, err
	}
	took := time.Since(killed)
	x.logf("%s leads at term %d, %s after the kill; it resumes the rollout from its stored state", next.Member, next.Term, took.Round(time.Millisecond))
	for syscall.Kill(victim.PID, 0) == nil && time.Since(killed) < 10*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	if err := x.startHost(victim.ID, slices.Index(hostIDs, victim.ID), victim.Version); err != nil {
		return 0, err
	}
	x.logf("%s restarted on %s, as its supervisor would", victim.ID, victim.Version)
	for _, id := range hostIDs {
		if id == victim.ID || id == next.Member {
			continue
		}
		v, err := x.console(id, rel.ID)
		if err != nil {
			return 0, err
		}
		step := "none"
		if v.Current >= 0 && v.Current < len(v.Steps) {
			step = fmt.Sprintf("%s %s", v.Steps[v.Current].Name, v.Steps[v.Current].Status)
		}
		x.logf("console on %s (neither driver): rollout %s %s, step %s", id, v.ID, v.Phase, step)
	}
	return took, nil
}

// console reads a host's console (the fleet's rollout, served by every
// host on its admin socket) until it shows rollout id driven again.
func (x *example) console(host, id string) (rollout.StatusView, error) {
	sock := filepath.Join(x.dir, host, "admin.sock")
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	defer c.CloseIdleConnections()
	var v rollout.StatusView
	err := x.await("the console of "+host, 20*time.Second, func() error {
		resp, err := c.Get("http://localhost/api/status")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v); err != nil {
			return err
		}
		if v.ID != id || v.Phase != rollout.PhaseRunning {
			return fmt.Errorf("rollout %s %s", v.ID, v.Phase)
		}
		return nil
	})
	return v, err
}

func (x *example) put(rel release) error {
	b, _ := json.Marshal(rel)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := x.e.Commit(ctx, fleet.Txn{Ops: []fleet.Op{{Key: x.keys.Shared("release"), Value: b, Prev: fleet.Any}}})
	return err
}

// await polls cond until it returns nil or d has passed.
func (x *example) await(what string, d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil || errors.Is(err, errStop) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %s: %w", d, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hostsOn is true when every host reports version ready, as the answer to
// its current desired state.
func (x *example) hostsOn(version string) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, id := range hostIDs {
			o, err := fleet.ReadObserved(ctx, x.e, x.keys, id)
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			if o.Version != version || o.State != fleet.StateReady || o.Error != "" {
				return fmt.Errorf("%s runs %s, %s %s", id, o.Version, o.State, o.Error)
			}
		}
		return nil
	}
}

// pidOf returns the PID of the process that reports for host id.
func (x *example) pidOf(id string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	o, err := fleet.ReadObserved(ctx, x.e, x.keys, id)
	return o.PID, err
}

func (x *example) describeHosts() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ms, _ := liveMembers(ctx, x.e, x.keys)
	var parts []string
	for _, m := range ms {
		parts = append(parts, fmt.Sprintf("%s %s (pid %d, %s)", m.ID, m.Version, m.PID, m.Address))
	}
	return strings.Join(parts, ", ")
}

func (x *example) awaitPhase(id string, d time.Duration, want rollout.Phase) (rollout.Status, error) {
	var st rollout.Status
	err := x.await(fmt.Sprintf("%s to be %s", id, want), d, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		if st, err = fleet.ReadStatus(ctx, x.e, x.keys, id); err != nil {
			return err
		}
		if st.Phase.Done() && st.Phase != want {
			return fmt.Errorf("%w: %s ended %s: %s", errStop, id, st.Phase, st.Reason)
		}
		if st.Phase != want {
			return fmt.Errorf("phase %q", st.Phase)
		}
		return nil
	})
	return st, err
}

var errStop = errors.New("the rollout ended otherwise")

func liveMembers(ctx context.Context, e fleet.Engine, keys fleet.Layout) ([]fleet.MemberInfo, error) {
	docs, _, err := e.List(ctx, keys.Members())
	if err != nil {
		return nil, err
	}
	var out []fleet.MemberInfo
	for _, d := range docs {
		var m fleet.MemberInfo
		if json.Unmarshal(d.Value, &m) == nil {
			out = append(out, m)
		}
	}
	return out, nil
}

func printStatus(st rollout.Status) {
	fmt.Printf("rollout %s: %s\n", st.ID, st.Phase)
	for _, s := range st.Steps {
		fmt.Printf("  %-24s %-12s %7s\n", s.Name, s.Status, s.Duration(st.FinishedAt).Round(10*time.Millisecond))
		for _, d := range s.Decisions {
			fmt.Printf("      %s\n", d.Reason)
		}
		if s.Error != "" {
			fmt.Printf("      failed: %s\n", s.Error)
		}
	}
}

func (x *example) dumpLogs() {
	for _, id := range hostIDs {
		b, err := os.ReadFile(filepath.Join(x.dir, id, "log"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		fmt.Fprintf(os.Stderr, "--- last lines of %s's log\n", id)
		for _, l := range lines[max(0, len(lines)-15):] {
			fmt.Fprintln(os.Stderr, l)
		}
	}
}
