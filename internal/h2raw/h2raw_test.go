package h2raw_test

//lint:file-ignore SA1019 x/net's h2c (and the http2.Server it needs) is deprecated in favour of http.Server.Protocols, but services still use it, and it is the only server of the HTTP/1.1 Upgrade to h2c: graceful must drain it.

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/batonhq/baton/internal/h2raw"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

// serve runs x/net's h2c server (prior knowledge and Upgrade) until the
// test ends.
func serve(t *testing.T) (addr string, srv *http.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h2s := &http2.Server{}
	srv = &http.Server{Handler: h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}), h2s)}
	if err := http2.ConfigureServer(srv, h2s); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String(), srv
}

func next(t *testing.T, c *h2raw.Conn, want h2raw.Kind) h2raw.Event {
	t.Helper()
	ev, err := c.Next(wait)
	if err != nil || ev.Kind != want {
		t.Fatalf("got %v %v, want a %v", ev, err, want)
	}
	return ev
}

// Both ways into h2c answer requests, and a server shutdown shows as a
// graceful GOAWAY.
func TestPriorKnowledgeAndUpgrade(t *testing.T) {
	addr, srv := serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	up, err := h2raw.DialUpgrade(ctx, addr, "/upgraded")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	if ev := next(t, up, h2raw.Response); ev.StreamID != 1 || string(ev.Body) != "/upgraded" {
		t.Fatalf("upgraded request: %v", ev)
	}
	pk, err := h2raw.DialPrior(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pk.Close()
	for _, c := range []*h2raw.Conn{up, pk} {
		id, err := c.Get("/next")
		if err != nil {
			t.Fatal(err)
		}
		if ev := next(t, c, h2raw.Response); ev.StreamID != id || ev.Status != 200 || string(ev.Body) != "/next" {
			t.Fatalf("request: %v", ev)
		}
	}
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	for _, c := range []*h2raw.Conn{up, pk} {
		if ev := next(t, c, h2raw.GoAway); ev.Code != http2.ErrCodeNo {
			t.Fatalf("shutdown: %v", ev)
		}
		c.Close()
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}
