package adminnet_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/batonhq/baton/internal/adminnet"
)

func TestGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "served") })
	def := adminnet.Guard(ok, adminnet.GuardOptions{Option: "Opts.AllowedHosts"})
	named := adminnet.Guard(ok, adminnet.GuardOptions{AllowedHosts: []string{"Admin.Internal"}})
	for _, tc := range []struct {
		h                           http.Handler
		method, host, origin, ctype string
		code                        int
		msg                         string
	}{
		{def, "GET", "127.0.0.1:8081", "", "", 200, "served"},
		{def, "GET", "[::1]:8081", "", "", 200, "served"},
		{def, "GET", "LocalHost.", "", "", 200, "served"},
		{def, "GET", "", "", "", 200, "served"},
		{def, "GET", "attacker.example", "", "", 403, "Opts.AllowedHosts (a guard against DNS rebinding)"},
		{def, "GET", "127.0.0.1.attacker.example", "", "", 403, "not loopback"},
		{def, "POST", "127.0.0.1:8081", "http://127.0.0.1:8081", "application/json", 200, "served"},
		{def, "POST", "127.0.0.1:8081", "http://attacker.example", "application/json", 403, "Origin"},
		{def, "POST", "127.0.0.1:8081", "http://127.0.0.1:9999", "application/json", 403, "Origin"},
		{def, "POST", "127.0.0.1:8081", "null", "application/json", 403, "Origin"},
		{def, "POST", "127.0.0.1:8081", "", "", 415, "needs Content-Type: application/json"},
		{def, "POST", "127.0.0.1:8081", "", "text/plain", 415, `got \"text/plain\"`},
		{def, "PUT", "127.0.0.1:8081", "", "multipart/form-data; boundary=x", 415, "Content-Type"},
		{def, "DELETE", "127.0.0.1:8081", "", "", 200, "served"},
		{named, "GET", "admin.internal:80", "", "", 200, "served"},
		{named, "POST", "admin.internal", "http://admin.internal", "application/json", 200, "served"},
		{named, "GET", "other.internal", "", "", 403, "the allowed hosts"},
	} {
		req := httptest.NewRequest(tc.method, "http://x/api", nil)
		req.Host = tc.host
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		w := httptest.NewRecorder()
		tc.h.ServeHTTP(w, req)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.msg) {
			t.Errorf("%s Host %q Origin %q Content-Type %q: %d %s; want %d with %q", tc.method, tc.host, tc.origin, tc.ctype, w.Code, w.Body, tc.code, tc.msg)
		}
		if w.Code != 200 && (w.Header().Get("Content-Type") != "application/json" || !strings.HasPrefix(w.Body.String(), `{"error":`)) {
			t.Errorf("refusal is not a JSON error: %q %s", w.Header().Get("Content-Type"), w.Body)
		}
	}
}
