package graceful_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/batonhq/baton/graceful"
)

// A service on graceful: it listens, serves, announces itself with Ready and
// lives in Run, where SIGHUP would upgrade it and SIGTERM drain it. Here
// Shutdown drains it, as SIGTERM does, and Run returns.
func ExampleUpgrader() {
	ctx := context.Background()
	u, err := graceful.New(graceful.Options{
		BakeWindow: 30 * time.Second,
		Check:      func(ctx context.Context) error { return nil }, // e.g. db.PingContext
	})
	if err != nil {
		panic(err)
	}
	defer u.Close()
	ln, err := u.Listen(ctx, "tcp", "127.0.0.1:0") // inherited after an upgrade
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/healthz/", u.Health())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })
	srv := &http.Server{Handler: mux}
	u.HTTP(srv)
	go srv.Serve(ln) // accepts only once Ready succeeded
	fmt.Println(u.State())
	if err := u.Ready(ctx); err != nil {
		os.Exit(1) // the old process, if any, keeps serving
	}
	fmt.Println(u.State())

	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(string(body))

	ran := make(chan error, 1)
	go func() { ran <- u.Run(ctx) }()
	if err := u.Shutdown(ctx); err != nil {
		panic(err)
	}
	fmt.Println("Run:", <-ran, u.State())
	// Output:
	// starting
	// ready
	// hello
	// Run: <nil> stopped
}

// A long-lived handler (server-sent events, a WebSocket) finishes when the
// process drains: it tells the client to reconnect, which then lands on
// the new process, and the drain does not wait for its deadline.
func ExampleDraining() {
	ctx := context.Background()
	u, err := graceful.New(graceful.Options{DrainTimeout: 20 * time.Second})
	if err != nil {
		panic(err)
	}
	defer u.Close()
	ln, err := u.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	events := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: hello\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-graceful.Draining(r.Context()):
			fmt.Fprint(w, "event: reconnect\n\n")
		case <-r.Context().Done():
		}
	})
	srv := &http.Server{Handler: events}
	u.HTTP(srv)
	go srv.Serve(ln)
	if err := u.Ready(ctx); err != nil {
		panic(err)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	lines.Scan()
	fmt.Println(lines.Text())
	drained := make(chan error, 1)
	go func() { drained <- u.Shutdown(ctx) }()
	for lines.Scan() {
		if lines.Text() != "" {
			fmt.Println(lines.Text())
		}
	}
	fmt.Println("drained:", <-drained)
	// Output:
	// data: hello
	// event: reconnect
	// drained: <nil>
}

// The readiness probe follows the lifecycle.
func ExampleUpgrader_Health() {
	u, err := graceful.New(graceful.Options{})
	if err != nil {
		panic(err)
	}
	defer u.Close()
	h := u.Health()
	probe := func(path string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		fmt.Printf("%s %d %s", path, rec.Code, rec.Body)
	}
	probe("/healthz/readyz")
	probe("/healthz/livez")
	_ = u.Ready(context.Background())
	probe("/healthz/readyz")
	_ = u.Shutdown(context.Background())
	probe("/healthz/readyz")
	// Output:
	// /healthz/readyz 503 starting
	// /healthz/livez 200 starting
	// /healthz/readyz 200 ready
	// /healthz/readyz 503 stopped
}
