package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/batonhq/baton/rollout"
)

// console serves the rollout's console of the admin socket on a loopback
// address until ctx ends, printing its URL on stdout. A browser cannot
// open a Unix socket, so rolloutctl does: every request is forwarded over
// the socket (a fresh connection each time, which follows the stable name
// of rollout.ListenAdmin across handoffs).
//
// The loopback side is guarded as the admin API is (rollout.Guard): a
// Host that is not loopback (DNS rebinding) and an Origin other than the
// page's own are refused before anything is forwarded. The forwarded
// request names the socket's side instead: Host "localhost" and, when the
// browser sent one, the matching Origin, so that the service's own guard
// sees a same-origin request.
func console(ctx context.Context, socket, listen string, timeout time.Duration, stdout, stderr io.Writer) int {
	if err := loopback(listen); err != nil {
		fmt.Fprintln(stderr, "rolloutctl: console: -listen", err)
		return 2
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(stderr, "rolloutctl: console:", err)
		return 1
	}
	dialer := &net.Dialer{Timeout: timeout}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", "localhost", "localhost"
			if pr.In.Header.Get("Origin") != "" {
				pr.Out.Header.Set("Origin", "http://localhost")
			}
		},
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", socket)
		}},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, "{\"error\": %q}\n", "rolloutctl console: the admin socket "+socket+" did not answer: "+err.Error())
		},
	}
	srv := &http.Server{
		Handler:           rollout.Guard(proxy, rollout.HandlerOptions{}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      rollout.MaxWait + 10*time.Second,
	}
	fmt.Fprintf(stdout, "console: http://%s/ (the rollout), http://%s/fleet (the fleet); proxying %s until interrupted\n", ln.Addr(), ln.Addr(), socket)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		fmt.Fprintln(stderr, "rolloutctl: console:", err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(stderr, "rolloutctl: console:", err)
		return 1
	}
	return 0
}

// loopback refuses an address that is not loopback: the console, like
// the admin API, has no authentication.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q is not a loopback address: the admin API has no authentication", addr)
	}
	return nil
}
