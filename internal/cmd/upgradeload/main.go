// Command upgradeload proves and measures zero-downtime upgrades: it builds
// examples/httpserver into a temporary directory, runs it, drives -upgrades
// SIGHUP upgrades while -clients concurrent clients send requests (with or
// without keep-alive), and reports requests, failures by class, requests
// Go's transport silently resent (a reused keep-alive connection closed
// before the answer), latency near upgrades against steady state, and
// handoff time. It exits non-zero if any request failed or clients did not
// move to the new processes; with -check also if p99 near upgrades exceeds
// 1.5x steady state or the handoff p50 reaches 20 ms (off by default: the
// figures follow the machine's load).
//
//	go run ./internal/cmd/upgradeload -upgrades 50 -clients 16 -keepalive=false
//
// -plain runs the same load against tableflip's documented pattern instead,
// as the baseline. -race builds the server with the race detector and
// fails if any process reports a race on its standard error.
//
// -mode runs other protocols, each client a process of its own speaking
// through a real library (-clients processes, -upgrades SIGHUP upgrades,
// -bake the server's bake window):
//
//	h2c          examples/httpserver -proto h2c (net/http's unencrypted
//	             HTTP/2), clients on net/http with prior knowledge
//	h2c-xnet     -proto h2c-xnet (x/net's h2c), clients on x/net's
//	             http2.Transport with prior knowledge
//	h2c-upgrade  -proto h2c-xnet, clients starting each connection with
//	             the HTTP/1.1 Upgrade to h2c (internal/h2raw)
//	h2-tls       -proto tls, clients on net/http over TLS (h2)
//	ws           examples/httpserver's /ws, clients on coder/websocket
//	grpc         examples/grpcserver, grpc-go clients calling Who and
//	             keeping a Ticks stream open; -crash makes every second
//	             new process crash inside its bake window
//
// They fail the run if a request failed (outside -crash), a client was not
// answered by the new process after an upgrade (by the resumed one after a
// crash), a drain forced a connection, an old process outlived its last
// answer by more than 1 s (HTTP modes), a WebSocket dial failed or a message
// was lost or a drain took over 1 s (ws), or streams reopened more than
// twice per upgrade (grpc: a reconnect storm).
//
//	go run ./internal/cmd/upgradeload -mode grpc -upgrades 20 -clients 8 -bake 2s
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type sample struct {
	start time.Time
	took  time.Duration
}

type stats struct {
	mu      sync.Mutex
	samples []sample
	fails   map[string]int
	example map[string]string
	pids    map[string]int
	// retried counts requests Go's transport sent twice: it resends an
	// idempotent request by itself when a reused keep-alive connection
	// is closed before any answer, so the caller never sees an error.
	retried int
}

func main() {
	upgrades := flag.Int("upgrades", 50, "number of upgrades")
	clients := flag.Int("clients", 16, "concurrent clients")
	keepAlive := flag.Bool("keepalive", true, "reuse connections")
	interval := flag.Duration("interval", 300*time.Millisecond, "pause between one handoff and the next trigger")
	near := flag.Duration("near", 100*time.Millisecond, "requests started this long after a trigger count as near the upgrade")
	warmup := flag.Duration("warmup", 2*time.Second, "steady-state load before the first upgrade")
	delay := flag.Duration("delay", 0, "server-side time per request (httpserver -delay)")
	limit := flag.Duration("limit", 100*time.Second, "abort (and fail) after this long")
	plain := flag.Bool("plain", false, "baseline: run tableflip's documented pattern (graceful/internal/tfserver) instead of examples/httpserver")
	race := flag.Bool("race", false, "build the server with the race detector and fail on any race it reports")
	check := flag.Bool("check", false, "also fail if a latency goal is missed: p99 near upgrades above 1.5x steady state, or handoff p50 of 20 ms or more")
	mode := flag.String("mode", "http1", "protocol: http1 (clients in this process), or h2c, h2c-xnet, h2c-upgrade, h2-tls, ws, grpc (client processes)")
	bake := flag.Duration("bake", 0, "the server's bake window (multi-process modes)")
	crash := flag.Bool("crash", false, "grpc: every second new process crashes inside its bake window (needs -bake)")
	wait := flag.Duration("wait", 10*time.Second, "multi-process modes: bound on each wait for a handoff, a move, a client")
	client := flag.String("client", "", "run as a client process of this mode (used by the multi-process modes)")
	addr := flag.String("addr", "", "with -client: the server's address")
	ca := flag.String("ca", "", "with -client: the TLS root certificate file")
	flag.Parse()
	if *client != "" {
		if err := runClient(*client, *addr, *ca); err != nil {
			fmt.Fprintln(os.Stderr, "upgradeload client:", err)
			os.Exit(1)
		}
		return
	}
	if *mode != "http1" {
		if *crash && *bake <= 0 {
			fmt.Fprintln(os.Stderr, "upgradeload: -crash needs a bake window (-bake)")
			os.Exit(2)
		}
		err := runFleet(fleetConfig{mode: *mode, upgrades: *upgrades, clients: *clients, interval: *interval, warmup: *warmup,
			limit: *limit, bake: *bake, wait: *wait, race: *race, crash: *crash})
		if err != nil {
			fmt.Fprintln(os.Stderr, "upgradeload:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*upgrades, *clients, *keepAlive, *interval, *near, *warmup, *delay, *limit, *plain, *race, *check); err != nil {
		fmt.Fprintln(os.Stderr, "upgradeload:", err)
		os.Exit(1)
	}
}

func run(upgrades, clients int, keepAlive bool, interval, near, warmup, delay, limit time.Duration, plain, race, check bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	dir, err := os.MkdirTemp("", "upgradeload-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "httpserver")
	pkg := "github.com/batonhq/baton/examples/httpserver"
	if plain {
		pkg = "github.com/batonhq/baton/graceful/internal/tfserver"
	}
	buildArgs := []string{"build", "-o", bin}
	if race {
		buildArgs = append(buildArgs, "-race")
	}
	build := exec.CommandContext(ctx, "go", append(buildArgs, pkg)...)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building %s: %w", pkg, err)
	}
	pidfile := filepath.Join(dir, "pid")
	// The server binds a port the kernel picks and reports it: a port
	// probed free here could be taken by another process before the
	// server binds it.
	addrFile := filepath.Join(dir, "addr")

	// The server's standard error (shared by every generation) carries the
	// "handed off" events with their timings.
	logR, logW, err := os.Pipe()
	if err != nil {
		return err
	}
	args := []string{"-addr", "127.0.0.1:0", "-addrfile", addrFile, "-pidfile", pidfile}
	if !plain {
		args = append(args, "-delay", delay.String())
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logW
	if err := cmd.Start(); err != nil {
		return err
	}
	logW.Close()
	go func() { _ = cmd.Wait() }()
	handoffs := make(chan handoff, upgrades+1)
	logDone := make(chan serverLog, 1)
	go readLog(logR, handoffs, logDone)
	var stopOnce sync.Once
	var logs serverLog
	// stopServer stops whichever process serves now and returns what the
	// servers wrote; the log pipe closes when the last one exits.
	stopServer := func() serverLog {
		stopOnce.Do(func() {
			if pid := readPID(pidfile); pid > 0 {
				_ = signal(pid, syscall.SIGTERM)
			}
			select {
			case logs = <-logDone:
			case <-time.After(10 * time.Second):
				logs.unfinished = true
			}
		})
		return logs
	}
	defer stopServer()
	addr, err := waitAddr(ctx, addrFile)
	if err != nil {
		return err
	}
	if err := waitServing(ctx, addr); err != nil {
		return err
	}

	st := &stats{fails: map[string]int{}, example: map[string]string{}, pids: map[string]int{}}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	tr := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: clients, MaxConnsPerHost: 0}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for loadCtx.Err() == nil {
				request(client, "http://"+addr+"/", st)
			}
		}()
	}

	begin := time.Now()
	var triggers []time.Time
	var hs []handoff
	select {
	case <-time.After(warmup):
	case <-ctx.Done():
	}
	for i := 0; i < upgrades && ctx.Err() == nil; i++ {
		old := readPID(pidfile)
		t0 := time.Now()
		if err := signal(old, syscall.SIGHUP); err != nil {
			stopLoad()
			wg.Wait()
			return fmt.Errorf("upgrade %d: signalling %d: %w", i+1, old, err)
		}
		triggers = append(triggers, t0)
		if plain {
			// tableflip logs nothing: the PID file tells the handoff.
			for readPID(pidfile) == old && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			hs = append(hs, handoff{total: time.Since(t0)})
		} else {
			select {
			case h := <-handoffs:
				hs = append(hs, h)
			case <-ctx.Done():
			}
		}
		// The new process wrote the PID file before it announced itself.
		if p := readPID(pidfile); p == old {
			stopLoad()
			wg.Wait()
			return fmt.Errorf("upgrade %d: PID file still names %d", i+1, old)
		}
		select {
		case <-time.After(interval):
		case <-ctx.Done():
		}
	}
	// Steady state after the last upgrade too.
	select {
	case <-time.After(interval):
	case <-ctx.Done():
	}
	stopLoad()
	wg.Wait()
	tr.CloseIdleConnections()
	elapsed := time.Since(begin)
	if ctx.Err() != nil {
		return fmt.Errorf("aborted after %s (limit): %d of %d upgrades done", limit, len(hs), upgrades)
	}
	if plain {
		fmt.Println("baseline: tableflip's documented pattern (Upgrade on SIGHUP, then http.Server.Shutdown)")
	}
	lastPID := readPID(pidfile)
	got := stopServer()
	return report(st, triggers, hs, near, elapsed, upgrades, clients, keepAlive, lastPID, plain, race, check, got)
}

func request(c *http.Client, url string, st *stats) {
	var conns atomic.Int32
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { conns.Add(1) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url, nil)
	if err != nil {
		panic(err) // a constant, valid URL
	}
	start := time.Now()
	resp, err := c.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	took := time.Since(start)
	st.mu.Lock()
	defer st.mu.Unlock()
	if conns.Load() > 1 {
		// One connection per attempt: more than one means the transport
		// resent the request, whatever became of it in the end.
		st.retried++
	}
	switch {
	case err != nil:
		class := classify(err)
		st.fails[class]++
		st.example[class] = err.Error()
	case resp.StatusCode/100 != 2:
		st.fails["non-2xx"]++
		st.example["non-2xx"] = resp.Status
	default:
		st.samples = append(st.samples, sample{start, took})
		st.pids[strings.TrimSpace(string(body))]++
	}
}

func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}

type handoff struct {
	total, spawn, startup, handoff time.Duration
}

// serverLog is what the servers wrote to standard error, as far as the
// report needs it.
type serverLog struct {
	last       []string // the last lines
	races      int      // race detector reports
	race       []string // the first report's opening lines
	unfinished bool     // the servers had not all exited when we stopped reading
}

// raceReport opens every report of the race detector.
const raceReport = "WARNING: DATA RACE"

// readLog picks the "handed off" events out of the servers' JSON logs,
// counts race reports, and keeps the last lines for the report.
func readLog(r io.Reader, out chan<- handoff, done chan<- serverLog) {
	var l serverLog
	inRace := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		l.last = append(l.last, line)
		if len(l.last) > 20 {
			l.last = l.last[1:]
		}
		if strings.Contains(line, raceReport) {
			l.races++
			if l.races == 1 {
				inRace = 12
			}
		}
		if inRace > 0 {
			l.race = append(l.race, line)
			inRace--
		}
		var ev struct {
			Msg     string `json:"msg"`
			Total   int64  `json:"total"`
			Spawn   int64  `json:"spawn"`
			Startup int64  `json:"child_startup"`
			Handoff int64  `json:"handoff"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Msg == "handed off" {
			select {
			case out <- handoff{time.Duration(ev.Total), time.Duration(ev.Spawn), time.Duration(ev.Startup), time.Duration(ev.Handoff)}:
			default:
			}
		}
	}
	done <- l
}

func report(st *stats, triggers []time.Time, hs []handoff, near, elapsed time.Duration, upgrades, clients int, keepAlive bool, lastPID int, plain, race, check bool, logs serverLog) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	var nearL, steadyL []time.Duration
	for _, s := range st.samples {
		// Requests are sorted into buckets by start time: a request that
		// began within near after a trigger saw the handoff.
		i := sort.Search(len(triggers), func(i int) bool { return triggers[i].After(s.start) })
		if i > 0 && s.start.Sub(triggers[i-1]) <= near {
			nearL = append(nearL, s.took)
		} else {
			steadyL = append(steadyL, s.took)
		}
	}
	failed := 0
	for _, n := range st.fails {
		failed += n
	}
	mode := "keep-alive"
	if !keepAlive {
		mode = "no keep-alive"
	}
	fmt.Printf("upgradeload: %d upgrades, %d clients, %s, %s\n", len(hs), clients, mode, elapsed.Round(time.Millisecond))
	fmt.Printf("requests:    %d ok, %d failed", len(st.samples), failed)
	for _, c := range []string{"refused", "reset", "eof", "non-2xx", "timeout", "other"} {
		fmt.Printf(" %s=%d", c, st.fails[c])
	}
	fmt.Println()
	fmt.Printf("retried:     %d (idle keep-alive closed under the client; Go's transport resent them, so they are not failures above)\n", st.retried)
	for c, e := range st.example {
		fmt.Printf("  e.g. %s: %s\n", c, e)
	}
	fmt.Printf("processes:   %d answered; last pid=%d answered %d times\n", len(st.pids), lastPID, st.pids["pid="+strconv.Itoa(lastPID)])
	ps, pn := pct(steadyL), pct(nearL)
	fmt.Printf("steady:      n=%d p50=%s p99=%s max=%s\n", len(steadyL), ps[0], ps[1], ps[2])
	fmt.Printf("near (<%s): n=%d p50=%s p99=%s max=%s\n", near, len(nearL), pn[0], pn[1], pn[2])
	if ps[1] > 0 {
		fmt.Printf("p99 near/steady: %.2fx\n", float64(pn[1])/float64(ps[1]))
	}
	var ho, tot, su, sp []time.Duration
	for _, h := range hs {
		ho = append(ho, h.handoff)
		tot = append(tot, h.total)
		su = append(su, h.startup)
		sp = append(sp, h.spawn)
	}
	ph, pt, pu, psp := pct(ho), pct(tot), pct(su), pct(sp)
	if plain {
		fmt.Printf("handoff:     n/a; trigger to PID file change p50=%s p99=%s max=%s\n", pt[0], pt[1], pt[2])
	} else {
		fmt.Printf("handoff:     p50=%s p99=%s max=%s (trigger to new process accepting, minus its New-to-Ready time)\n", ph[0], ph[1], ph[2])
		fmt.Printf("  total:     p50=%s p99=%s max=%s; of which fork+exec p50=%s p99=%s, new process New-to-Ready p50=%s p99=%s\n",
			pt[0], pt[1], pt[2], psp[0], psp[1], pu[0], pu[1])
	}

	if race {
		fmt.Printf("race:        server built with -race; %d race reports", logs.races)
		if logs.unfinished {
			fmt.Print(" (some servers still running when reading stopped)")
		}
		fmt.Println()
		for _, l := range logs.race {
			fmt.Printf("  %s\n", l)
		}
	}

	var errs []string
	if logs.races > 0 {
		errs = append(errs, fmt.Sprintf("the server processes reported %d data races", logs.races))
	}
	if failed > 0 {
		errs = append(errs, fmt.Sprintf("%d requests failed", failed))
	}
	if len(hs) != upgrades {
		errs = append(errs, fmt.Sprintf("%d of %d handoffs observed", len(hs), upgrades))
	}
	if st.pids["pid="+strconv.Itoa(lastPID)] == 0 || len(st.pids) < 2 {
		errs = append(errs, "clients did not move to the new processes")
	}
	if check {
		if ratio := float64(pn[1]) / float64(max(ps[1], 1)); ratio > 1.5 {
			errs = append(errs, fmt.Sprintf("goal missed: p99 near upgrades is %.2fx steady state (goal 1.5x)", ratio))
		}
		if !plain && ph[0] >= 20*time.Millisecond {
			errs = append(errs, fmt.Sprintf("goal missed: handoff p50 is %s (goal under 20ms)", ph[0]))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// pct returns p50, p99 and max.
func pct(d []time.Duration) [3]time.Duration {
	if len(d) == 0 {
		return [3]time.Duration{}
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	r := func(x time.Duration) time.Duration { return x.Round(10 * time.Microsecond) }
	return [3]time.Duration{r(at(0.50)), r(at(0.99)), r(s[len(s)-1])}
}

// waitAddr waits for the address the server writes once it listens.
func waitAddr(ctx context.Context, path string) (string, error) {
	for ctx.Err() == nil {
		if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b)), nil
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	return "", fmt.Errorf("server never wrote its address to %s: %w", path, ctx.Err())
}

func readPID(path string) int {
	b, _ := os.ReadFile(path)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func waitServing(ctx context.Context, addr string) error {
	c := &http.Client{Timeout: time.Second}
	for ctx.Err() == nil {
		if resp, err := c.Get("http://" + addr + "/healthz/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	return fmt.Errorf("server at %s never became ready: %w", addr, ctx.Err())
}

// signal sends sig to pid. It builds everywhere; sending anything but a kill
// fails where processes have no signals (Windows), as upgrades do there.
func signal(pid int, sig os.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Signal(sig)
}
