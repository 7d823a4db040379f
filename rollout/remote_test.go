package rollout_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
)

// fakeRemote is a rollout run elsewhere, as a test controls it.
type fakeRemote struct {
	mu      sync.Mutex
	v       rollout.StatusView
	err     error
	changed chan struct{}
	sent    []string
	refuse  string
}

func (f *fakeRemote) View(context.Context) (rollout.StatusView, <-chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.v, f.changed, f.err
}

func (f *fakeRemote) set(v rollout.StatusView, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.v, f.err = v, err
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeRemote) Command(_ context.Context, cmd, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, cmd+" "+reason)
	if f.refuse != "" {
		return &rollout.CommandError{Command: cmd, Reason: f.refuse}
	}
	f.v.Paused = cmd == rollout.CmdPause
	return nil
}

// TestRemoteHandler: NewRemoteHandler answers the Remote's view with its
// times counted again, returns a long poll at the Remote's change, sends
// commands and answers with the view after them, gives the runner's
// refusal as 409, no rollout as 404, a view it cannot read as 503, and
// refuses start.
func TestRemoteHandler(t *testing.T) {
	started := time.Now().Add(-time.Minute)
	f := &fakeRemote{changed: make(chan struct{}), err: rollout.ErrNoRollout}
	c, _ := adminOnSocketHandler(t, rollout.NewRemoteHandler(f, rollout.HandlerOptions{}))
	if code, body := get(t, c, "/api/status"); code != http.StatusNotFound || !strings.Contains(body, "no rollout") {
		t.Fatalf("no rollout: %d %s", code, body)
	}
	// A long poll that starts before the first view returns with it.
	polled := make(chan string, 1)
	go func() {
		_, body, err := doGet(c, "/api/status?wait=0&timeout=20s")
		if err != nil {
			body = err.Error()
		}
		polled <- body
	}()
	view := rollout.StatusView{Revision: 3, Status: rollout.Status{ID: "far", Phase: rollout.PhaseRunning}, Steps: []rollout.StepView{{
		StepState:  rollout.StepState{Name: "gate", Status: rollout.StepRunning, StartedAt: started},
		WaitEndsAt: time.Now().Add(time.Hour),
	}}}
	// Before or after the poll reads the first time, it answers this view.
	f.set(view, nil)
	var v rollout.StatusView
	if body := <-polled; json.Unmarshal([]byte(body), &v) != nil || v.ID != "far" {
		t.Fatalf("long poll: %s", body)
	}
	if v.Now.IsZero() || v.Steps[0].DurationSeconds < 59 || v.Steps[0].WaitLeftSeconds < 3500 {
		t.Fatalf("times not counted again: now %v, duration %v, left %v", v.Now, v.Steps[0].DurationSeconds, v.Steps[0].WaitLeftSeconds)
	}
	if code, body := post(t, c, "/api/pause", "application/json", ""); code != http.StatusOK || !strings.Contains(body, `"paused":true`) {
		t.Fatalf("pause: %d %s", code, body)
	}
	f.mu.Lock()
	f.refuse = "already paused"
	f.mu.Unlock()
	if code, body := post(t, c, "/api/pause", "application/json", ""); code != http.StatusConflict || !strings.Contains(body, "already paused") {
		t.Fatalf("refused pause: %d %s", code, body)
	}
	if code, body := post(t, c, "/api/abort", "application/json", `{"reason": "slow"}`); code != http.StatusConflict {
		t.Fatalf("abort: %d %s", code, body)
	}
	f.mu.Lock()
	sent := strings.Join(f.sent, "; ")
	f.mu.Unlock()
	if sent != "pause ; pause ; abort slow" {
		t.Fatalf("sent %q", sent)
	}
	if code, body := post(t, c, "/api/start", "application/json", `{"id":"r2","version":"v1","steps":[{"pause":{}}]}`); code != http.StatusNotFound || !strings.Contains(body, "another process") {
		t.Fatalf("start: %d %s", code, body)
	}
	f.set(rollout.StatusView{}, errors.New("engine unreachable"))
	if code, body := get(t, c, "/api/status"); code != http.StatusServiceUnavailable || !strings.Contains(body, "engine unreachable") {
		t.Fatalf("unreadable view: %d %s", code, body)
	}
	if code, body := get(t, c, "/"); code != http.StatusOK || !strings.Contains(body, "engine unreachable") {
		t.Fatalf("page with an unreadable view: %d %s", code, body)
	}
}
