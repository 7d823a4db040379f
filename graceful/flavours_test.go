package graceful_test

//lint:file-ignore SA1019 x/net's h2c (and the http2.Server it needs) is deprecated in favour of http.Server.Protocols, but services still use it, and it is the only server of the HTTP/1.1 Upgrade to h2c: graceful must drain it.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/batonhq/baton/graceful"
	"github.com/batonhq/baton/internal/h2raw"
)

// flavourWait bounds each wait of these tests; the drains they watch have a
// deadline far beyond it, so a drain that waits for its deadline fails the
// test naming what it waited for.
const (
	flavourWait  = 10 * time.Second
	drainTimeout = time.Minute
)

// drainedEvent is the "drained" log event of a drain.
type drainedEvent struct {
	Drained, Forced int
}

// drainLog returns the last "drained" event in logs.
func drainLog(t *testing.T, logs *lockedBuffer) drainedEvent {
	t.Helper()
	var last *drainedEvent
	for _, line := range strings.Split(logs.String(), "\n") {
		var ev struct {
			Msg             string
			Drained, Forced int
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Msg == "drained" {
			last = &drainedEvent{ev.Drained, ev.Forced}
		}
	}
	if last == nil {
		t.Fatalf("no drained event in the log:\n%s", logs.String())
	}
	return *last
}

// shutdownIn runs Shutdown and returns a function that waits for it,
// failing the test if it is still draining after flavourWait.
func shutdownIn(t *testing.T, u *graceful.Upgrader, what string) (wait func()) {
	shut := make(chan error, 1)
	go func() { shut <- u.Shutdown(context.Background()) }()
	return func() {
		t.Helper()
		select {
		case err := <-shut:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(flavourWait):
			t.Fatalf("the drain still waited %s after %s; it should end as soon as its last connection does", flavourWait, what)
		}
	}
}

// flavour serves mux on u in one HTTP flavour and dials it with the raw
// HTTP/2 client.
type flavour struct {
	name  string
	serve func(t *testing.T, u *graceful.Upgrader, ln net.Listener, mux http.Handler) (base context.Context)
	dial  func(ctx context.Context, t *testing.T, addr string) (*h2raw.Conn, error)
}

var tlsConfig *tls.Config // the TLS flavour's client configuration

var flavours = []flavour{
	{
		name: "h2-tls",
		serve: func(t *testing.T, u *graceful.Upgrader, ln net.Listener, mux http.Handler) context.Context {
			ts := httptest.NewUnstartedServer(mux)
			ts.Listener.Close()
			ts.Listener = ln
			ts.EnableHTTP2 = true
			u.HTTP(ts.Config)
			ts.StartTLS()
			t.Cleanup(ts.Close)
			pool := x509.NewCertPool()
			pool.AddCert(ts.Certificate())
			tlsConfig = &tls.Config{RootCAs: pool, ServerName: "example.com"}
			return ts.Config.BaseContext(ln)
		},
		dial: func(ctx context.Context, t *testing.T, addr string) (*h2raw.Conn, error) {
			return h2raw.DialTLS(ctx, addr, tlsConfig)
		},
	},
	{
		name: "h2c-protocols",
		serve: func(t *testing.T, u *graceful.Upgrader, ln net.Listener, mux http.Handler) context.Context {
			srv := &http.Server{Handler: mux, Protocols: new(http.Protocols)}
			srv.Protocols.SetHTTP1(true)
			srv.Protocols.SetUnencryptedHTTP2(true)
			return serveOn(t, u, srv, ln)
		},
		dial: func(ctx context.Context, t *testing.T, addr string) (*h2raw.Conn, error) {
			return h2raw.DialPrior(ctx, addr)
		},
	},
	{
		name:  "h2c-xnet-prior-knowledge",
		serve: serveXNet,
		dial: func(ctx context.Context, t *testing.T, addr string) (*h2raw.Conn, error) {
			return h2raw.DialPrior(ctx, addr)
		},
	},
	{
		name:  "h2c-xnet-upgrade",
		serve: serveXNet,
		dial: func(ctx context.Context, t *testing.T, addr string) (*h2raw.Conn, error) {
			c, err := h2raw.DialUpgrade(ctx, addr, "/")
			if err != nil {
				return nil, err
			}
			// The upgraded request is answered as stream 1.
			if ev, err := c.Next(flavourWait); err != nil || ev.Kind != h2raw.Response || ev.StreamID != 1 || ev.Status != 200 {
				c.Close()
				return nil, fmt.Errorf("the upgraded request: %v %v", ev, err)
			}
			return c, nil
		},
	},
}

// serveXNet serves with x/net's h2c handler, which hands h2c connections to
// http2.Server with the handler it was given: DrainHandler goes inside.
func serveXNet(t *testing.T, u *graceful.Upgrader, ln net.Listener, mux http.Handler) context.Context {
	h2s := &http2.Server{}
	srv := &http.Server{Handler: h2c.NewHandler(u.DrainHandler(mux), h2s)}
	if err := http2.ConfigureServer(srv, h2s); err != nil {
		t.Fatal(err)
	}
	return serveOn(t, u, srv, ln)
}

func serveOn(t *testing.T, u *graceful.Upgrader, srv *http.Server, ln net.Listener) context.Context {
	u.HTTP(srv)
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-served })
	return srv.BaseContext(ln)
}

// expect reads events until every wanted kind has come for its stream,
// failing on a reset or a closed connection.
func expect(t *testing.T, c *h2raw.Conn, what string, want map[h2raw.Kind]uint32) []h2raw.Event {
	t.Helper()
	var got []h2raw.Event
	for len(want) > 0 {
		ev, err := c.Next(flavourWait)
		if err != nil {
			t.Fatalf("%s: %v; so far %v", what, err, got)
		}
		got = append(got, ev)
		switch ev.Kind {
		case h2raw.Response:
			if id, ok := want[h2raw.Response]; ok && ev.StreamID == id {
				if ev.Status != 200 {
					t.Fatalf("%s: %v", what, ev)
				}
				delete(want, h2raw.Response)
			}
		case h2raw.GoAway:
			if _, ok := want[h2raw.GoAway]; !ok {
				t.Fatalf("%s: GOAWAY before the drain: %v", what, got)
			}
			if ev.Code != http2.ErrCodeNo || ev.LastStreamID < want[h2raw.GoAway] {
				t.Fatalf("%s: %v, want a graceful GOAWAY covering stream %d", what, ev, want[h2raw.GoAway])
			}
			delete(want, h2raw.GoAway)
		default:
			t.Fatalf("%s: %v; so far %v", what, ev, got)
		}
	}
	return got
}

// Every HTTP/2 flavour drains as HTTP/1 does: the server sends GOAWAY with
// the next answer, the request in flight is answered, and the drain ends
// as soon as the connection does, long before its deadline and with
// nothing forced.
func TestDrainHTTP2Flavours(t *testing.T) {
	for _, f := range flavours {
		t.Run(f.name, func(t *testing.T) {
			var logs lockedBuffer
			u, err := graceful.New(graceful.Options{DrainTimeout: drainTimeout, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			ln, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			inHandler, release := make(chan struct{}), make(chan struct{})
			mux := http.NewServeMux()
			mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
				close(inHandler)
				<-release
				io.WriteString(w, "slow")
			})
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })
			base := f.serve(t, u, ln, mux)
			if err := u.Ready(context.Background()); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), flavourWait)
			defer cancel()
			c, err := f.dial(ctx, t, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			slow, err := c.Get("/slow")
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-inHandler:
			case <-time.After(flavourWait):
				t.Fatal("the slow request never reached its handler")
			}
			id, _ := c.Get("/")
			expect(t, c, "before the drain", map[h2raw.Kind]uint32{h2raw.Response: id})

			wait := shutdownIn(t, u, "the client closed its connection")
			recv(t, "the drain to start", graceful.Draining(base))
			id, _ = c.Get("/")
			expect(t, c, "the first request of the drain", map[h2raw.Kind]uint32{h2raw.Response: id, h2raw.GoAway: id})
			close(release)
			expect(t, c, "the request in flight", map[h2raw.Kind]uint32{h2raw.Response: slow})
			// A client closes a connection that sent GOAWAY once its
			// streams are done.
			c.Close()
			wait()
			if ev := drainLog(t, &logs); ev.Forced != 0 {
				t.Errorf("drain: %+v, want nothing forced", ev)
			}
		})
	}
}

// WebSockets on connections from Listen need no Track: a handler that
// closes its socket when the drain starts ends the drain's wait for it, the
// client sees the close status the handler chose, and nothing is counted
// as forced.
func TestDrainWebSockets(t *testing.T) {
	type lib struct {
		name    string
		handler func(u *graceful.Upgrader) http.HandlerFunc
	}
	coder := func(u *graceful.Upgrader) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			ws, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer ws.CloseNow()
			go func() {
				select {
				case <-graceful.Draining(r.Context()):
					ws.Close(websocket.StatusGoingAway, "restarting")
				case <-r.Context().Done():
				}
			}()
			for {
				typ, b, err := ws.Read(context.Background())
				if err != nil {
					return
				}
				if err := ws.Write(context.Background(), typ, b); err != nil {
					return
				}
			}
		}
	}
	gorillaHandler := func(u *graceful.Upgrader) http.HandlerFunc {
		up := gorilla.Upgrader{}
		return func(w http.ResponseWriter, r *http.Request) {
			ws, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer ws.Close()
			// gorilla's *Conn is an io.Closer; finish asks the peer to go.
			release := u.Track(ws, func() {
				msg := gorilla.FormatCloseMessage(gorilla.CloseGoingAway, "restarting")
				_ = ws.WriteControl(gorilla.CloseMessage, msg, time.Now().Add(time.Second))
			})
			defer release()
			for {
				typ, b, err := ws.ReadMessage()
				if err != nil {
					return
				}
				if err := ws.WriteMessage(typ, b); err != nil {
					return
				}
			}
		}
	}
	for _, l := range []lib{{"coder", coder}, {"gorilla", gorillaHandler}} {
		t.Run(l.name, func(t *testing.T) {
			var logs lockedBuffer
			u, err := graceful.New(graceful.Options{DrainTimeout: drainTimeout, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			ln, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			base := serveOn(t, u, &http.Server{Handler: l.handler(u)}, ln)
			if err := u.Ready(context.Background()); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), flavourWait)
			defer cancel()
			ws, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.CloseNow()
			if err := ws.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
				t.Fatal(err)
			}
			if _, b, err := ws.Read(ctx); err != nil || string(b) != "ping" {
				t.Fatalf("echo: %q %v", b, err)
			}
			wait := shutdownIn(t, u, "the WebSocket closed")
			recv(t, "the drain to start", graceful.Draining(base))
			// The client reads until the server's close frame; reading it
			// answers the close handshake.
			_, _, err = ws.Read(ctx)
			if st := websocket.CloseStatus(err); st != websocket.StatusGoingAway {
				t.Fatalf("client read during the drain: %v, want close status going away", err)
			}
			wait()
			if ev := drainLog(t, &logs); ev.Forced != 0 || ev.Drained != 1 {
				t.Errorf("drain: %+v, want 1 drained and nothing forced", ev)
			}
		})
	}
}

// A WebSocket whose handler ignores the drain is closed at the deadline and
// counted as forced: Track with a close function (coder/websocket's
// CloseNow) is closed by the drain.
func TestDrainForcesIgnoredWebSocket(t *testing.T) {
	var logs lockedBuffer
	u, err := graceful.New(graceful.Options{DrainTimeout: 300 * time.Millisecond, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ln, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer u.Track(graceful.CloseFunc(ws.CloseNow), nil)()
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				return
			}
		}
	})
	serveOn(t, u, &http.Server{Handler: handler}, ln)
	if err := u.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), flavourWait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	shutdownIn(t, u, "the deadline closed the WebSocket")()
	if _, _, err := ws.Read(ctx); err == nil {
		t.Error("the WebSocket still reads after the drain deadline")
	}
	if ev := drainLog(t, &logs); ev.Forced != 1 {
		t.Errorf("drain: %+v, want the ignored WebSocket forced", ev)
	}
}
