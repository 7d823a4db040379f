package rollout_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
)

// measuring is an Analyzer that reports what it measured.
type measuring struct{}

func (measuring) Analyze(context.Context) (rollout.Verdict, string, error) {
	return rollout.Fail, "not called: AnalyzeMeasured is", nil
}

func (measuring) AnalyzeMeasured(context.Context) (rollout.Verdict, string, *rollout.Measurement, error) {
	return rollout.Pass, "canary as good as stable", &rollout.Measurement{Weight: 500,
		Canary: rollout.Figures{Requests: 100, Errors: 1, ErrorRate: 0.01, P50Seconds: 0.002, P99Seconds: 0.012},
		Stable: rollout.Figures{Requests: 900, Errors: 9, ErrorRate: 0.01, P50Seconds: 0.002, P99Seconds: 0.011}}, nil
}

type hosts []rollout.Host

func (h hosts) Hosts(context.Context) ([]rollout.Host, error) { return h, nil }

type brokenFleet struct{}

func (brokenFleet) Hosts(context.Context) ([]rollout.Host, error) {
	return nil, errors.New("engine unreachable")
}

// The console's pages: the CSP lets only the page's own script run, every
// value (a step name, an abort reason, a host name) is escaped, and the
// script renders as text only.
func TestConsolePagesEscapeAndSendCSP(t *testing.T) {
	e := newEnv(t)
	const evilStep = `<script>alert("step")</script>`
	r := e.rollout(rollout.Plan{ID: "console-escape", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100),
		rollout.PauseUntilPromoted().Named(evilStep),
	}}, "")
	h := rollout.NewHandler(r, rollout.HandlerOptions{Fleet: hosts{{Name: `<b onmouseover="x()">h1</b>`, Version: "v2", State: "serving"}}})
	c, _ := adminOnSocketHandler(t, h)
	wait, _ := start(t, r)
	waitFor(t, r, "pause waiting", stepWaiting(evilStep))
	if code, body := post(t, c, "/api/abort", "application/json", `{"reason":"\"><img src=x onerror=alert(1)>"}`); code != 200 {
		t.Fatal(code, body)
	}
	wantErrIs(t, wait(), rollout.ErrRolledBack)

	tags := regexp.MustCompile(`<[a-zA-Z][^>]*>`)
	handler := regexp.MustCompile(`(?i)\son[a-z]+\s*=|javascript:`)
	inlineScript := regexp.MustCompile(`(?i)<script[^>]*>[^<]`)
	for _, path := range []string{"/", "/fleet"} {
		resp, err := c.Get("http://rollout" + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page := string(b)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != rollout.ConsoleCSP ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, resp.Header)
		}
		if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img") || strings.Contains(page, "<b ") {
			t.Errorf("GET %s: a value reached the page as markup:\n%s", path, page)
		}
		if m := inlineScript.FindString(page); m != "" {
			t.Errorf("GET %s: inline script %q", path, m)
		}
		for _, tag := range tags.FindAllString(page, -1) {
			if handler.MatchString(tag) {
				t.Errorf("GET %s: inline handler in %s", path, tag)
			}
		}
		if strings.Count(page, "<script") != 1 || !strings.Contains(page, `<script src="/console/console.js" defer></script>`) {
			t.Errorf("GET %s: want the page's own script only:\n%s", path, page)
		}
		if path == "/" && (!strings.Contains(page, "&lt;script&gt;alert(&#34;step&#34;)&lt;/script&gt;") || !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;")) {
			t.Errorf("GET /: the step name or the abort reason is missing, escaped:\n%s", page)
		}
		if path == "/fleet" && !strings.Contains(page, "&lt;b onmouseover=&#34;x()&#34;&gt;h1&lt;/b&gt;") {
			t.Errorf("GET /fleet: the host name is missing, escaped:\n%s", page)
		}
	}
	// The script and the style are served with the same policy; the
	// script never parses a value as HTML.
	for _, f := range []struct{ path, ctype string }{{"/console/console.js", "text/javascript"}, {"/console/console.css", "text/css"}} {
		resp, err := c.Get("http://rollout" + f.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), f.ctype) || resp.Header.Get("Content-Security-Policy") != rollout.ConsoleCSP {
			t.Fatalf("GET %s: %d %v", f.path, resp.StatusCode, resp.Header)
		}
		for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('on", "setAttribute(\"on"} {
			if strings.Contains(string(b), sink) {
				t.Errorf("%s uses %s", f.path, sink)
			}
		}
	}
	code, body := get(t, c, "/api/fleet")
	var fs rollout.FleetStatus
	if err := json.Unmarshal([]byte(body), &fs); code != 200 || err != nil || len(fs.Hosts) != 1 || fs.Hosts[0].Version != "v2" {
		t.Fatalf("GET /api/fleet: %d %v %s", code, err, body)
	}
	if code, _ := get(t, c, "/favicon.ico"); code != http.StatusNoContent {
		t.Errorf("GET /favicon.ico: %d", code)
	}
}

// Without a FleetView the fleet is this process; a FleetView that fails
// says why.
func TestConsoleFleetOfOneAndFleetErrors(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(rollout.Plan{ID: "console-fleet", Steps: []rollout.Step{rollout.SetWeight(e.w, 250), rollout.PauseUntilPromoted().Named("hold")}}, "v9")
	c, _ := adminOnSocket(t, r)
	wait, cancel := start(t, r)
	defer func() { cancel(); wait() }()
	waitFor(t, r, "hold waiting", stepWaiting("hold"))
	code, body := get(t, c, "/api/fleet")
	var fs rollout.FleetStatus
	if err := json.Unmarshal([]byte(body), &fs); code != 200 || err != nil || len(fs.Hosts) != 1 {
		t.Fatalf("GET /api/fleet: %d %v %s", code, err, body)
	}
	self := fs.Hosts[0]
	if name, _ := os.Hostname(); !self.Self || !strings.HasPrefix(self.Name, name) || self.Version != "v9" || self.Weight == nil || *self.Weight != 250 ||
		!strings.Contains(self.State, "console-fleet running") {
		t.Fatalf("this process as the fleet: %+v", self)
	}
	c2, _ := adminOnSocketHandler(t, rollout.NewHandler(r, rollout.HandlerOptions{Fleet: brokenFleet{}}))
	if code, body := get(t, c2, "/api/fleet"); code != 200 || !strings.Contains(body, "listing the fleet's hosts: engine unreachable") {
		t.Fatalf("GET /api/fleet of a broken fleet: %d %s", code, body)
	}
}

// The status says which commands apply, with the reason the API gives for
// the others, and where each step stands: units, percentages, wait left;
// an analysis's verdict and measurement are kept with its decision.
func TestStatusViewProgressRefusalsAndMeasurements(t *testing.T) {
	e := newEnv(t)
	plan := rollout.Plan{ID: "console-view", Steps: []rollout.Step{
		rollout.Analyze(measuring{}, rollout.AnalysisOptions{Count: 2, Interval: time.Minute}).Named("check"),
		rollout.RampFlag(e.f, "f", rollout.RampOptions{Percentages: []float64{5, 50}, Interval: time.Minute}).Named("ramp"),
		rollout.Pause(10 * time.Minute).Named("bake"),
	}}
	r := e.rollout(plan, "")
	c, _ := adminOnSocket(t, r)
	wait, cancel := start(t, r)
	defer func() { cancel(); wait() }()
	st := waitFor(t, r, "interval wait", stepWaiting("check"))
	e.clock.Advance(20 * time.Second)
	code, body := get(t, c, "/api/status")
	var v rollout.StatusView
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil {
		t.Fatal(code, err, body)
	}
	check := v.Steps[0]
	if check.Units != 2 || check.UnitsDone != 1 || check.Unit != "measurement" || check.WaitLeftSeconds != 40 {
		t.Errorf("analysis step view: %+v", check)
	}
	if ramp := v.Steps[1]; ramp.Units != 2 || ramp.UnitsDone != 0 || len(ramp.Percentages) != 2 || ramp.Unit != "percentage" {
		t.Errorf("ramp step view: %+v", ramp)
	}
	if _, ok := v.Refusals[rollout.CmdPromote]; ok || v.Refusals[rollout.CmdResume] != "not paused" ||
		!strings.Contains(v.Refusals[rollout.CmdRetry], "only a rolled-back or failed rollout") {
		t.Errorf("refusals: %v", v.Refusals)
	}
	if code, body := post(t, c, "/api/resume", "application/json", ""); code != 409 || !strings.Contains(body, v.Refusals[rollout.CmdResume]) {
		t.Errorf("resume: %d %s, want the refusal the status gave", code, body)
	}
	d := st.Steps[0].Decisions[0]
	if d.Verdict != "pass" || d.Measurement == nil || d.Measurement.Canary.P99Seconds != 0.012 || !strings.Contains(d.Reason, "canary as good as stable") {
		t.Fatalf("analysis decision: %+v", d)
	}
	// Kept across a reload of the state.
	r2, err := rollout.New(context.Background(), plan, rollout.Options{Store: e.store, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	if d2 := r2.Status().Steps[0].Decisions[0]; d2.Measurement == nil || *d2.Measurement != *d.Measurement || d2.Verdict != "pass" {
		t.Fatalf("reloaded decision: %+v", d2)
	}
}

// rollout.Guard fronts another handler (a proxy of the admin API) with the
// API's own guard.
func TestGuardWrapsAnyHandler(t *testing.T) {
	h := rollout.Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), rollout.HandlerOptions{})
	for _, tc := range []struct {
		method, host, origin, ctype string
		code                        int
	}{
		{"GET", "127.0.0.1:8080", "", "", 200},
		{"GET", "localhost:8080", "http://localhost:8080", "", 200},
		{"GET", "attacker.example", "", "", 403},
		{"POST", "127.0.0.1:8080", "http://attacker.example", "application/json", 403},
		{"POST", "127.0.0.1:8080", "http://127.0.0.1:8081", "application/json", 403},
		{"POST", "127.0.0.1:8080", "http://127.0.0.1:8080", "text/plain", 415},
		{"POST", "127.0.0.1:8080", "http://127.0.0.1:8080", "application/json", 200},
	} {
		req, _ := http.NewRequest(tc.method, "http://x/", strings.NewReader("{}"))
		req.Host = tc.host
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != tc.code {
			t.Errorf("%s Host %q Origin %q %s: %d, want %d", tc.method, tc.host, tc.origin, tc.ctype, w.Code, tc.code)
		}
	}
}

// A long rollout's page stays small: the server renders the newest
// decisions only (the script lists them all).
func TestConsolePageBoundedWithManyDecisions(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(rollout.Plan{ID: "console-long", Steps: []rollout.Step{rollout.PauseUntilPromoted().Named("hold")}}, "")
	c, _ := adminOnSocket(t, r)
	ctx := context.Background()
	for range rollout.MaxDecisions / 2 {
		if err := r.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.Resume(ctx); err != nil {
			t.Fatal(err)
		}
	}
	code, page := get(t, c, "/")
	if code != 200 || len(page) >= 100<<10 || strings.Count(page, "<tr><td>") != 50 || !strings.Contains(page, "resumed by operator") {
		t.Fatalf("page of %d bytes with %d decision rows (code %d)", len(page), strings.Count(page, "<tr><td>"), code)
	}
}
