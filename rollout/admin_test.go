package rollout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
)

// adminClient talks to an admin server on a real Unix socket.
func adminOnSocket(t *testing.T, r *rollout.Rollout) (*http.Client, string) {
	t.Helper()
	return adminOnSocketHandler(t, rollout.NewHandler(r, rollout.HandlerOptions{}))
}

// adminOnSocketHandler serves h on a real Unix socket.
func adminOnSocketHandler(t *testing.T, h http.Handler) (*http.Client, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := rollout.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := rollout.ServeAdmin(ln, h)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		srv.Close()
	})
	return &http.Client{Transport: tr}, sock
}

func post(t *testing.T, c *http.Client, path, ctype, body string) (int, string) {
	t.Helper()
	code, b, err := doPost(c, path, ctype, body)
	if err != nil {
		t.Fatal(err)
	}
	return code, b
}

// doPost is post for goroutines other than the test's: it returns the
// error instead of failing the test (FailNow must run on the test
// goroutine).
func doPost(c *http.Client, path, ctype, body string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, "http://admin"+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("POST %s: reading the answer: %w", path, err)
	}
	return resp.StatusCode, string(b), nil
}

func get(t *testing.T, c *http.Client, path string) (int, string) {
	t.Helper()
	code, body, err := doGet(c, path)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

// doGet is get for goroutines other than the test's.
func doGet(c *http.Client, path string) (int, string, error) {
	resp, err := c.Get("http://admin" + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestAdminBadInputGets4xxWithReason(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(rollout.Plan{ID: "admin-bad", Steps: []rollout.Step{rollout.SetWeight(e.w, 100)}}, "")
	c, _ := adminOnSocket(t, r)
	const js = "application/json"
	cases := []struct {
		method, path, ctype, body string
		code                      int
		reason                    string
	}{
		{"POST", "/api/explode", js, "", 404, `unknown command \"explode\"`},
		{"POST", "/api/pause", "", "", 415, "Content-Type: application/json"},
		{"POST", "/api/pause", "text/plain", "", 415, "Content-Type: application/json"},
		{"POST", "/api/abort", js, "{not json", 400, "body:"},
		{"POST", "/api/abort", js, `{"reason":"x","force":true}`, 400, `unknown field \"force\"`},
		{"POST", "/api/abort", js, `{"reason":"x"} {}`, 400, "more than one JSON value"},
		{"POST", "/api/promote", js, `{"reason":"x"}`, 400, "promote takes no reason"},
		{"POST", "/api/abort", js, `{"reason":"` + strings.Repeat("x", 5000) + `"}`, 413, "larger than 4096"},
		{"POST", "/api/promote", js, "", 409, "no step is waiting for promotion"},
		{"POST", "/api/resume", js, "", 409, "not paused"},
		{"POST", "/api/retry", js, "", 409, "only a rolled-back or failed rollout can be retried"},
		{"GET", "/api/nothing", "", "", 404, "no such endpoint GET /api/nothing"},
		{"DELETE", "/api/status", "", "", 405, "status is read with GET"},
		{"GET", "/api/promote", "", "", 405, "commands are sent with POST"},
	}
	for _, tc := range cases {
		var code int
		var body string
		switch tc.method {
		case "POST":
			code, body = post(t, c, tc.path, tc.ctype, tc.body)
		case "GET":
			code, body = get(t, c, tc.path)
		default:
			req, _ := http.NewRequest(tc.method, "http://admin"+tc.path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code, body = resp.StatusCode, string(b)
		}
		if code != tc.code || !strings.Contains(body, tc.reason) {
			t.Errorf("%s %s %q: got %d %s, want %d with %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.reason)
		}
	}
	// Nothing was lost: the rollout is still pending and runs.
	if err := runBounded(t, r); err != nil {
		t.Fatal(err)
	}
}

// Concurrent admin calls are serialized: of many simultaneous aborts
// exactly one is accepted, the others are refused with the reason, and
// the state records one abort.
func TestAdminConcurrentCallsSerialized(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(rollout.Plan{ID: "admin-race", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100),
		rollout.PauseUntilPromoted().Named("hold"),
	}}, "")
	c, _ := adminOnSocket(t, r)
	wait, _ := start(t, r)
	waitFor(t, r, "hold waiting", stepWaiting("hold"))
	const n = 16
	codes := make([]int, n)
	bodies := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	begin := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-begin
			cmd := "pause"
			if i%2 == 0 {
				cmd = "abort"
			}
			codes[i], bodies[i], errs[i] = doPost(c, "/api/"+cmd, "application/json", "")
		}()
	}
	close(begin)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	okAbort, okPause := 0, 0
	for i := range n {
		switch {
		case codes[i] == 200 && i%2 == 0:
			okAbort++
		case codes[i] == 200:
			okPause++
		case codes[i] != 409:
			t.Errorf("call %d: %d %s", i, codes[i], bodies[i])
		}
	}
	if okAbort != 1 || okPause > 1 {
		t.Fatalf("accepted %d aborts and %d pauses; want 1 and at most 1", okAbort, okPause)
	}
	wantErrIs(t, wait(), rollout.ErrRolledBack)
	if strings.Count(decisions(r.Status()), "abort requested by operator") != 1 {
		t.Fatal(decisions(r.Status()))
	}
}

func TestAdminStatusPromoteAndPage(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(rollout.Plan{ID: "admin-ok", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100),
		rollout.PauseUntilPromoted().Named("hold"),
		rollout.SetWeight(e.w, 200),
		rollout.PauseUntilPromoted().Named("hold2"),
	}}, "")
	c, _ := adminOnSocket(t, r)
	wait, _ := start(t, r)
	waitFor(t, r, "hold waiting", stepWaiting("hold"))
	code, body := get(t, c, "/api/status")
	if code != 200 {
		t.Fatal(code, body)
	}
	var v rollout.StatusView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if v.ID != "admin-ok" || len(v.Steps) != 4 || v.Steps[0].Status != rollout.StepSucceeded || !v.Steps[1].Waiting ||
		v.Steps[0].StartedAt.IsZero() || len(v.Steps[0].Decisions) == 0 {
		t.Fatalf("status: %s", body)
	}
	if code, body := post(t, c, "/api/promote", "application/json", ""); code != 200 {
		t.Fatal(code, body)
	}
	waitFor(t, r, "hold2 waiting", stepWaiting("hold2"))
	// The page escapes what operators typed.
	if code, body := post(t, c, "/api/abort", "application/json", `{"reason":"<script>alert(1)</script>"}`); code != 200 {
		t.Fatal(code, body)
	}
	wantErrIs(t, wait(), rollout.ErrRolledBack)
	code, page := get(t, c, "/")
	if code != 200 || strings.Contains(page, "<script>alert") || !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatalf("page %d:\n%s", code, page)
	}
	if !strings.Contains(page, "rolled-back") || !strings.Contains(page, "promoted by operator") {
		t.Fatalf("page lacks the state:\n%s", page)
	}
}

func TestListenUnixMode0600AndLoopbackOnly(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "a.sock")
	ln, err := rollout.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket mode %v", fi.Mode())
	}
	// A second listener does not steal the socket of a live one.
	if ln2, err := rollout.ListenUnix(sock); err == nil {
		ln2.Close()
		t.Fatal("a second listener took a live admin socket")
	}
	ln.Close()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left after Close: %v", err)
	}
	plain := filepath.Join(dir, "file")
	os.WriteFile(plain, nil, 0o600)
	if _, err := rollout.ListenUnix(plain); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: %v", err)
	}
	for _, bad := range []string{"0.0.0.0:0", "192.0.2.1:0", ":0", "example.com:80"} {
		if l, err := rollout.ListenLoopback(bad); err == nil {
			l.Close()
			t.Errorf("ListenLoopback(%q) accepted", bad)
		}
	}
	l, err := rollout.ListenLoopback("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// After DNS rebinding a web page is same-origin with a loopback listener,
// so the JSON content type alone does not keep it out: the admin API
// must refuse a foreign Host, and a foreign Origin.
func TestAdminRefusesForeignHostAndOrigin(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(rollout.Plan{ID: "admin-guard", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100),
		rollout.PauseUntilPromoted().Named("hold"),
		rollout.Analyze(e.a, rollout.AnalysisOptions{}).Named("check"),
	}}, "")
	ln, err := rollout.ListenLoopback("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rollout.ServeAdmin(ln, rollout.NewHandler(r, rollout.HandlerOptions{AllowedHosts: []string{"rollout.internal"}}))
	defer srv.Close()
	wait, _ := start(t, r)
	waitFor(t, r, "hold waiting", stepWaiting("hold"))
	addr := ln.Addr().String()
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	do := func(method, path, host, origin string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		method, path, host, origin string
		code                       int
		msg                        string
	}{
		{"GET", "/api/status", "attacker.example", "", 403, "DNS rebinding"},
		{"GET", "/", "attacker.example:" + ln.Addr().(*net.TCPAddr).AddrPort().String(), "", 403, "not loopback"},
		{"POST", "/api/promote-full", "attacker.example", "http://attacker.example", 403, "DNS rebinding"},
		{"POST", "/api/promote-full", addr, "http://attacker.example", 403, `Origin \"http://attacker.example\"`},
		{"POST", "/api/promote-full", addr, "null", 403, "Origin"},
		{"POST", "/api/promote-full", addr, "http://127.0.0.1:1", 403, "Origin"}, // another local port
		{"GET", "/api/status", "other.internal", "", 403, "HandlerOptions.AllowedHosts"},
		{"GET", "/api/status", addr, "http://" + addr, 200, `"id":"admin-guard"`},
		{"GET", "/api/status", "rollout.internal", "", 200, `"id":"admin-guard"`},
	} {
		code, body := do(tc.method, tc.path, tc.host, tc.origin)
		if code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("%s %s Host %q Origin %q: %d %s; want %d with %q", tc.method, tc.path, tc.host, tc.origin, code, body, tc.code, tc.msg)
		}
	}
	if st := r.Status(); st.PromoteFull || !stepWaiting("hold")(st) {
		t.Fatalf("a refused request changed the rollout: promoteFull %v, %+v", st.PromoteFull, st.Steps[1])
	}
	// The API's own page may command it.
	if code, body := do("POST", "/api/promote", addr, "http://"+addr); code != 200 {
		t.Fatalf("promote from the API's own origin: %d %s", code, body)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}
