// Package browsertest drives the rollout console in a real headless
// Chromium, against a real running rollout served on a loopback admin
// listener. It holds tests only, so that chromedp is imported by nothing
// that a service builds.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/rollouttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// chromium finds the browser: BATON_CHROMIUM, or Debian's chromium on
// PATH.
func chromium(t *testing.T) string {
	if p := os.Getenv("BATON_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium: install Debian's chromium (apt-get install chromium chromium-driver) or set BATON_CHROMIUM to its path")
	return ""
}

// measured is an Analyzer that reports figures: the canary's error rate
// and latency grow a little at each window, the stable's stay put.
type measured struct {
	mu sync.Mutex
	n  int
}

func (a *measured) Analyze(ctx context.Context) (rollout.Verdict, string, error) {
	v, reason, _, err := a.AnalyzeMeasured(ctx)
	return v, reason, err
}

func (a *measured) AnalyzeMeasured(ctx context.Context) (rollout.Verdict, string, *rollout.Measurement, error) {
	a.mu.Lock()
	a.n++
	n := a.n
	a.mu.Unlock()
	end := time.Now()
	m := &rollout.Measurement{
		WindowStart: end.Add(-100 * time.Millisecond), WindowEnd: end, Weight: 500,
		Canary: rollout.Figures{Requests: 1000, Errors: uint64(2 * n), ErrorRate: float64(2*n) / 1000, P50Seconds: 0.002 + 0.0002*float64(n), P99Seconds: 0.009 + 0.001*float64(n)},
		Stable: rollout.Figures{Requests: 19000, Errors: 19, ErrorRate: 0.001, P50Seconds: 0.002, P99Seconds: 0.009},
	}
	return rollout.Pass, fmt.Sprintf("canary error rate %.1f%% within the margin of stable's 0.1%%", m.Canary.ErrorRate*100), m, nil
}

// backfilling is a migration whose backfill reports how far it came.
type backfilling struct{ rollouttest.Migrator }

func (backfilling) BackfillProgress(string) (rollout.BackfillProgress, bool) {
	return rollout.BackfillProgress{Rows: 600, Total: 1000, Fraction: 0.6, RowsPerSecond: 50, ETASeconds: 8}, true
}

type harness struct {
	t    *testing.T
	r    *rollout.Rollout
	url  string
	done chan error
}

// start runs a canary rollout with the system clock until it holds
// mid-canary (step "hold" waits for promotion), and serves its admin API
// on loopback.
func start(t *testing.T) *harness {
	rec := &rollouttest.Recorder{}
	store, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	a := &measured{}
	w := &rollouttest.Weights{Recorder: rec}
	plan := rollout.Plan{ID: "console-canary", Steps: []rollout.Step{
		rollout.SetWeight(w, 500),
		rollout.Analyze(a, rollout.AnalysisOptions{Count: 3, Interval: 50 * time.Millisecond}).Named("analyze-5pct"),
		rollout.RampFlag(&rollouttest.Flags{Recorder: rec}, "checkout", rollout.RampOptions{Percentages: []float64{10, 50}, Interval: 50 * time.Millisecond, Analyzer: a}),
		rollout.Migration(&backfilling{rollouttest.Migrator{Recorder: rec}}, "users", rollout.MigrationBackfill),
		rollout.PauseUntilPromoted().Named("hold"),
		rollout.SetWeight(w, rollout.MaxWeight),
		rollout.PauseUntilPromoted().Named("final"),
	}}
	r, err := rollout.New(context.Background(), plan, rollout.Options{Store: store, Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := rollout.ListenLoopback("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rollout.ServeAdmin(ln, rollout.NewHandler(r, rollout.HandlerOptions{}))
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, r: r, url: "http://" + ln.Addr().String(), done: make(chan error, 1)}
	go func() { h.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-h.done
		srv.Close()
	})
	h.until("step hold waits", func(st rollout.Status) bool { return st.Current == 4 && st.Steps[4].Waiting })
	return h
}

// until polls the rollout's state until ok, or fails after a minute.
func (h *harness) until(what string, ok func(rollout.Status) bool) {
	h.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !ok(h.r.Status()) {
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not within a minute; state %+v", what, h.r.Status())
		}
		select {
		case <-h.r.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// browser starts a headless Chromium with a fresh profile and records
// every console error, exception and error log entry of the page.
func browser(t *testing.T) (context.Context, func() []string) {
	exe := chromium(t)
	profile, err := os.MkdirTemp("", "baton-chromium-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(profile) })
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 1000))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	tctx, tcancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { tcancel(); cancel(); acancel() })
	// The console's messages (calls, uncaught exceptions, the browser
	// log, where CSP violations go) are collected until the browser ends.
	messages := chromedp.Console(tctx)
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException() {
				mu.Lock()
				errs = append(errs, m.String()+" at "+m.URL)
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { tcancel(); wg.Wait() })
	return tctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), errs...)
	}
}

func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitJS polls expr in the page until it is true.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("%s: %s not true within 30s; page:\n%s", what, expr, body)
		}
		time.Sleep(100 * time.Millisecond) // polling the page, not synchronising the rollout
	}
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// TestConsoleInChromium is the operator's walk through the console of a
// running canary: steps and charts shown, live updates, Pause, a refused
// command, Abort with its confirmation, the fleet page, no browser error.
func TestConsoleInChromium(t *testing.T) {
	ctx, browserErrors := browser(t)
	h := start(t)
	shots, err := os.MkdirTemp("", "baton-console-screenshots-*")
	if err != nil {
		t.Fatal(err)
	}

	// The page and everything it loads stays under 100 KB.
	total := 0
	for _, p := range []string{"/", "/console/console.js", "/console/console.css"} {
		code, hdr, body := get(t, h.url+p)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", p, code, body)
		}
		if p == "/" && hdr.Get("Content-Security-Policy") != rollout.ConsoleCSP {
			t.Fatalf("GET /: CSP %q", hdr.Get("Content-Security-Policy"))
		}
		total += len(body)
	}
	t.Logf("console page with its script and style: %d bytes", total)
	if total >= 100<<10 {
		t.Fatalf("console page weighs %d bytes, want < 100 KB", total)
	}

	run(t, ctx, "open the rollout page", chromedp.Navigate(h.url+"/"))
	waitJS(t, ctx, "live", `document.getElementById('conn').textContent === 'live'`)
	waitJS(t, ctx, "seven steps, hold current", `document.querySelectorAll('#plan li.step').length === 7 &&
		document.querySelector('#plan li.current').dataset.step === 'hold'`)
	if s := text(t, ctx, `#plan li[data-step="ramp-flag-checkout"]`); !strings.Contains(s, "2 of 2 percentages") || !strings.Contains(s, "50%") {
		t.Errorf("ramp step card: %q", s)
	}
	if s := text(t, ctx, `#plan li[data-step="analyze-5pct"]`); !strings.Contains(s, "3 of 3 measurements") {
		t.Errorf("analysis step card: %q", s)
	}
	if s := text(t, ctx, `#plan li[data-step="migration-users-backfill"]`); !strings.Contains(s, "backfill 600 rows of 1000 (60%), ETA 8s") {
		t.Errorf("backfill step card: %q", s)
	}
	// Charts: both variants drawn, with their labels, five analysis
	// windows, decisions marked with their verdicts.
	waitJS(t, ctx, "charts", `document.querySelectorAll('#chart-errors g.series').length === 2 &&
		document.querySelectorAll('#chart-latency g.series').length === 4 &&
		document.querySelectorAll('#chart-ramp g.series').length === 2`)
	labels := eval[string](t, ctx, `[...document.querySelectorAll('#chart-errors text, #chart-latency text, #chart-ramp text')].map(e => e.textContent).join('|')`)
	for _, want := range []string{"canary 1%", "stable 0.1%", "canary p99 14ms", "stable p50 2ms", "flag checkout 50%", "canary weight 5%", "pass"} {
		if !strings.Contains(labels, want) {
			t.Errorf("charts lack the label %q: %s", want, labels)
		}
	}
	markers := eval[int](t, ctx, `document.querySelectorAll('#chart-errors g.series[data-label="canary"] circle').length`)
	if markers != 5 {
		t.Errorf("canary error-rate chart has %d points, want one per analysis window (5)", markers)
	}
	screenshot(t, ctx, shots, "rollout-mid-canary.png")

	// Live: the page is updated at least every 2 s without a reload.
	n0 := eval[string](t, ctx, `document.body.dataset.updates`)
	start := time.Now()
	waitJS(t, ctx, "5 more updates", `Number(document.body.dataset.updates) >= `+n0+` + 5`)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("5 updates took %s: the page updates less often than every 2 s", d)
	}

	// Commands that do not apply are disabled, with the API's reason.
	waitJS(t, ctx, "retry disabled", `document.getElementById('cmd-retry').disabled && !document.getElementById('cmd-pause').disabled`)
	if s := text(t, ctx, `#actions`); !strings.Contains(s, "only a rolled-back or failed rollout can be retried") || !strings.Contains(s, "not paused") {
		t.Errorf("actions lack the refusal reasons: %q", s)
	}

	// Pause: a confirmation naming the effect, then the rollout pauses and
	// the page shows it.
	run(t, ctx, "click Pause", chromedp.Click(chromedp.CSS(`#cmd-pause`)))
	waitJS(t, ctx, "confirmation", `document.getElementById('confirm').open`)
	if s := text(t, ctx, `#confirm-text`); !strings.Contains(s, "stops the rollout before its next step") {
		t.Errorf("pause confirmation: %q", s)
	}
	run(t, ctx, "confirm Pause", chromedp.Click(chromedp.CSS(`#confirm-ok`)))
	h.until("paused", func(st rollout.Status) bool { return st.Paused })
	waitJS(t, ctx, "page shows paused", `document.getElementById('summary').textContent.includes('paused') &&
		!document.getElementById('cmd-resume').disabled && document.getElementById('cmd-pause').disabled &&
		document.getElementById('result').textContent === 'pause: accepted'`)

	// A command refused by the API shows its reason: the rollout is
	// resumed elsewhere while the confirmation is open.
	run(t, ctx, "click Resume", chromedp.Click(chromedp.CSS(`#cmd-resume`)))
	waitJS(t, ctx, "confirmation", `document.getElementById('confirm').open`)
	if err := h.r.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "confirm Resume", chromedp.Click(chromedp.CSS(`#confirm-ok`)))
	waitJS(t, ctx, "refusal shown", `document.getElementById('result').textContent === 'resume refused: not paused'`)

	// The fleet page: this process alone.
	run(t, ctx, "open the fleet page", chromedp.Navigate(h.url+"/fleet"))
	waitJS(t, ctx, "hosts", `document.querySelectorAll('#hosts tbody tr').length === 1 &&
		document.querySelector('#hosts tbody tr').textContent.includes('this process') &&
		document.querySelector('#hosts tbody tr').textContent.includes('v2') &&
		document.querySelector('#hosts tbody tr').textContent.includes('5% (500 bp)') &&
		document.getElementById('conn').textContent === 'live'`)
	screenshot(t, ctx, shots, "fleet.png")

	// The releases page: this handler's one rollout, served now.
	run(t, ctx, "open the releases page", chromedp.Navigate(h.url+"/releases"))
	waitJS(t, ctx, "releases", `document.querySelectorAll('#releases tbody tr').length === 1 &&
		document.querySelector('#releases tbody tr').textContent.includes('(served now)') &&
		document.querySelector('#releases tbody a').getAttribute('href').startsWith('/releases/')`)
	run(t, ctx, "follow the release's link", chromedp.Click(chromedp.CSS(`#releases tbody a`)))
	waitJS(t, ctx, "the live page", `location.pathname === '/' && document.getElementById('conn').textContent === 'live'`)

	// Abort asks first: Cancel changes nothing.
	run(t, ctx, "open the rollout page", chromedp.Navigate(h.url+"/"))
	waitJS(t, ctx, "abort enabled", `document.getElementById('conn').textContent === 'live' && !document.getElementById('cmd-abort').disabled`)
	run(t, ctx, "click Abort", chromedp.Click(chromedp.CSS(`#cmd-abort`)))
	waitJS(t, ctx, "confirmation", `document.getElementById('confirm').open`)
	if s := text(t, ctx, `#confirm-text`); !strings.Contains(s, "rolls back every reversible completed step") {
		t.Errorf("abort confirmation: %q", s)
	}
	run(t, ctx, "cancel Abort", chromedp.Click(chromedp.CSS(`#confirm-cancel`)))
	waitJS(t, ctx, "closed", `!document.getElementById('confirm').open`)
	if st := h.r.Status(); st.AbortRequested != "" || st.Phase != rollout.PhaseRunning {
		t.Fatalf("cancelled abort changed the rollout: %+v", st)
	}
	// Confirmed, with a reason that is markup: it rolls back, and the
	// reason is shown as text.
	const reason = `<img src=x id=injected> p99 doubled`
	run(t, ctx, "abort for real",
		chromedp.Click(chromedp.CSS(`#cmd-abort`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-reason`)),
		chromedp.SendKeys(chromedp.CSS(`#confirm-reason`), reason),
		chromedp.Click(chromedp.CSS(`#confirm-ok`)))
	select {
	case err := <-h.done:
		if !errors.Is(err, rollout.ErrRolledBack) {
			t.Fatalf("Run after abort: %v, want ErrRolledBack", err)
		}
		h.done <- err
	case <-time.After(time.Minute):
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("the rollout did not roll back within a minute of the abort; state %+v; page:\n%s", h.r.Status(), body)
	}
	waitJS(t, ctx, "rolled back", `document.getElementById('summary').textContent.includes('rolled-back') &&
		!document.getElementById('cmd-retry').disabled`)
	injected := eval[bool](t, ctx, `document.getElementById('injected') !== null || document.querySelectorAll('img').length > 0`)
	if injected {
		t.Error("the abort reason was parsed as markup")
	}
	if s := text(t, ctx, `#decisions`); !strings.Contains(s, reason) {
		t.Errorf("decisions lack the abort reason as text: %q", s)
	}
	screenshot(t, ctx, shots, "rollout-rolled-back.png")

	// The refusal above is an answer 409 the browser logs as a failed
	// load: that one is expected; nothing else may be there.
	var errs []string
	for _, e := range browserErrors() {
		if !strings.Contains(e, "status of 409 (Conflict) at "+h.url+"/api/resume") {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		t.Errorf("browser log has %d errors:\n%s", len(errs), strings.Join(errs, "\n"))
	}
	t.Logf("screenshots in %s (%s)", shots, strconv.Quote("rollout-mid-canary.png, fleet.png, rollout-rolled-back.png"))
}

// The console of a socket-only admin API, opened in the browser through
// `rolloutctl console` (a real process): the page loads over the proxy
// and a command sent by the page (with the browser's own Origin) reaches
// the rollout.
func TestConsoleThroughRolloutctl(t *testing.T) {
	ctx, browserErrors := browser(t)
	rec := &rollouttest.Recorder{}
	store, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := rollout.New(context.Background(), rollout.Plan{ID: "console-proxied", Steps: []rollout.Step{
		rollout.SetWeight(&rollouttest.Weights{Recorder: rec}, 100),
		rollout.PauseUntilPromoted().Named("hold"),
	}}, rollout.Options{Store: store, Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	ln, err := rollout.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := rollout.ServeAdmin(ln, rollout.NewHandler(r, rollout.HandlerOptions{}))
	rctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, r: r, done: make(chan error, 1)}
	go func() { h.done <- r.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-h.done; srv.Close() })
	h.until("step hold waits", func(st rollout.Status) bool { return st.Current == 1 && st.Steps[1].Waiting })

	bin := filepath.Join(dir, "rolloutctl")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/batonhq/baton/examples/rolloutctl").CombinedOutput(); err != nil {
		t.Fatalf("building rolloutctl: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-socket", sock, "console")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 1)
	go func() {
		b := make([]byte, 4096)
		n, _ := stdout.Read(b)
		lines <- string(b[:n])
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.Process.Signal(os.Interrupt) != nil {
			cmd.Process.Kill()
		}
		if err := <-exited; err != nil {
			t.Errorf("rolloutctl console: %v", err)
		}
	})
	var url string
	select {
	case l := <-lines:
		if f := strings.Fields(strings.TrimPrefix(l, "console: ")); len(f) > 0 && strings.HasPrefix(f[0], "http://127.0.0.1:") {
			url = strings.TrimSuffix(f[0], "/")
		} else {
			t.Fatalf("rolloutctl console printed %q", l)
		}
	case <-time.After(time.Minute):
		t.Fatal("rolloutctl console printed no URL within a minute")
	}
	t.Logf("rolloutctl console serves %s", url)

	run(t, ctx, "open the proxied page", chromedp.Navigate(url+"/"))
	waitJS(t, ctx, "live", `document.getElementById('conn').textContent === 'live' && !document.getElementById('cmd-pause').disabled`)
	run(t, ctx, "pause", chromedp.Click(chromedp.CSS(`#cmd-pause`)))
	waitJS(t, ctx, "confirmation", `document.getElementById('confirm').open`)
	run(t, ctx, "confirm", chromedp.Click(chromedp.CSS(`#confirm-ok`)))
	h.until("paused through the proxy", func(st rollout.Status) bool { return st.Paused })
	waitJS(t, ctx, "page shows paused", `document.getElementById('result').textContent === 'pause: accepted' &&
		document.getElementById('summary').textContent.includes('paused')`)
	if errs := browserErrors(); len(errs) > 0 {
		t.Errorf("browser log has %d errors:\n%s", len(errs), strings.Join(errs, "\n"))
	}
}
