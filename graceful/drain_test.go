package graceful_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/batonhq/baton/graceful"
)

// newConnWatcher returns a ConnState hook that reports new connections.
func newConnWatcher() (func(net.Conn, http.ConnState), chan struct{}) {
	seen := make(chan struct{}, 16)
	return func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			seen <- struct{}{}
		}
	}, seen
}

const rawGET = "GET / HTTP/1.1\r\nHost: test\r\n\r\n"

// This is the cause of the lost requests in the plain pattern (Upgrade,
// then http.Server.Shutdown): net/http reads the request of a connection it
// accepted before Shutdown, sees the shutdown flag, and closes the
// connection without an answer. The client gets EOF.
func TestServerShutdownDropsAcceptedRequest(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hook, seen := newConnWatcher()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ConnState: hook}
	shuttingDown := make(chan struct{})
	srv.RegisterOnShutdown(func() { close(shuttingDown) })
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	recv(t, "the connection to reach the server", seen) // accepted, request not yet sent
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	recv(t, "Shutdown to begin", shuttingDown)
	if _, err := io.WriteString(c, rawGET); err != nil {
		t.Fatal(err)
	}
	readDeadline(c)
	_, err = http.ReadResponse(bufio.NewReader(c), nil)
	if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		t.Fatalf("net/http answered (err %v); the cause described here no longer holds", err)
	}
	if err := recv(t, "Shutdown to return", shut); err != nil {
		t.Fatal(err)
	}
	recv(t, "Serve to return", served)
}

// graceful's drain answers that same request, with Connection: close.
func TestDrainAnswersAcceptedRequest(t *testing.T) {
	u, err := graceful.New(graceful.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ln, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hook, seen := newConnWatcher()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ConnState: hook}
	u.HTTP(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if err := u.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	recv(t, "the connection to reach the server", seen)
	shut := make(chan error, 1)
	go func() { shut <- u.Shutdown(context.Background()) }()
	recv(t, "the drain to start", graceful.Draining(srv.BaseContext(ln))) // accepting stopped, drain under way
	if _, err := io.WriteString(c, rawGET); err != nil {
		t.Fatal(err)
	}
	readDeadline(c)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("request accepted before the drain was not answered: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !resp.Close {
		t.Errorf("status %d, close %v; want 200 with Connection: close", resp.StatusCode, resp.Close)
	}
	if err := recv(t, "Shutdown to return", shut); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, "Serve to return", served); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
	if st := u.State(); st != graceful.StateStopped {
		t.Errorf("state %v after Shutdown", st)
	}
}

// Busy keep-alive connections get Connection: close; idle ones are closed;
// tracked raw connections are told to finish and closed at the deadline.
func TestDrainKeepAliveAndTracked(t *testing.T) {
	u, err := graceful.New(graceful.Options{DrainTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ln, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inHandler := make(chan struct{})
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(inHandler)
			<-release
		}
	})}
	u.HTTP(srv)
	go srv.Serve(ln)
	if err := u.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	// An idle keep-alive connection.
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idleR := bufio.NewReader(idle)
	io.WriteString(idle, rawGET)
	if resp, err := http.ReadResponse(idleR, nil); err != nil || resp.Close {
		t.Fatalf("warm-up: %v", err)
	}
	// A busy one.
	busy, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
	recv(t, "the slow request to reach its handler", inHandler)
	// A tracked raw connection that ignores the request to finish.
	rawSrv, rawCli := net.Pipe()
	defer rawCli.Close()
	told := make(chan struct{})
	done := u.Track(rawSrv, func() { close(told) })
	defer done()

	shut := make(chan error, 1)
	go func() { shut <- u.Shutdown(context.Background()) }()
	recv(t, "the tracked connection to be told to finish", told)
	readDeadline(idle)
	if _, err := idleR.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle keep-alive connection: %v, want EOF", err)
	}
	close(release)
	readDeadline(busy)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Close {
		t.Error("busy keep-alive answered without Connection: close")
	}
	// The deadline closes the tracked connection.
	readDeadline(rawCli)
	if _, err := rawCli.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("tracked connection: %v, want closed", err)
	}
	if err := recv(t, "Shutdown to return", shut); err != nil {
		t.Fatal(err)
	}
}

// TLS wraps the listener after Listen; an HTTP/2 request in flight at the
// drain completes, and the idle HTTP/2 connection is closed by the drain.
func TestDrainTLSHTTP2(t *testing.T) {
	u, err := graceful.New(graceful.Options{DrainTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ln, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inHandler := make(chan struct{})
	release := make(chan struct{})
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(inHandler)
			<-release
		}
		io.WriteString(w, r.Proto)
	}))
	ts.Listener.Close()
	ts.Listener = ln
	ts.EnableHTTP2 = true
	u.HTTP(ts.Config)
	ts.StartTLS()
	defer ts.Close()
	if err := u.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := ts.Client()
	c.Timeout = testWait
	resp, err := c.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "HTTP/2.0" {
		t.Fatalf("protocol %q, want HTTP/2.0", b)
	}
	type result struct {
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := c.Get(ts.URL + "/slow")
		if err != nil {
			slow <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- result{string(b), err}
	}()
	recv(t, "the slow request to reach its handler", inHandler)
	shut := make(chan error, 1)
	go func() { shut <- u.Shutdown(context.Background()) }()
	recv(t, "the drain to start", graceful.Draining(ts.Config.BaseContext(ln)))
	close(release)
	if r := recv(t, "the in-flight HTTP/2 answer", slow); r.err != nil || r.body != "HTTP/2.0" {
		t.Errorf("in-flight HTTP/2 request: %q %v", r.body, r.err)
	}
	if err := recv(t, "Shutdown to return", shut); err != nil {
		t.Fatal(err)
	}
}

// A keep-alive connection that is idle when the drain starts is not closed
// under a client that reuses it at that moment: its next request is
// answered, with Connection: close. (Closing it at once, as
// http.Server.SetKeepAlivesEnabled(false) does, makes such a request meet a
// closed connection; Go's transport hides that by resending it.)
func TestDrainAnswersReusedIdleConnection(t *testing.T) {
	u, err := graceful.New(graceful.Options{DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ln, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	u.HTTP(srv)
	go srv.Serve(ln)
	if err := u.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	readDeadline(c)
	io.WriteString(c, rawGET)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.Close {
		t.Fatalf("warm-up: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	// Something for the drain to wait for, and the signal that it began.
	rawSrv, rawCli := net.Pipe()
	defer rawCli.Close()
	told := make(chan struct{})
	release := u.Track(rawSrv, func() { close(told) })
	shut := make(chan error, 1)
	go func() { shut <- u.Shutdown(context.Background()) }()
	recv(t, "the tracked connection to be told to finish", told)

	io.WriteString(c, rawGET)
	resp, err = http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("request on the idle keep-alive connection after the drain began: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	if !resp.Close {
		t.Error("answer during the drain without Connection: close")
	}
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("connection after Connection: close: %v, want EOF", err)
	}
	release()
	if err := recv(t, "Shutdown to return", shut); err != nil {
		t.Fatal(err)
	}
}
