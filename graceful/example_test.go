package graceful_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/batonhq/baton/graceful"
)

// A service that upgrades on SIGHUP with a 30 s bake window and drains on
// SIGTERM. (Not run: Run blocks until the process is told to stop.)
func ExampleUpgrader() {
	ctx := context.Background()
	u, err := graceful.New(graceful.Options{
		BakeWindow: 30 * time.Second,
		DrainDelay: 5 * time.Second,
		Check:      func(ctx context.Context) error { return nil }, // e.g. db.PingContext
		Logger:     slog.New(slog.NewJSONHandler(os.Stderr, nil)),
	})
	if err != nil {
		panic(err)
	}
	defer u.Close()
	ln, err := u.Listen(ctx, "tcp", "127.0.0.1:8080")
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/healthz/", u.Health())
	srv := &http.Server{Handler: mux}
	u.HTTP(srv)
	go srv.Serve(ln)
	if err := u.Ready(ctx); err != nil {
		os.Exit(1) // the old process, if any, keeps serving
	}
	if err := u.Run(ctx); err != nil {
		panic(err)
	}
}

// A long-lived handler (server-sent events, websockets) finishes when the
// process drains.
func ExampleDraining() {
	events := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-graceful.Draining(r.Context()):
				fmt.Fprintln(w, "event: reconnect")
				return
			case <-r.Context().Done():
				return
			case t := <-tick.C:
				fmt.Fprintf(w, "data: %s\n\n", t.Format(time.RFC3339))
				http.NewResponseController(w).Flush()
			}
		}
	})
	_ = events
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
