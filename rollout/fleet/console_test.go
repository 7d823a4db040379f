package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
)

// consoleClient talks to one member's console.
type consoleClient struct {
	t   *testing.T
	url string
	c   *http.Client
}

func (c consoleClient) do(method, path, body string, host string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, b
}

func (c consoleClient) view(code int, b []byte) rollout.StatusView {
	c.t.Helper()
	if code != http.StatusOK {
		c.t.Fatalf("status %d: %s", code, b)
	}
	var v rollout.StatusView
	if err := json.Unmarshal(b, &v); err != nil {
		c.t.Fatalf("%v: %s", err, b)
	}
	return v
}

// await long-polls GET /api/status until cond holds.
func (c consoleClient) await(what string, cond func(v rollout.StatusView) bool) rollout.StatusView {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var rev int64
	for time.Now().Before(deadline) {
		code, b := c.do(http.MethodGet, fmt.Sprintf("/api/status?timeout=2s&wait=%d", rev), "", "")
		if code == http.StatusNotFound {
			continue // no rollout published yet: the wait timed out
		}
		v := c.view(code, b)
		if cond(v) {
			return v
		}
		rev = v.Revision
	}
	c.t.Fatalf("%s: not seen within 30s", what)
	return rollout.StatusView{}
}

// TestConsoleOnEveryMember: a member that does not drive serves the
// driver's rollout on its console (rollout.NewRemoteHandler over
// Member.Remote): the view the driver published, long polls that return
// at its changes, commands that reach the driver and answer with their
// effect, the driver's refusals, the pages, and the admin guard.
func TestConsoleOnEveryMember(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ns := namespace(t)
		a := join(t, b.open(t, b.addr), ns, "a", "v1")
		bm := join(t, b.open(t, b.addr), ns, "b", "v1")
		srv := httptest.NewServer(bm.Console(rollout.HandlerOptions{}))
		defer srv.Close()
		c := consoleClient{t: t, url: srv.URL, c: &http.Client{Timeout: 30 * time.Second}}
		defer c.c.CloseIdleConnections()

		if code, body := c.do(http.MethodGet, "/api/status", "", ""); code != http.StatusNotFound || !bytes.Contains(body, []byte("no rollout")) {
			t.Fatalf("before any rollout: %d %s", code, body)
		}
		drive, err := fleet.DriveRollout(fleet.RolloutOptions{
			Plan: func(l *fleet.Lead) (rollout.Plan, error) {
				return rollout.Plan{ID: "console", Steps: []rollout.Step{rollout.PauseUntilPromoted().Named("gate")}}, nil
			},
			Rollout: rollout.Options{Version: "v1"},
		})
		if err != nil {
			t.Fatal(err)
		}
		d, err := fleet.NewDriver(a, fleet.DriverOptions{Drive: drive})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); d.Run(ctx) }()
		defer func() { cancel(); <-done }()

		v := c.await("the gate waiting", func(v rollout.StatusView) bool {
			return v.ID == "console" && len(v.Steps) == 1 && v.Steps[0].Waiting
		})
		if v.Now.IsZero() || v.Steps[0].DurationSeconds <= 0 || v.Refusals["resume"] == "" {
			t.Errorf("the view lacks its times or refusals: now %v, duration %v, refusals %v", v.Now, v.Steps[0].DurationSeconds, v.Refusals)
		}
		// A command from b's console reaches the driver on a, and its
		// answer already shows the effect.
		if v := c.view(c.do(http.MethodPost, "/api/pause", "", "")); !v.Paused || v.Refusals["pause"] != "already paused" {
			t.Fatalf("after pause: paused %v, refusals %v", v.Paused, v.Refusals)
		}
		if code, body := c.do(http.MethodPost, "/api/pause", "", ""); code != http.StatusConflict || !bytes.Contains(body, []byte("already paused")) {
			t.Fatalf("second pause: %d %s, want the driver's refusal", code, body)
		}
		if v := c.view(c.do(http.MethodPost, "/api/resume", "", "")); v.Paused {
			t.Fatal("still paused after resume")
		}
		// The driver's own console shows the same rollout.
		asrv := httptest.NewServer(a.Console(rollout.HandlerOptions{}))
		defer asrv.Close()
		ac := consoleClient{t: t, url: asrv.URL, c: c.c}
		if v := ac.view(ac.do(http.MethodGet, "/api/status", "", "")); v.ID != "console" {
			t.Fatalf("the driver's console shows %q", v.ID)
		}
		for path, want := range map[string][]string{
			"/":      {"rollout <code>console</code>", "gate"},
			"/fleet": {"a on ", "b on "},
		} {
			code, body := c.do(http.MethodGet, path, "", "")
			for _, w := range want {
				if code != http.StatusOK || !bytes.Contains(body, []byte(w)) {
					t.Errorf("GET %s: %d, no %q in the page", path, code, w)
				}
			}
		}
		if code, _ := c.do(http.MethodPost, "/api/promote", "", "attacker.example"); code != http.StatusForbidden {
			t.Fatalf("a foreign Host got %d", code)
		}
		if code, body := c.do(http.MethodPost, "/api/start", "{}", ""); code == http.StatusOK {
			t.Fatalf("start on a member's console: %d %s", code, body)
		}
		if code, body := c.do(http.MethodPost, "/api/promote", "", ""); code != http.StatusOK {
			t.Fatalf("promote: %d %s", code, body)
		}
		v = c.await("the rollout to succeed", func(v rollout.StatusView) bool { return v.Phase == rollout.PhaseSucceeded })
		t.Logf("%s: b's console followed the rollout driven on a to %s at revision %d", b.name, v.Phase, v.Revision)
	})
}
