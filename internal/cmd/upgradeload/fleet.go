package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The multi-process modes: every client is a process of its own (this
// program re-executed with -client), speaking a protocol through its real
// library, while the server is upgraded by SIGHUP.

// fleetConfig is one run of a multi-process mode.
type fleetConfig struct {
	mode              string
	upgrades, clients int
	interval, warmup  time.Duration
	limit, bake, wait time.Duration
	race, crash       bool
}

// serverFor returns the example a mode upgrades and its -proto.
func serverFor(mode string) (pkg, proto string) {
	switch mode {
	case "grpc":
		return "github.com/batonhq/baton/examples/grpcserver", ""
	case "ws":
		return "github.com/batonhq/baton/examples/httpserver", "http1"
	case "h2-tls":
		return "github.com/batonhq/baton/examples/httpserver", "tls"
	case "h2c-upgrade", "h2c-xnet":
		return "github.com/batonhq/baton/examples/httpserver", "h2c-xnet"
	}
	return "github.com/batonhq/baton/examples/httpserver", "h2c"
}

func runFleet(c fleetConfig) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.limit)
	defer cancel()
	dir, err := os.MkdirTemp("", "upgradeload-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pkg, proto := serverFor(c.mode)
	good := filepath.Join(dir, "server.good")
	args := []string{"build", "-o", good}
	if c.race {
		args = append(args, "-race")
	}
	build := exec.CommandContext(ctx, "go", append(args, pkg)...)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building %s: %w", pkg, err)
	}
	bin := filepath.Join(dir, "server")
	if err := install(bin, good, ""); err != nil {
		return err
	}
	pidfile, addrFile := filepath.Join(dir, "pid"), filepath.Join(dir, "addr")
	srvArgs := []string{"-addr", "127.0.0.1:0", "-addrfile", addrFile, "-pidfile", pidfile, "-drain-timeout", "10s", "-bake", c.bake.String()}
	var caFile string
	if proto != "" {
		srvArgs = append(srvArgs, "-proto", proto)
	}
	if proto == "tls" {
		caFile = filepath.Join(dir, "cert.pem")
		keyFile := filepath.Join(dir, "key.pem")
		if err := writeCert(caFile, keyFile); err != nil {
			return err
		}
		srvArgs = append(srvArgs, "-cert", caFile, "-key", keyFile)
	}
	srv, err := startServer(bin, srvArgs)
	if err != nil {
		return err
	}
	defer srv.stop(pidfile)
	addr, err := waitAddr(ctx, addrFile)
	if err != nil {
		return err
	}
	first := readPID(pidfile)
	for first == 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond) // the PID file appears at Ready
		first = readPID(pidfile)
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	var clients []*clientProc
	defer func() {
		for _, p := range clients {
			p.kill()
		}
	}()
	for i := range c.clients {
		p, err := startClient(self, i, c.mode, addr, caFile)
		if err != nil {
			return err
		}
		clients = append(clients, p)
	}
	firstPID := "pid=" + strconv.Itoa(first)
	for _, p := range clients {
		if _, err := p.await(ctx, "unary", firstPID, time.Time{}, c.wait); err != nil {
			return err
		}
	}
	sleepCtx(ctx, c.warmup)

	r := &fleetResult{cfg: c, first: first}
	for i := 0; i < c.upgrades && ctx.Err() == nil; i++ {
		if err := r.upgrade(ctx, i, srv, clients, bin, good, pidfile); err != nil {
			return fmt.Errorf("upgrade %d: %w", i+1, err)
		}
		sleepCtx(ctx, c.interval)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("aborted after %s (-limit): %d of %d upgrades done", c.limit, len(r.ups), c.upgrades)
	}
	for _, p := range clients {
		p.stdin.Close()
	}
	for _, p := range clients {
		rep, err := p.wait(c.wait)
		if err != nil {
			return err
		}
		r.reports = append(r.reports, rep)
	}
	clients = nil
	srv.stop(pidfile)
	return r.report(srv.log)
}

// install puts the good binary at path, or with crash a wrapper that runs
// it and aborts it (SIGABRT, a Go crash with its goroutine dump) 200 ms
// after it wrote the PID file, that is after its Ready: inside its bake
// window.
func install(path, good string, crashPIDFile string) error {
	tmp := path + ".new"
	var data []byte
	var err error
	if crashPIDFile == "" {
		data, err = os.ReadFile(good)
		if err != nil {
			return err
		}
	} else {
		data = []byte(fmt.Sprintf("#!/bin/sh\n( while [ \"$(cat %s 2>/dev/null)\" != \"$$\" ]; do sleep 0.02; done; sleep 0.2; kill -ABRT $$ ) &\nexec %s \"$@\"\n", crashPIDFile, good))
	}
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// upgradeRecord is one upgrade as measured.
type upgradeRecord struct {
	old, child int
	handedOff  time.Time
	moves      []time.Duration // per client: handoff to its first answer from the new process
	streams    []time.Duration // gRPC: handoff to its stream's first message from the new process
	crashed    bool
}

type fleetResult struct {
	cfg     fleetConfig
	first   int
	ups     []upgradeRecord
	reports []clientReport
}

// upgrade runs upgrade i and waits until every client is answered by the
// process that now serves.
func (r *fleetResult) upgrade(ctx context.Context, i int, srv *server, clients []*clientProc, bin, good, pidfile string) error {
	crash := r.cfg.crash && i%2 == 1
	crashPID := ""
	if crash {
		crashPID = pidfile
	}
	if err := install(bin, good, crashPID); err != nil {
		return err
	}
	old := readPID(pidfile)
	from := srv.log.mark()
	trigger := time.Now()
	if err := signal(old, syscall.SIGHUP); err != nil {
		return fmt.Errorf("signalling %d: %w", old, err)
	}
	h, err := srv.log.await(ctx, from, fmt.Sprintf("process %d to hand off", old), r.cfg.wait, func(e srvEvent) bool {
		return e.Msg == "handed off" && e.PID == old
	})
	if err != nil {
		return err
	}
	rec := upgradeRecord{old: old, child: h.Child, handedOff: h.Time, crashed: crash}
	target, since := h.Child, trigger
	if crash {
		if _, err := srv.log.await(ctx, from, fmt.Sprintf("process %d to resume after %d crashed in its bake", old, h.Child), r.cfg.wait+r.cfg.bake, func(e srvEvent) bool {
			return e.Msg == "rolled back: serving again" && e.PID == old && e.Child == h.Child
		}); err != nil {
			return err
		}
		// Clients come back to the resumed process, whether or not
		// the crashed one answered them first.
		target, since = old, time.Time{}
	}
	pid := "pid=" + strconv.Itoa(target)
	for _, p := range clients {
		at, err := p.await(ctx, "unary", pid, since, r.cfg.wait)
		if err != nil {
			return err
		}
		rec.moves = append(rec.moves, max(at.Sub(h.Time), 0))
		if r.cfg.mode == "grpc" {
			at, err := p.await(ctx, "stream", pid, since, r.cfg.wait)
			if err != nil {
				return err
			}
			rec.streams = append(rec.streams, max(at.Sub(h.Time), 0))
		}
	}
	if r.cfg.bake > 0 && !crash {
		// The new process may upgrade once its predecessor stops baking.
		if _, err := srv.log.await(ctx, from, fmt.Sprintf("process %d's predecessor to stop baking", h.Child), r.cfg.wait+r.cfg.bake, func(e srvEvent) bool {
			return e.Msg == "previous process no longer a fallback" && e.PID == h.Child
		}); err != nil {
			return err
		}
	}
	r.ups = append(r.ups, rec)
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// report prints the run's figures and returns what missed a goal.
func (r *fleetResult) report(log *srvLog) error {
	c := r.cfg
	var total clientReport
	total.Fails, total.Examples, total.Last = map[string]int{}, map[string]string{}, map[string]int64{}
	for _, rep := range r.reports {
		total.OK += rep.OK
		total.Failed += rep.Failed
		total.Retried += rep.Retried
		total.Dials += rep.Dials
		total.DialFailed += rep.DialFailed
		total.Resent += rep.Resent
		total.Lost += rep.Lost
		total.Sent += rep.Sent
		total.StreamsOpen += rep.StreamsOpen
		total.StreamsFailed += rep.StreamsFailed
		for k, v := range rep.Fails {
			total.Fails[k] += v
		}
		for k, v := range rep.Examples {
			total.Examples[k] = v
		}
		for pid, at := range rep.Last {
			total.Last[pid] = max(total.Last[pid], at)
		}
	}
	crashes := 0
	var moves, streams []time.Duration
	for _, u := range r.ups {
		if u.crashed {
			crashes++
			continue
		}
		moves = append(moves, u.moves...)
		streams = append(streams, u.streams...)
	}
	fmt.Printf("upgradeload -mode %s: %d upgrades (%d with a crash inside the bake), %d client processes, bake window %s\n",
		c.mode, len(r.ups), crashes, c.clients, c.bake)
	fmt.Printf("requests:    %d answered, %d failed %v, %d resent by the client library (not failures)\n", total.OK, total.Failed, total.Fails, total.Retried)
	for k, e := range total.Examples {
		fmt.Printf("  e.g. %s: %s\n", k, e)
	}
	pm := pct(moves)
	fmt.Printf("move:        every client answered by the new process after every upgrade; handoff to a client's first answer from it p50=%s p99=%s max=%s\n", pm[0], pm[1], pm[2])
	if c.mode == "grpc" {
		ps := pct(streams)
		fmt.Printf("streams:     %d opened (%.2f per client per upgrade), %d failed; handoff to a reopened stream's first message from the new process p50=%s p99=%s max=%s\n",
			total.StreamsOpen, float64(total.StreamsOpen-c.clients)/float64(max(c.clients*len(r.ups), 1)), total.StreamsFailed, ps[0], ps[1], ps[2])
	}
	if c.mode == "ws" {
		fmt.Printf("websockets:  %d dials, %d failed; %d messages sent, %d in flight at a close and sent again, %d lost\n", total.Dials, total.DialFailed, total.Sent, total.Resent, total.Lost)
	}
	// Linger: from an old process's last answer (to any client) to the
	// end of its drain.
	var lingers, tooks []time.Duration
	drained := map[int]srvEvent{}
	for _, e := range log.all() {
		if e.Msg == "drained" {
			drained[e.PID] = e
		}
	}
	forced := 0
	for _, u := range r.ups {
		if u.crashed {
			continue
		}
		e, ok := drained[u.old]
		if !ok {
			continue
		}
		forced += e.Forced
		tooks = append(tooks, e.Took)
		if last := total.Last["pid="+strconv.Itoa(u.old)]; last > 0 {
			lingers = append(lingers, max(e.Time.Sub(time.Unix(0, last)), 0))
		}
	}
	pl, pt := pct(lingers), pct(tooks)
	fmt.Printf("old process: last answer to end of drain p50=%s p99=%s max=%s; drain took p50=%s max=%s; %d connections forced\n", pl[0], pl[1], pl[2], pt[0], pt[2], forced)
	if c.race {
		fmt.Printf("race:        servers built with -race; %d race reports\n", log.races)
	}

	var errs []string
	if log.races > 0 {
		errs = append(errs, fmt.Sprintf("the servers reported %d data races", log.races))
	}
	if total.Failed > 0 && crashes == 0 {
		errs = append(errs, fmt.Sprintf("%d requests failed", total.Failed))
	}
	if forced > 0 {
		errs = append(errs, fmt.Sprintf("%d connections were forced at a drain deadline", forced))
	}
	if len(drained) < len(r.ups)-crashes {
		errs = append(errs, fmt.Sprintf("%d of %d old processes logged the end of their drain", len(drained), len(r.ups)-crashes))
	}
	switch c.mode {
	case "ws":
		if total.DialFailed > 0 || total.Lost > 0 {
			errs = append(errs, fmt.Sprintf("%d failed dials, %d lost messages", total.DialFailed, total.Lost))
		}
		if pt[2] > time.Second {
			errs = append(errs, fmt.Sprintf("a drain took %s (goal: within 1s)", pt[2]))
		}
	case "grpc":
		// A storm reopens a stream many times per upgrade; a drain that
		// sends GOAWAY first needs one, sometimes two.
		if per := float64(total.StreamsOpen-c.clients) / float64(max(c.clients*len(r.ups), 1)); per > 2 {
			errs = append(errs, fmt.Sprintf("reconnect storm: %.2f stream opens per client per upgrade", per))
		}
	default:
		// With a bake window an old process stays, by design, until
		// the window ends.
		if c.bake == 0 && pl[2] > time.Second {
			errs = append(errs, fmt.Sprintf("an old process lingered %s after its last answer (goal: within 1s)", pl[2]))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}
