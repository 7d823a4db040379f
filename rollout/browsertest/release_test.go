package browsertest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/batonhq/baton/rollout"
)

// The page of a past release in Chromium: a Driver that ran r1 to the end
// and now serves r2 shows r1's stored state once, with every command
// disabled and the reason, and nothing in the browser's log.
func TestReleasePageInChromium(t *testing.T) {
	ctx, browserErrors := browser(t)
	store, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	d, err := rollout.NewDriver(context.Background(), rollout.DriverOptions{Store: store, Version: "v1",
		Bind: func(*rollout.Release) (rollout.Bindings, error) { return rollout.Bindings{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	start := func(manifest string) {
		rel, err := rollout.ParseRelease([]byte(manifest), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background(), rel); err != nil {
			t.Fatal(err)
		}
	}
	until := func(what string, ok func(rollout.Status) bool) {
		deadline := time.Now().Add(time.Minute)
		for {
			r := d.Current()
			ch := r.Changed()
			if ok(r.Status()) {
				return
			}
			select {
			case <-ch:
			case <-d.Changed():
			case <-time.After(time.Until(deadline)):
				t.Fatalf("%s: not within a minute; state %+v", what, r.Status())
			}
		}
	}
	start("id: r1\nversion: v1\nsteps:\n  - pause: {}\n    name: hold\n")
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	until("hold waits", func(st rollout.Status) bool { return st.Steps[0].Waiting })
	if err := d.Current().Promote(context.Background()); err != nil {
		t.Fatal(err)
	}
	until("r1 succeeds", func(st rollout.Status) bool { return st.Phase == rollout.PhaseSucceeded })
	start("id: r2\nversion: v1\nsteps:\n  - pause: {}\n    name: gate\n")

	ln, err := rollout.ListenLoopback("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rollout.ServeAdmin(ln, d.Handler(rollout.HandlerOptions{}))
	defer srv.Close()
	url := "http://" + ln.Addr().String()

	run(t, ctx, "open the releases page", chromedp.Navigate(url+"/releases"))
	waitJS(t, ctx, "both releases", `document.querySelectorAll('#releases tbody tr').length === 2 &&
		document.querySelector('#releases tbody tr').textContent.includes('r2 (served now)')`)
	run(t, ctx, "open r1", chromedp.Click(chromedp.CSS(`#releases a[href="/releases/r1"]`)))
	waitJS(t, ctx, "r1's stored state", `location.pathname === '/releases/r1' &&
		document.getElementById('conn').textContent === 'stored state of a past release' &&
		document.getElementById('summary').textContent.includes('succeeded') &&
		document.querySelector('#plan li').textContent.includes('hold')`)
	for _, cmd := range []string{"promote", "pause", "abort", "retry"} {
		title := eval[string](t, ctx, `(function(){ const b = document.getElementById('cmd-`+cmd+`'); return b && b.disabled ? b.title : 'enabled'; })()`)
		if !strings.Contains(title, `release "r1" is not the one served here`) {
			t.Errorf("%s on r1's page: %q, want disabled with the reason", cmd, title)
		}
	}
	if errs := browserErrors(); len(errs) > 0 {
		t.Errorf("browser log has %d errors:\n%s", len(errs), strings.Join(errs, "\n"))
	}
}
