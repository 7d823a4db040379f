package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/rollouttest"
)

// served runs a rollout that ramps a flag and holds at a pause, with its
// admin API on a Unix socket.
func served(t *testing.T, id string) (*rollout.Rollout, string) {
	t.Helper()
	store, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rec := &rollouttest.Recorder{}
	r, err := rollout.New(context.Background(), rollout.Plan{ID: id, Steps: []rollout.Step{
		rollout.SetWeight(&rollouttest.Weights{Recorder: rec}, 500),
		rollout.RampFlag(&rollouttest.Flags{Recorder: rec}, "f", rollout.RampOptions{Percentages: []float64{10, 50}}),
		rollout.PauseUntilPromoted().Named("hold"),
	}}, rollout.Options{Store: store, Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := rollout.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := rollout.ServeAdmin(ln, rollout.NewHandler(r, rollout.HandlerOptions{}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	waitWaiting(t, r, "hold")
	return r, sock
}

// The console of a socket-only admin API, proxied on loopback: the page
// and the API answer, a command from the page's origin is accepted, and a
// foreign Origin or Host is refused before anything reaches the socket.
func TestConsoleProxiesTheSocketOnLoopback(t *testing.T) {
	r, sock := served(t, "ctl-console")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- console(ctx, sock, "127.0.0.1:0", 5*time.Second, pw, &errb)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err, errb.String())
	}
	go io.Copy(io.Discard, pr)
	url := strings.Fields(strings.TrimPrefix(line, "console: "))[0]
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("console printed %q", line)
	}
	url = strings.TrimSuffix(url, "/")

	do := func(method, path, origin, host, body string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(method, url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if host != "" {
			req.Host = host
		}
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	c, hdr, body := do("GET", "/", "", "", "")
	if c != 200 || hdr.Get("Content-Security-Policy") != rollout.ConsoleCSP || !strings.Contains(body, "ctl-console") {
		t.Fatalf("GET / through the console: %d %v\n%s", c, hdr, body)
	}
	c, _, body = do("GET", "/api/status", "", "", "")
	var v rollout.StatusView
	if err := json.Unmarshal([]byte(body), &v); c != 200 || err != nil || v.ID != "ctl-console" || v.Refusals["resume"] != "not paused" {
		t.Fatalf("GET /api/status through the console: %d %v %s", c, err, body)
	}
	if c, _, body := do("POST", "/api/pause", url, "", ""); c != 200 {
		t.Fatalf("pause from the page's origin: %d %s", c, body)
	}
	if !r.Status().Paused {
		t.Fatal("the pause did not reach the rollout")
	}
	if c, _, body := do("POST", "/api/resume", "http://evil.example", "", ""); c != 403 || !strings.Contains(body, "Origin") {
		t.Fatalf("resume from another site: %d %s", c, body)
	}
	if c, _, body := do("GET", "/api/status", "", "evil.example", ""); c != 403 || !strings.Contains(body, "not loopback") {
		t.Fatalf("rebound Host: %d %s", c, body)
	}
	if !r.Status().Paused {
		t.Fatal("a refused request reached the rollout")
	}
	cancel()
	if n := <-code; n != 0 {
		t.Fatalf("console exited %d: %s", n, errb.String())
	}
	if n := run([]string{"-socket", sock, "-listen", "0.0.0.0:0", "console"}, io.Discard, &errb); n != 2 || !strings.Contains(errb.String(), "not a loopback address") {
		t.Fatalf("console on a non-loopback address: %d %s", n, errb.String())
	}
}

// watch draws a bar per step when asked (and on a terminal), and a line
// per step's progress otherwise; it ends with the rollout.
func TestWatchShowsProgressPerStep(t *testing.T) {
	for _, mode := range []string{"off", "on"} {
		t.Run("bars="+mode, func(t *testing.T) {
			r, sock := served(t, "ctl-watch-"+mode)
			type result struct {
				code int
				out  string
			}
			watched := make(chan result, 1)
			go func() {
				var out, errb bytes.Buffer
				code := run([]string{"-socket", sock, "-wait", "200ms", "-bars", mode, "watch"}, &out, &errb)
				watched <- result{code, out.String() + errb.String()}
			}()
			// Whether watch reads the state before or after the promote,
			// it shows every step's progress and ends with the rollout.
			if err := r.Promote(context.Background()); err != nil {
				t.Fatal(err)
			}
			res := <-watched
			if res.code != 0 || !strings.Contains(res.out, "rollout ctl-watch-"+mode+": succeeded") {
				t.Fatalf("watch %d:\n%s", res.code, res.out)
			}
			for _, want := range []string{"ramp-flag-f", "2/2 percentages", "[10%] [50%]", "hold"} {
				if !strings.Contains(res.out, want) {
					t.Errorf("watch output lacks %q:\n%s", want, res.out)
				}
			}
			if mode == "off" && !strings.Contains(res.out, "  step 2/3 ramp-flag-f: succeeded, 2/2 percentages, [10%] [50%]") {
				t.Errorf("watch -bars off lacks the step's line:\n%s", res.out)
			}
		})
	}
}
