package flags

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
