package rollout_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
)

func TestWebhookHooks(t *testing.T) {
	var confirmCalls atomic.Int32
	events := make(chan rollout.HookEvent, 16)
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /pre", func(w http.ResponseWriter, r *http.Request) {
		var ev rollout.HookEvent
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad event", 400)
			return
		}
		events <- ev
	})
	mux.HandleFunc("POST /confirm", func(w http.ResponseWriter, r *http.Request) {
		if confirmCalls.Add(1) < 3 {
			http.Error(w, "not yet: load test running", http.StatusConflict)
			return
		}
	})
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "smoke test failed: /checkout 502", http.StatusInternalServerError)
	})
	mux.HandleFunc("POST /slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	mux.HandleFunc("POST /rollback", func(w http.ResponseWriter, r *http.Request) {
		var ev rollout.HookEvent
		json.NewDecoder(r.Body).Decode(&ev)
		events <- ev
	})
	srv := httptest.NewServer(mux) // loopback only
	defer srv.Close()
	defer close(release)
	hook := func(path string, o rollout.WebhookOptions) rollout.HookFunc {
		h, err := rollout.Webhook(srv.URL+path, o)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	t.Run("pre, confirm and rollback notification", func(t *testing.T) {
		e := newEnv(t)
		r := e.rollout(rollout.Plan{ID: "webhooks", Steps: []rollout.Step{
			rollout.Hook(hook("/pre", rollout.WebhookOptions{}), rollout.HookOptions{
				Metadata: map[string]string{"team": "payments"}, OnRollback: hook("/rollback", rollout.WebhookOptions{}),
			}).Named("pre-rollout"),
			rollout.Hook(hook("/confirm", rollout.WebhookOptions{}), rollout.HookOptions{Confirm: true, Interval: time.Second}).Named("confirm-promotion"),
			rollout.Hook(hook("/fail", rollout.WebhookOptions{}), rollout.HookOptions{}).Named("post-rollout"),
		}}, "")
		wantErrIs(t, e.run(r, time.Second), rollout.ErrRolledBack)
		next := func(what string) rollout.HookEvent {
			select {
			case ev := <-events:
				return ev
			case <-time.After(runLimit):
				t.Fatalf("the webhook server never received the %s event", what)
				return rollout.HookEvent{}
			}
		}
		pre, rb := next("pre-rollout"), next("rollback")
		if pre.Step != "pre-rollout" || pre.Phase != "run" || pre.Metadata["team"] != "payments" || pre.Rollout != "webhooks" {
			t.Fatalf("pre event %+v", pre)
		}
		if rb.Phase != "rollback" || rb.Step != "pre-rollout" {
			t.Fatalf("rollback event %+v", rb)
		}
		if n := confirmCalls.Load(); n != 3 {
			t.Fatalf("confirm called %d times, want 3", n)
		}
		st := r.Status()
		if !strings.Contains(st.Reason, "500 Internal Server Error: smoke test failed: /checkout 502") {
			t.Fatalf("reason %q", st.Reason)
		}
		if !strings.Contains(decisions(st), "not confirmed yet") {
			t.Fatal(decisions(st))
		}
	})

	t.Run("timeout", func(t *testing.T) {
		e := newEnv(t)
		r := e.rollout(rollout.Plan{ID: "webhook-timeout", Steps: []rollout.Step{
			rollout.Hook(hook("/slow", rollout.WebhookOptions{Timeout: 50 * time.Millisecond}), rollout.HookOptions{}),
		}}, "")
		wantErrIs(t, runBounded(t, r), rollout.ErrRolledBack)
		if st := r.Status(); !strings.Contains(st.Reason, "deadline exceeded") {
			t.Fatalf("reason %q", st.Reason)
		}
	})

	t.Run("bad URLs", func(t *testing.T) {
		for _, u := range []string{"file:///etc/passwd", "ftp://x/y", "http://", "::"} {
			if _, err := rollout.Webhook(u, rollout.WebhookOptions{}); err == nil {
				t.Errorf("Webhook(%q) accepted", u)
			}
		}
	})
}

// A webhook's errors reach the state, /api/status and the HTML page:
// they must not carry the password of the URL.
func TestWebhookErrorsHideThePassword(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close() // nothing listens there any more
	const secret = "s3cr3t-t0ken"
	withPassword := func(base string) string { return strings.Replace(base, "http://", "http://deploy:"+secret+"@", 1) }
	for name, u := range map[string]string{
		"non-2xx answer":   withPassword(srv.URL) + "/hook",
		"connection error": withPassword(closedURL) + "/hook",
	} {
		t.Run(name, func(t *testing.T) {
			h, err := rollout.Webhook(u, rollout.WebhookOptions{})
			if err != nil {
				t.Fatal(err)
			}
			err = h(context.Background(), rollout.HookEvent{Step: "pre"})
			if err == nil {
				t.Fatal("the hook passed")
			}
			if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "deploy:xxxxx@") {
				t.Fatalf("error %q shows the password or does not name the webhook", err)
			}
		})
	}
	for _, u := range []string{"ftp://deploy:" + secret + "@host/x", "http://deploy:" + secret + "@host/%zz"} {
		_, err := rollout.Webhook(u, rollout.WebhookOptions{})
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("Webhook(bad URL) error %v: accepted or shows the password", err)
		}
	}
}

// A webhook's URL often carries its token in the path or the query; the
// token reaches neither the state, nor /api/status, nor the page.
func TestWebhookErrorsHideTokensInPathAndQuery(t *testing.T) {
	const pathToken, queryToken = "T0KENinThePATH123", "s3cr3tQUERYt0ken"
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A server that quotes the request in its error.
		http.Error(w, "bad hook "+r.URL.String(), http.StatusInternalServerError)
	}))
	defer echo.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	for name, base := range map[string]string{"non-2xx answer": echo.URL, "connection error": closedURL} {
		t.Run(name, func(t *testing.T) {
			h, err := rollout.Webhook(base+"/services/"+pathToken+"?token="+queryToken, rollout.WebhookOptions{})
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t)
			r := e.rollout(rollout.Plan{ID: "webhook-tokens", Steps: []rollout.Step{
				rollout.SetWeight(e.w, 100),
				rollout.Hook(h, rollout.HookOptions{}).Named("notify"),
			}}, "")
			wantErrIs(t, runBounded(t, r), rollout.ErrRolledBack)
			c, _ := adminOnSocket(t, r)
			_, status := get(t, c, "/api/status")
			_, page := get(t, c, "/")
			state, _ := json.Marshal(r.Status())
			for where, text := range map[string]string{"state": string(state), "/api/status": status, "page": page} {
				if strings.Contains(text, pathToken) || strings.Contains(text, queryToken) {
					t.Errorf("the %s shows the webhook's token:\n%s", where, text)
				}
			}
			if !strings.Contains(r.Status().Reason, "webhook http://127.0.0.1:") || !strings.Contains(r.Status().Reason, "/xxxxx?xxxxx") {
				t.Errorf("reason %q does not name the webhook by its host", r.Status().Reason)
			}
		})
	}
}
