package canary_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
)

func TestServeHTTPOutcomes(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/404", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	mux.HandleFunc("/503", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	mux.HandleFunc("/panic-late", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic("late boom")
	})
	s := newSplitter(t, canary.Options{Stable: mux, Canary: mux, Weight: 10000})
	srv := httptest.NewServer(s)
	defer srv.Close()
	get := func(path string) (int, error) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		return resp.StatusCode, err
	}
	for path, want := range map[string]int{"/ok": 200, "/404": 404, "/503": 503, "/panic": 500} {
		if got, err := get(path); err != nil || got != want {
			t.Errorf("%s: %d %v, want %d", path, got, err, want)
		}
	}
	// A panic after the header was sent aborts the response: the client
	// sees a broken body, not a complete one.
	if _, err := get("/panic-late"); err == nil {
		t.Error("/panic-late: the client got a complete response")
	}
	n, e := s.Metrics().Totals(canary.Canary)
	if n != 5 || e != 3 {
		t.Errorf("canary totals %d requests, %d errors; want 5, 3 (503 and two panics)", n, e)
	}
}

func TestRecorderPassesThroughFlushAndHijack(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush through ResponseController: %v", err)
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			t.Error("no Hijacker")
			return
		}
		conn, brw, err := hj.Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		brw.WriteString("raw\n")
		brw.Flush()
	})
	s := newSplitter(t, canary.Options{Stable: h, Canary: h})
	// The client sees the hijacked connection close before the splitter
	// records the request: wait for ServeHTTP to return.
	returned := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r)
		close(returned)
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	r := bufio.NewReader(conn)
	var lines []string
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			break
		}
		lines = append(lines, l)
	}
	if len(lines) == 0 || lines[len(lines)-1] != "raw\n" {
		t.Fatalf("hijacked connection said %q", lines)
	}
	await(t, returned, "the handler to return")
	if n, e := s.Metrics().Totals(canary.Stable); n != 1 || e != 0 {
		t.Fatalf("hijacked request: %d requests, %d errors", n, e)
	}
}

func TestMirror(t *testing.T) {
	var mu sync.Mutex
	var got []string
	mirrored := make(chan struct{}, 10)
	cnry := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+string(b)+" "+r.Header.Get(canary.DefaultMirrorHeader))
		mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError) // discarded
		mirrored <- struct{}{}
	})
	stable := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "stable:"+string(b))
	})
	s := newSplitter(t, canary.Options{Stable: stable, Canary: cnry,
		Mirror: &canary.MirrorOptions{MaxBody: 16}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	post := func(body string) string {
		resp, err := http.Post(srv.URL+"/p", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("real response %d", resp.StatusCode)
		}
		return string(b)
	}
	if r := post("hello"); r != "stable:hello" {
		t.Fatalf("real response %q", r)
	}
	await(t, mirrored, "the mirrored copy")
	// Too large a body: the real request is served, the copy skipped.
	if r := post(strings.Repeat("x", 17)); r != "stable:"+strings.Repeat("x", 17) {
		t.Fatalf("real response %q", r)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "POST /p hello 1" {
		t.Fatalf("canary saw %q", got)
	}
	st := s.MirrorStats()
	if st.Sent != 1 || st.Skipped != 1 || st.Dropped != 0 {
		t.Fatalf("mirror stats %+v", st)
	}
	if n, e := s.Metrics().Totals(canary.Mirror); n != 1 || e != 1 {
		t.Fatalf("mirror totals %d/%d", n, e)
	}
	if n, _ := s.Metrics().Totals(canary.Canary); n != 0 {
		t.Fatalf("mirrored traffic counted as canary traffic: %d", n)
	}
}

// TestMirrorNeverBlocks fills every mirror slot with a canary that hangs:
// real requests still complete, the extra copies are dropped, and Close
// cancels the hung copies.
func TestMirrorNeverBlocks(t *testing.T) {
	started := make(chan struct{}, 4)
	cnry := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
	})
	s, err := canary.New(canary.Options{Stable: okHandler, Canary: cnry,
		Mirror: &canary.MirrorOptions{MaxConcurrent: 2, Timeout: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != 200 {
			t.Fatalf("request %d: %d", i, rec.Code)
		}
	}
	await(t, started, "the first blocked mirror copy to start")
	await(t, started, "the second blocked mirror copy to start")
	st := s.MirrorStats()
	if st.Sent != 2 || st.Dropped != 8 {
		t.Fatalf("mirror stats %+v, want 2 sent and 8 dropped", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with hung copies = %v", err)
	}
	s.Close() // waits for the canceled copies
	s.Close()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || s.MirrorStats().Sent != 2 {
		t.Fatal("after Close: routing broken or still mirroring")
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	u, err := canary.NewUpstream(canary.UpstreamOptions{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	s := newSplitter(t, canary.Options{Stable: okHandler, Canary: u, Weight: 10000})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", rec.Code)
	}
	if _, e := s.Metrics().Totals(canary.Canary); e != 1 {
		t.Fatal("unreachable upstream not counted as an error")
	}
	for _, bad := range []string{"", "nohostport", "unix:"} {
		if _, err := canary.NewUpstream(canary.UpstreamOptions{Address: bad}); !errors.Is(err, canary.ErrInvalidOptions) {
			t.Errorf("address %q: %v", bad, err)
		}
	}
}

// TestMirrorHeaderNotSpoofable sends real requests carrying the mirror
// header: neither variant may see it (the canary would take them for
// copies and skip their side effects), while true copies still carry it.
func TestMirrorHeaderNotSpoofable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mirror *canary.MirrorOptions
		header string
	}{
		{"no mirroring", nil, canary.DefaultMirrorHeader},
		{"mirroring", &canary.MirrorOptions{}, canary.DefaultMirrorHeader},
		{"custom header", &canary.MirrorOptions{Header: "x-shadow"}, "X-Shadow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			seen := map[string]string{}
			copies := make(chan string, 4)
			handler := func(name string) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if name == "canary" && r.Header.Get("X-Canary") == "never" {
						// The copy of the request forced to stable.
						copies <- r.Header.Get(tc.header)
						return
					}
					mu.Lock()
					seen[name+" "+r.Header.Get("X-Canary")] = r.Header.Get(tc.header)
					mu.Unlock()
				})
			}
			s := newSplitter(t, canary.Options{Stable: handler("stable"), Canary: handler("canary"), Mirror: tc.mirror})
			for _, force := range []string{"always", "never"} {
				req := httptest.NewRequest("GET", "/pay", nil)
				req.Header.Set(tc.header, "1")
				req.Header.Set("X-Canary", force)
				s.ServeHTTP(httptest.NewRecorder(), req)
			}
			if tc.mirror != nil {
				select {
				case got := <-copies:
					if got != "1" {
						t.Fatalf("mirrored copy carries %q, want 1", got)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("no mirrored copy reached the canary within 10s")
				}
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for k, v := range seen {
				if v != "" {
					t.Errorf("%s: real request reached the target with %s: %q", k, tc.header, v)
				}
			}
			if len(seen) != 2 {
				t.Fatalf("targets saw %v, want the canary and the stable request", seen)
			}
		})
	}
}

// TestClientCancelNotCountedAsError proxies to a real upstream that is
// still working when the client hangs up: the 502 the proxy answers then
// must not count as the canary's error (a false rollback in the making).
func TestClientCancelNotCountedAsError(t *testing.T) {
	started := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done() // the proxy drops the connection when the client goes away
	}))
	defer up.Close()
	u, err := canary.NewUpstream(canary.UpstreamOptions{Address: up.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	s := newSplitter(t, canary.Options{Stable: okHandler, Canary: u, Weight: canary.MaxWeight})
	served := make(chan struct{})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(served)
		s.ServeHTTP(w, r)
	}))
	defer front.Close()

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+"/slow", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	await(t, started, "the upstream to start working")
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v, want context.Canceled", err)
	}
	await(t, served, "the upstream to finish")
	if n, e := s.Metrics().Totals(canary.Canary); n != 0 || e != 0 {
		t.Fatalf("canary totals %d requests / %d errors after a client hang-up, want 0/0", n, e)
	}
	if c := s.Metrics().Canceled(canary.Canary); c != 1 {
		t.Fatalf("Canceled(canary) = %d, want 1", c)
	}
	if w := s.Metrics().Snapshot().Current(); w.Of(canary.Canary).Requests != 0 {
		t.Fatalf("hang-up in the analysis window: %+v", w.Of(canary.Canary).Requests)
	}

	// An upstream that fails while the client waits still counts.
	up.Close()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if _, e := s.Metrics().Totals(canary.Canary); rec.Code != http.StatusBadGateway || e != 1 {
		t.Fatalf("unreachable upstream: status %d, errors %d; want 502 and 1", rec.Code, e)
	}
}
