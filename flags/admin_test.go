package flags

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestAdmin(t *testing.T) {
	var logs syncBuf
	s, _ := newStore(t, Config{Flags: map[string]Flag{
		"checkout": {Variants: onOff, Default: "off", Rules: []Rule{{If: &Condition{Attr: "plan", Op: OpEquals, Value: "pro"}, Serve: Serve{Variant: "on"}}}},
	}})
	srv := httptest.NewServer(NewAdminHandler(s, AdminOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	defer srv.Close()
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if method != "GET" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	s.Bool("checkout", EvalContext{TargetingKey: "u", Attributes: map[string]any{"plan": "pro"}}, false)

	code, body := do("GET", "/flags", "")
	var list struct {
		Version uint64       `json:"version"`
		Flags   []FlagStatus `json:"flags"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || code != 200 {
		t.Fatalf("list: %d %s %v", code, body, err)
	}
	if len(list.Flags) != 1 || list.Flags[0].Evaluations != 1 || list.Flags[0].ByVariant["on"] != 1 || list.Flags[0].LastEvaluated.IsZero() {
		t.Errorf("list: %+v", list)
	}

	if code, body = do("POST", "/flags/checkout/disable", ""); code != 200 || !strings.Contains(body, `"disabled": true`) {
		t.Errorf("disable: %d %s", code, body)
	}
	if d := s.BoolDetail("checkout", EvalContext{Attributes: map[string]any{"plan": "pro"}}, true); d.Reason != ReasonDisabled {
		t.Errorf("not disabled: %+v", d)
	}
	if code, _ = do("POST", "/flags/checkout/enable", ""); code != 200 {
		t.Errorf("enable: %d", code)
	}
	if code, body = do("PUT", "/flags/checkout/percent", `{"variant":"on","percent":100}`); code != 200 || !strings.Contains(body, `"percent": 100`) {
		t.Errorf("percent: %d %s", code, body)
	}
	if d := s.BoolDetail("checkout", EvalContext{TargetingKey: "u"}, false); !d.Value || d.Reason != ReasonSplit {
		t.Errorf("percent not applied: %+v", d)
	}
	if code, body = do("DELETE", "/flags/checkout/override", ""); code != 200 || !strings.Contains(body, `"overridden": false`) {
		t.Errorf("clear: %d %s", code, body)
	}

	for _, tc := range []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"PUT", "/flags/checkout/percent", `{"variant":"on","percent":150}`, 400, "outside [0, 100]"},
		{"PUT", "/flags/checkout/percent", `{"variant":"nope","percent":5}`, 400, `unknown variant \"nope\"`},
		{"PUT", "/flags/checkout/percent", `{"variant":"off","percent":5}`, 400, "is the default"},
		{"PUT", "/flags/checkout/percent", `{"variant":"on"}`, 400, "required"},
		{"PUT", "/flags/checkout/percent", `{"variant":"on","percent":5,"x":1}`, 400, "unknown field"},
		{"PUT", "/flags/checkout/percent", `{"variant":"on","percent":5} {}`, 400, "trailing data"},
		{"PUT", "/flags/checkout/percent", `not json`, 400, "invalid character"},
		{"PUT", "/flags/missing/percent", `{"variant":"on","percent":5}`, 404, "not found"},
		{"POST", "/flags/missing/disable", ``, 404, "not found"},
		{"GET", "/flags/missing", ``, 404, "not found"},
		{"GET", "/stale?after=soon", ``, 400, "positive duration"},
		{"GET", "/flags/checkout/disable", ``, 405, ""},
	} {
		code, body := do(tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("%s %s %s: %d %s; want %d %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.msg)
		}
	}
	if s.Status("checkout").Overridden {
		t.Error("a refused request changed the flag")
	}
	if code, body = do("GET", "/stale?after=1d", ""); code != 200 || body != "[]\n" {
		t.Errorf("stale: %d %s", code, body)
	}
	for _, action := range []string{"action=disable", "action=enable", "action=percent", `action="clear override"`} {
		if !strings.Contains(logs.String(), action) {
			t.Errorf("change %s not logged:\n%s", action, logs.String())
		}
	}
}

// TestAdminRefusesBrowsers checks the two guards against a browser on the
// operator's machine: a cross-site form (no JSON content type) and DNS
// rebinding (a foreign Host header on a loopback connection).
func TestAdminRefusesBrowsers(t *testing.T) {
	s, _ := newStore(t, Config{Flags: map[string]Flag{"checkout": {Variants: onOff, Default: "off"}}})
	do := func(h http.Handler, network, method, path, host, ctype string) (int, string) {
		t.Helper()
		srv := httptest.NewUnstartedServer(h)
		if network == "unix" {
			ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "admin.sock"))
			if err != nil {
				t.Fatal(err)
			}
			srv.Listener.Close()
			srv.Listener = ln
		}
		srv.Start()
		defer srv.Close()
		client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, srv.Listener.Addr().String())
		}}}
		defer client.CloseIdleConnections()
		req, err := http.NewRequest(method, "http://127.0.0.1"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const js = "application/json"
	def := NewAdminHandler(s, AdminOptions{})
	for _, tc := range []struct {
		h                                  http.Handler
		network, method, path, host, ctype string
		code                               int
		msg                                string
	}{
		{def, "tcp", "POST", "/flags/checkout/disable", "127.0.0.1:8081", "", 415, "needs Content-Type: application/json"},
		{def, "tcp", "POST", "/flags/checkout/disable", "127.0.0.1:8081", "text/plain", 415, `got \"text/plain\"`},
		{def, "tcp", "DELETE", "/flags/checkout/override", "localhost", "application/x-www-form-urlencoded", 415, "Content-Type"},
		{def, "tcp", "PUT", "/flags/checkout/percent", "localhost", "multipart/form-data; boundary=x", 415, "Content-Type"},
		{def, "tcp", "GET", "/flags", "attacker.example:8081", "", 403, `Host \"attacker.example:8081\" is not loopback`},
		{def, "tcp", "POST", "/flags/checkout/disable", "attacker.example", js, 403, "DNS rebinding"},
		{def, "tcp", "GET", "/flags", "127.0.0.1.attacker.example", "", 403, "not loopback"},
		{def, "tcp", "GET", "/flags", "127.0.0.1:8081", "", 200, "checkout"},
		{def, "tcp", "GET", "/flags", "127.9.9.9", "", 200, "checkout"},
		{def, "tcp", "GET", "/flags", "[::1]:8081", "", 200, "checkout"},
		{def, "tcp", "GET", "/flags", "LocalHost:8081", "", 200, "checkout"},
		{def, "tcp", "POST", "/flags/checkout/disable", "localhost:8081", "application/json; charset=utf-8", 200, `"disabled": true`},
		{def, "unix", "POST", "/flags/checkout/enable", "anything.example", js, 200, `"disabled": false`},
		{def, "unix", "POST", "/flags/checkout/enable", "anything.example", "", 415, "Content-Type"},
		{NewAdminHandler(s, AdminOptions{AllowedHosts: []string{"Flags.Internal"}}), "tcp", "GET", "/flags", "flags.internal:80", "", 200, "checkout"},
		{NewAdminHandler(s, AdminOptions{AllowedHosts: []string{"flags.internal"}}), "tcp", "GET", "/flags", "other.internal", "", 403, "AllowedHosts"},
		{NewAdminHandler(s, AdminOptions{AllowedHosts: []string{"*"}}), "tcp", "GET", "/flags", "other.internal", "", 200, "checkout"},
	} {
		code, body := do(tc.h, tc.network, tc.method, tc.path, tc.host, tc.ctype)
		if code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("%s %s %s Host %q Content-Type %q: %d %s; want %d %q", tc.network, tc.method, tc.path, tc.host, tc.ctype, code, body, tc.code, tc.msg)
		}
	}
	if st := s.Status("checkout"); st.Disabled {
		t.Error("flag left disabled")
	}
}
