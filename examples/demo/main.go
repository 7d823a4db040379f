// Command demo is baton end to end, on one machine, with nothing to
// install: go run ./examples/demo.
//
// It starts a small HTTP service built on baton (this same binary,
// re-executed in service mode, with an SQLite database and every state file
// in a temporary directory, listening on a loopback port) and keeps load
// on it from concurrent clients in this process: reads and writes of a
// users table, each client a sticky user. This process starts two
// releases, each a manifest (see service.go), through the service's admin
// API (POST /api/start on a Unix socket with mode 0600 in the temporary
// directory, whose stable name follows the process that drives), and
// follows them there; inside the service a rollout.Driver runs them, its
// state persisted before every effect.
//
// Rollout release-v2 succeeds. It expands the schema (first_name and
// last_name beside name, kept in step by dual-write triggers), upgrades
// the binary to v2 by socket handoff with a blue-green bake window (v1
// stays warm, then drains), canaries v2's handler against v1's in the same
// process (canary.Splitter, 10% -> 50% -> 100% with analysis at each
// weight), backfills, ramps the read-new-name flag (50% -> 100%, checking
// that every row agrees between the old and new columns), switches reads,
// waits until no v1 instance is alive, and contracts (drops name).
//
// Rollout release-v3 fails on purpose. It expands again (a nickname
// column), ramps the nickname-ui flag to 50%, sets a 20% canary weight for
// v3 and upgrades to v3, whose handler answers every request correctly
// but 40 ms late. Canary analysis in the bake window finds v3 slower than
// v2 and the rollout rolls back by itself, in reverse: the v3 process gives
// serving back to the v2 process, which resumes (same PID) and finishes
// the rollback: canary weight to 0, flag off, migration rolled back.
//
// The report lists requests served, "failed requests: N" (every transport
// error or non-2xx answer the clients saw; it must be 0), each step with
// its duration, and each decision with its reason, as rollout recorded
// them. The exit status is non-zero if a request failed, if release-v2 did
// not succeed, or if release-v3 was not rolled back to the v2 process.
// It takes about 30 seconds; -keep leaves the temporary directory (logs,
// database, rollout state) for inspection.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/batonhq/baton/rollout"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "service" {
		fs := flag.NewFlagSet("service", flag.ExitOnError)
		dir := fs.String("dir", "", "demo directory")
		_ = fs.Parse(os.Args[2:])
		os.Exit(serviceMain(*dir))
	}
	keep := flag.Bool("keep", false, "keep the temporary directory")
	clients := flag.Int("clients", 12, "concurrent clients")
	rate := flag.Int("rate", 300, "total requests per second")
	flag.Parse()
	os.Exit(run(*keep, *clients, *rate))
}

func run(keep bool, clients, rate int) int {
	start := time.Now()
	dir, err := os.MkdirTemp("", "baton-demo-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 2
	}
	if keep {
		fmt.Printf("demo directory: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	d := &demo{dir: dir, start: start}
	code := d.run(clients, rate)
	fmt.Printf("wall time: %s\n", time.Since(start).Round(100*time.Millisecond))
	return code
}

type demo struct {
	dir   string
	start time.Time
	addr  string
	load  *load
	admin *http.Client
	seen  map[string]bool
}

func (d *demo) logf(format string, args ...any) {
	fmt.Printf("%6.1fs  %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) run(clients, rate int) int {
	if err := writeAtomic(filepath.Join(d.dir, versionFile), []byte("v1")); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 2
	}
	if err := seed(d.dir); err != nil {
		fmt.Fprintln(os.Stderr, "demo: seeding the database:", err)
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 2
	}
	cmd := exec.Command(exe, "service", "-dir", d.dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "demo: starting the service:", err)
		return 2
	}
	reaped := make(chan struct{})
	go func() { _ = cmd.Wait(); close(reaped) }()
	defer d.stopService(reaped)

	if d.addr, err = waitFile(filepath.Join(d.dir, addrFile), 20*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "demo: the service did not start:", err)
		d.dumpLog()
		return 2
	}
	if err := d.waitReady(20 * time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		d.dumpLog()
		return 2
	}
	d.admin = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			// The stable name follows the process that drives.
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", filepath.Join(d.dir, adminSocket))
		},
		DisableKeepAlives: true,
	}}
	d.seen = map[string]bool{}
	d.logf("service v1 up at http://%s (pid %d); %d clients, about %d requests/s", d.addr, cmd.Process.Pid, clients, rate)
	d.load = startLoad("http://"+d.addr, clients, rate)
	time.Sleep(2 * time.Second) // a baseline before the first rollout

	ok := true
	st1, err := d.rollout("release-v2", 90*time.Second)
	if err != nil {
		d.logf("release-v2: %v", err)
		ok = false
	}
	v2pid := readTrim(filepath.Join(d.dir, pidFile))
	var st2 rollout.Status
	if ok {
		st2, err = d.rollout("release-v3", 60*time.Second)
		if err != nil {
			d.logf("release-v3: %v", err)
			ok = false
		}
	}
	// Load keeps running a moment on whatever serves after the rollback.
	time.Sleep(time.Second)
	afterPID := readTrim(filepath.Join(d.dir, pidFile))
	d.load.stop()

	fmt.Println()
	fmt.Println("==================== report ====================")
	report(st1)
	if st2.ID != "" {
		report(st2)
	}
	served, failed, byHandler, samples := d.load.totals()
	fmt.Printf("requests served: %d (", served)
	keys := make([]string, 0, len(byHandler))
	for k := range byHandler {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i > 0 {
			fmt.Print(", ")
		}
		fmt.Printf("%s handler %d", k, byHandler[k])
	}
	fmt.Println(")")
	fmt.Printf("failed requests: %d\n", failed)
	for _, s := range samples {
		fmt.Printf("  e.g. %s\n", s)
	}
	resumed := v2pid != "" && v2pid == afterPID
	if st2.ID != "" {
		if resumed {
			fmt.Printf("old process resumed: pid %s (v2) serves again after the rollback\n", afterPID)
		} else {
			fmt.Printf("old process NOT resumed: pid %s served v2 before release-v3, pid %s serves now\n", v2pid, afterPID)
		}
	}
	code := 0
	switch {
	case failed > 0:
		fmt.Println("FAIL: requests failed")
		code = 1
	case st1.Phase != rollout.PhaseSucceeded:
		fmt.Printf("FAIL: release-v2 ended %q, want succeeded\n", st1.Phase)
		code = 1
	case st2.Phase != rollout.PhaseRolledBack:
		fmt.Printf("FAIL: release-v3 ended %q, want rolled-back\n", st2.Phase)
		code = 1
	case !resumed:
		fmt.Println("FAIL: the old process did not resume")
		code = 1
	default:
		fmt.Println("OK: release-v2 succeeded, release-v3 rolled back automatically, no request failed")
	}
	if code != 0 {
		d.dumpLog()
	}
	return code
}

// rollout starts release id through the service's admin API and follows
// it there until it ends.
func (d *demo) rollout(id string, limit time.Duration) (rollout.Status, error) {
	req, err := http.NewRequest(http.MethodPost, "http://admin/api/start", strings.NewReader(releases[id]))
	if err != nil {
		return rollout.Status{}, err
	}
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := d.admin.Do(req)
	if err != nil {
		return rollout.Status{}, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return rollout.Status{}, fmt.Errorf("start: %s %s", resp.Status, bytes.TrimSpace(body))
	}
	d.logf("rollout %s started", id)
	deadline := time.Now().Add(limit)
	var last rollout.Status
	for time.Now().Before(deadline) {
		st, err := d.status()
		if err == nil && st.ID == id {
			d.printNew(st)
			last = st
			if st.Phase.Done() {
				d.logf("rollout %s: %s", id, st.Phase)
				return st, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return last, fmt.Errorf("did not end within %s (phase %q)", limit, last.Phase)
}

func (d *demo) status() (rollout.Status, error) {
	resp, err := d.admin.Get("http://admin/api/status")
	if err != nil {
		return rollout.Status{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return rollout.Status{}, fmt.Errorf("status: %s", resp.Status)
	}
	var st rollout.Status
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// printNew prints the decisions not printed yet, as they happen.
func (d *demo) printNew(st rollout.Status) {
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	add := func(step string, ds []rollout.Decision) {
		for _, dc := range ds {
			k := st.ID + "|" + step + "|" + dc.At.Format(time.RFC3339Nano) + "|" + dc.Reason
			if d.seen[k] {
				continue
			}
			d.seen[k] = true
			t := dc.Reason
			if step != "" {
				t = step + ": " + t
			}
			lines = append(lines, line{dc.At, t})
		}
	}
	add("", st.Decisions)
	for _, s := range st.Steps {
		add(s.Name, s.Decisions)
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].at.Before(lines[j].at) })
	for _, l := range lines {
		fmt.Printf("%6.1fs  [%s] %s\n", l.at.Sub(d.start).Seconds(), st.ID, l.text)
	}
}

func report(st rollout.Status) {
	took := st.FinishedAt.Sub(st.StartedAt).Round(100 * time.Millisecond)
	fmt.Printf("\nrollout %s: %s in %s\n", st.ID, st.Phase, took)
	if st.Reason != "" {
		fmt.Printf("  why: %s\n", st.Reason)
	}
	now := st.FinishedAt
	for _, s := range st.Steps {
		dur := s.Duration(now).Round(time.Millisecond)
		extra := ""
		if !s.RollbackStartedAt.IsZero() && !s.RollbackFinishedAt.IsZero() {
			extra = fmt.Sprintf(", rollback %s", s.RollbackFinishedAt.Sub(s.RollbackStartedAt).Round(time.Millisecond))
		}
		fmt.Printf("  %-26s %-12s %8s%s\n", s.Name, s.Status, dur, extra)
		for _, dc := range s.Decisions {
			fmt.Printf("      - %s\n", dc.Reason)
		}
	}
	for _, dc := range st.Decisions {
		fmt.Printf("  * %s\n", dc.Reason)
	}
}

func (d *demo) waitReady(limit time.Duration) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if resp, err := c.Get("http://" + d.addr + "/healthz/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("the service never became ready")
}

// stopService sends SIGTERM to the process that serves (graceful drains
// it), waits until every process of the demo is gone, and kills what is
// left after 20 s.
func (d *demo) stopService(reaped chan struct{}) {
	if pid, _ := strconv.Atoi(readTrim(filepath.Join(d.dir, pidFile))); pid > 0 {
		signal(pid, syscall.SIGTERM)
	}
	var pids []int
	ents, _ := os.ReadDir(filepath.Join(d.dir, pidsDir))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	alive := func() []int {
		var out []int
		for _, pid := range pids {
			// A zombie is gone for our purpose; the first process
			// is reaped by cmd.Wait, later ones by init.
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				continue
			}
			if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X') {
				continue
			}
			out = append(out, pid)
		}
		return out
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(alive()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, pid := range alive() {
		signal(pid, os.Kill)
	}
	select {
	case <-reaped:
	case <-time.After(5 * time.Second):
	}
}

// signal sends sig to process pid; where sig cannot be sent (SIGTERM on
// Windows), the process is killed.
func signal(pid int, sig os.Signal) {
	p, err := os.FindProcess(pid)
	if err != nil {
		return
	}
	if p.Signal(sig) != nil {
		_ = p.Kill()
	}
}

func (d *demo) dumpLog() {
	b, _ := os.ReadFile(filepath.Join(d.dir, "service.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	fmt.Fprintln(os.Stderr, "---- last lines of service.log ----")
	for _, l := range lines {
		fmt.Fprintln(os.Stderr, l)
	}
}

func waitFile(path string, limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if s := readTrim(path); s != "" {
			return s, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", fmt.Errorf("%s never appeared", path)
}

// load is the clients: each one a loop of paced requests as random users,
// four reads for one write.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	served    int
	failed    int
	byHandler map[string]int
	samples   []string
}

func startLoad(base string, clients, rate int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, byHandler: map[string]int{}}
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	c := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	every := time.Duration(clients) * time.Second / time.Duration(max(rate, 1))
	for i := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			tick := time.NewTicker(every)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				user := "user-" + strconv.Itoa(rng.IntN(5000))
				var req *http.Request
				if rng.IntN(5) == 0 {
					form := url.Values{"name": {personName(rng.IntN(100))}}.Encode()
					req, _ = http.NewRequest(http.MethodPost, base+"/user", strings.NewReader(form))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					// Lets the transport replay the request on a
					// keep-alive connection the server closed
					// before reading it, as it does for GETs.
					req.Header.Set("Idempotency-Key", fmt.Sprintf("%d-%d", i, n))
				} else {
					req, _ = http.NewRequest(http.MethodGet, fmt.Sprintf("%s/user?id=%d", base, 1+rng.IntN(seedRows)), nil)
				}
				req.Header.Set("X-User", user)
				resp, err := c.Do(req)
				if err != nil {
					l.record("", err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					l.record("", fmt.Sprintf("%s %s: %s", req.Method, req.URL.Path, resp.Status))
					continue
				}
				l.record(resp.Header.Get("X-Handler"), "")
			}
		}()
	}
	return l
}

func (l *load) record(handler, failure string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if failure != "" {
		l.failed++
		if len(l.samples) < 5 {
			l.samples = append(l.samples, failure)
		}
		return
	}
	l.served++
	l.byHandler[handler]++
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *load) totals() (served, failed int, byHandler map[string]int, samples []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.served, l.failed, l.byHandler, l.samples
}
