//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// build compiles this service (or another package) into out.
func build(t *testing.T, out, pkg string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", append(append([]string{"build", "-o", out}, args...), pkg)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// slowV3 is the bad change of release v3: its handler waits 40 ms for a
// query it does not need. Clients still get their answer; the canary's
// latency analysis is what sees it.
const slowV3 = `package main

import (
	"net/http"
	"time"
)

func (a *app) ordersV3() http.Handler {
	h := a.orders("v3", a.readsBuyer)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(40 * time.Millisecond)
		w.Header().Set("X-Receipt", "itemized")
		h.ServeHTTP(w, r)
	})
}
`

// The template end to end, as a team would run it: v1 serves under load;
// release v2 (blue-green bake, expand, canary 10/50/100%, backfill, flag
// ramp, contract) is started and watched with rolloutctl and succeeds
// with no failed request; release v3, slower, is caught by its bake's
// canary analysis and rolled back by itself: the same v2 process serves,
// and v2's binary is the one installed.
func TestServiceV1V2BadV3UnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the service three times and rolls it out (about a minute)")
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "var")
	bin := filepath.Join(dir, "bin", "orders")
	rel := func(v string) string { return filepath.Join(dir, "releases", v, "orders") }
	build(t, bin, ".", "-ldflags", "-X main.version=v1")
	build(t, rel("v2"), ".", "-ldflags", "-X main.version=v2")
	src, err := filepath.Abs("orders_v3.go")
	if err != nil {
		t.Fatal(err)
	}
	slow := filepath.Join(dir, "orders_v3_slow.go")
	overlay := filepath.Join(dir, "overlay.json")
	os.WriteFile(slow, []byte(slowV3), 0o600)
	o, _ := json.Marshal(map[string]map[string]string{"Replace": {src: slow}})
	os.WriteFile(overlay, o, 0o600)
	build(t, rel("v3"), ".", "-overlay", overlay, "-ldflags", "-X main.version=v3")
	ctlBin := filepath.Join(dir, "rolloutctl")
	build(t, ctlBin, "../rolloutctl")
	for _, v := range []string{"v2", "v3"} {
		m, err := os.ReadFile(filepath.Join("releases", v+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		m = bytes.ReplaceAll(m, []byte("/srv/orders/releases/"), []byte(filepath.Join(dir, "releases")+"/"))
		os.WriteFile(filepath.Join(dir, v+".yaml"), m, 0o600)
	}

	svc := startService(t, bin, state)
	load := startLoad(t, svc.addr)
	ctl := func(limit time.Duration, args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		cmd := exec.CommandContext(ctx, ctlBin, append([]string{"-socket", filepath.Join(state, "admin.sock")}, args...)...)
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("rolloutctl %v did not end within %s:\n%s", args, limit, out)
		}
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("rolloutctl %v: %v", args, err)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}

	if code, out := ctl(time.Minute, "start", filepath.Join(dir, "v2.yaml")); code != 0 {
		t.Fatalf("start v2: %d\n%s", code, out)
	}
	if code, out := ctl(3*time.Minute, "-for", "2m30s", "watch"); code != 0 || !strings.Contains(out, "rollout orders-v2: succeeded") {
		t.Fatalf("watch v2: %d\n%s\n%s", code, out, svc.log())
	}
	if n, samples := load.failures(); n != 0 {
		t.Fatalf("%d requests failed during release v2, e.g. %v", n, samples)
	}
	v2pid := svc.pid(t)
	sameFile(t, bin, rel("v2"), "after v2's promotion the installed binary")

	if code, out := ctl(time.Minute, "start", filepath.Join(dir, "v3.yaml")); code != 0 {
		t.Fatalf("start v3: %d\n%s", code, out)
	}
	code, out := ctl(2*time.Minute, "-for", "90s", "watch")
	if code != 1 || !strings.Contains(out, "rollout orders-v3: rolled-back") || !strings.Contains(out, "canary is worse than stable") {
		t.Fatalf("watch v3: %d, want 1 with a rollback caught by the canary\n%s\n%s", code, out, svc.log())
	}
	if p := svc.pid(t); p != v2pid {
		t.Fatalf("after v3's rollback pid %d serves, want v2's %d", p, v2pid)
	}
	if got := load.servedBy(t, svc.addr); got != v2pid {
		t.Fatalf("an order is served by pid %d, want v2's %d", got, v2pid)
	}
	sameFile(t, bin, rel("v2"), "after v3's rollback the installed binary")
	total, failed := load.stop()
	if n, samples := load.failures(); n != 0 {
		t.Fatalf("%d requests failed during release v3, e.g. %v", n, samples)
	}
	t.Logf("%d requests served, %d failed; v2 pid %d serves again after v3's rollback", total, failed, v2pid)
}

func sameFile(t *testing.T, a, b, what string) {
	t.Helper()
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
		t.Fatalf("%s is not %s (%v %v)", what, b, err1, err2)
	}
}

type service struct {
	dir  string
	addr string
	out  *os.File
}

// startService starts v1 in a process group of its own: the processes of
// its upgrades stay in it, so the test can stop them all.
func startService(t *testing.T, bin, state string) *service {
	t.Helper()
	logf, err := os.Create(filepath.Join(filepath.Dir(state), "service.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-dir", state, "-install", bin, "-listen", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &service{dir: state, out: logf}
	reaped := make(chan struct{})
	go func() { cmd.Wait(); close(reaped) }()
	t.Cleanup(func() { s.stop(t, cmd.Process.Pid, reaped) })
	deadline := time.Now().Add(30 * time.Second)
	for s.addr == "" || !s.ready() {
		if time.Now().After(deadline) {
			t.Fatalf("the service did not become ready within 30s:\n%s", s.log())
		}
		if b, err := os.ReadFile(filepath.Join(state, "addr")); err == nil {
			s.addr = string(b)
		}
		time.Sleep(20 * time.Millisecond) // polling a process's files and port: nothing to wait on
	}
	return s
}

func (s *service) ready() bool {
	resp, err := http.Get("http://" + s.addr + "/healthz/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (s *service) log() string {
	b, _ := os.ReadFile(s.out.Name())
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(len(lines)-80, 0):], "\n")
}

func (s *service) pid(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "orders.pid"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// stop sends SIGTERM to the serving process (graceful drains it) and
// waits for the group to be empty, killing what is left after 30 s.
func (s *service) stop(t *testing.T, pgid int, reaped chan struct{}) {
	if b, err := os.ReadFile(filepath.Join(s.dir, "orders.pid")); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			syscall.Kill(p, syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(-pgid, 0) == nil && time.Now().Before(deadline) {
		select {
		case <-reaped: // the first process is ours to reap
		case <-time.After(20 * time.Millisecond): // later ones are init's
		}
	}
	if syscall.Kill(-pgid, 0) == nil {
		t.Errorf("service processes still run 30s after SIGTERM; killed\n%s", s.log())
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
	select {
	case <-reaped:
	case <-time.After(10 * time.Second):
		t.Error("the first service process was not reaped")
	}
	s.out.Close()
}

// load is a few clients, each a sticky user at a steady pace, four reads
// for one write; every transport error and non-2xx answer is a failure.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	served atomic.Int64

	mu      sync.Mutex
	failed  int
	samples []string
}

func startLoad(t *testing.T, addr string) *load {
	t.Helper()
	base := "http://" + addr + "/orders"
	c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	t.Cleanup(c.CloseIdleConnections)
	for i := range 50 { // orders to read
		resp, err := c.PostForm(base, url.Values{"customer": {fmt.Sprintf("customer %d", i)}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	t.Cleanup(func() { l.stop() })
	for i := range 8 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			tick := time.NewTicker(40 * time.Millisecond) // 25 requests/s a client
			defer tick.Stop()
			user := "user-" + strconv.Itoa(i*1000+rng.IntN(1000))
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				var req *http.Request
				if n%5 == 0 {
					req, _ = http.NewRequest(http.MethodPost, base, strings.NewReader(url.Values{"customer": {user}}.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					// Lets the transport replay the request on a keep-alive
					// connection the server closed before reading it, as it
					// does for GETs.
					req.Header.Set("Idempotency-Key", fmt.Sprintf("%d-%d", i, n))
				} else {
					req, _ = http.NewRequest(http.MethodGet, base+"?id="+strconv.Itoa(1+rng.IntN(50)), nil)
				}
				req.Header.Set("X-User", user)
				resp, err := c.Do(req)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					l.fail(fmt.Sprintf("%s %s: %s", req.Method, req.URL.Path, resp.Status))
					continue
				}
				l.served.Add(1)
			}
		}()
	}
	return l
}

func (l *load) fail(why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed++
	if len(l.samples) < 5 {
		l.samples = append(l.samples, why)
	}
}

// failures returns the failures so far, and forgets them.
func (l *load) failures() (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, s := l.failed, l.samples
	l.failed, l.samples = 0, nil
	return n, s
}

func (l *load) stop() (served int64, failed int) {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.served.Load(), l.failed
}

// servedBy asks which process serves an order.
func (l *load) servedBy(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/orders?id=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v struct {
		ServedBy string `json:"served_by"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("GET /orders?id=1: %s %q: %v", resp.Status, b, err)
	}
	p, _ := strconv.Atoi(v.ServedBy)
	return p
}
