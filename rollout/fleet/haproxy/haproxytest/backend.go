package haproxytest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Backend is an HTTP server on 127.0.0.1 that answers every request with
// its version (as the body and the X-Version header) after Delay, or after
// the milliseconds of the request's "delay" query parameter. GET /healthz
// answers at once. The zero value is not usable: use NewBackend.
type Backend struct {
	version  string
	delay    time.Duration
	ln       net.Listener
	srv      *http.Server
	done     chan struct{}
	inFlight atomic.Int64
	served   atomic.Int64
}

// NewBackend starts a Backend answering version after delay (0: at once).
func NewBackend(version string, delay time.Duration) (*Backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("haproxytest: backend %s: %w", version, err)
	}
	b := &Backend{version: version, delay: delay, ln: ln, done: make(chan struct{})}
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(b.done)
		_ = b.srv.Serve(ln)
	}()
	return b, nil
}

func (b *Backend) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		w.WriteHeader(http.StatusOK)
		return
	}
	b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	d := b.delay
	if ms, err := strconv.Atoi(r.URL.Query().Get("delay")); err == nil {
		d = time.Duration(ms) * time.Millisecond
	}
	if d > 0 {
		// The request's work: a stand-in for a handler that takes time,
		// so that switches happen with requests in progress.
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	b.served.Add(1)
	w.Header().Set("X-Version", b.version)
	_, _ = w.Write([]byte(b.version))
}

// Addr returns the backend's host:port.
func (b *Backend) Addr() string { return b.ln.Addr().String() }

// Version returns the version it answers.
func (b *Backend) Version() string { return b.version }

// InFlight returns the number of requests in its handler now.
func (b *Backend) InFlight() int { return int(b.inFlight.Load()) }

// Served returns the number of requests it answered.
func (b *Backend) Served() int { return int(b.served.Load()) }

// Kill stops the backend the hard way, as a process that exits would:
// the listener and every connection are closed, requests in progress
// included. It is idempotent.
func (b *Backend) Kill() {
	_ = b.srv.Close()
	<-b.done
}

// Shutdown stops the backend gracefully: no new connection, requests in
// progress finish.
func (b *Backend) Shutdown(ctx context.Context) error {
	err := b.srv.Shutdown(ctx)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		_ = b.srv.Close()
	}
	<-b.done
	return err
}
