// Command httpserver is a small HTTP service on graceful, meant to be copied
// as a template. Every response names the process that served it.
//
//	go build -o /tmp/httpserver ./examples/httpserver
//	/tmp/httpserver -addr 127.0.0.1:8080 -pidfile /tmp/httpserver.pid &
//	curl -s 127.0.0.1:8080/           # pid=1234
//	# replace /tmp/httpserver with a new build, then:
//	kill -HUP "$(cat /tmp/httpserver.pid)"
//	curl -s 127.0.0.1:8080/           # pid=1240
//	curl -s 127.0.0.1:8080/healthz/readyz
//
// With -addr 127.0.0.1:0 the kernel picks a free port; -addrfile names a
// file that receives the bound address.
//
// -proto picks the HTTP flavour, each drained by graceful (answers during a
// drain carry Connection: close, which HTTP/2 servers turn into GOAWAY):
//
//	http1      HTTP/1.1 (the default)
//	h2c        HTTP/1.1 and unencrypted HTTP/2 with prior knowledge,
//	           through net/http's Server.Protocols
//	h2c-xnet   HTTP/1.1 and h2c both ways (prior knowledge and the
//	           HTTP/1.1 Upgrade), through golang.org/x/net/http2/h2c,
//	           which x/net deprecates in favour of Protocols but which
//	           many services use, and the only server of the Upgrade
//	tls        HTTP/1.1 and HTTP/2 over TLS (-cert and -key)
//
// /ws is a WebSocket echo (github.com/coder/websocket) that answers each
// message with the serving PID and closes with status 1001 (going away)
// when the process drains, so that clients reconnect to the new process.
//
// SIGHUP upgrades to whatever binary now stands at the path the process was
// started from; requests keep being served throughout. SIGTERM drains; a
// second SIGTERM closes at once.
//
// Under systemd (see examples/systemd/httpserver.service):
//
//	[Service]
//	Type=notify
//	NotifyAccess=all
//	ExecStart=/usr/local/bin/httpserver -addr 127.0.0.1:8080 -pidfile /run/httpserver/pid
//	ExecReload=/bin/kill -HUP $MAINPID
//	PIDFile=/run/httpserver/pid
//
// systemctl reload runs an upgrade; the new process reports MAINPID= and
// READY=1, so systemd follows it. Keep systemd's default
// KillMode=control-group: systemctl stop then signals the old process too,
// which inside a bake window is what stops the whole service (a new process
// stopped alone gives serving back). With a matching .socket unit the first
// process takes its listener from systemd (LISTEN_FDS).
package main

//lint:file-ignore SA1019 x/net's h2c (and the http2.Server it needs) is deprecated in favour of http.Server.Protocols, but services still use it, and it is the only server of the HTTP/1.1 Upgrade to h2c: graceful must drain it.

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/batonhq/baton/graceful"
)

type config struct {
	addr, addrFile, pidfile, proto, cert, key string
	delay, upgradeTimeout, bake, drain        time.Duration
	drainDelay                                time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on")
	flag.StringVar(&c.pidfile, "pidfile", "", "file to hold the PID of the serving process")
	flag.StringVar(&c.addrFile, "addrfile", "", "file to receive the bound address (useful with -addr 127.0.0.1:0)")
	flag.StringVar(&c.proto, "proto", "http1", "HTTP flavour: http1, h2c, h2c-xnet or tls")
	flag.StringVar(&c.cert, "cert", "", "TLS certificate file (PEM), with -proto tls")
	flag.StringVar(&c.key, "key", "", "TLS key file (PEM), with -proto tls")
	flag.DurationVar(&c.delay, "delay", 0, "how long each request takes")
	flag.DurationVar(&c.upgradeTimeout, "upgrade-timeout", graceful.DefaultUpgradeTimeout, "how long a new process may take to become ready")
	flag.DurationVar(&c.bake, "bake", 0, "how long the old process stays warm after a handoff")
	flag.DurationVar(&c.drain, "drain-timeout", graceful.DefaultDrainTimeout, "how long a drain may take before connections are closed")
	flag.DurationVar(&c.drainDelay, "drain-delay", 0, "how long to stay not-ready before draining on SIGTERM")
	flag.Parse()

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("pid", os.Getpid())
	if err := run(log, c); err != nil {
		log.Error("exiting", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, c config) error {
	upg, err := graceful.New(graceful.Options{
		UpgradeTimeout: c.upgradeTimeout,
		BakeWindow:     c.bake,
		DrainTimeout:   c.drain,
		DrainDelay:     c.drainDelay,
		PIDFile:        c.pidfile,
		Logger:         log,
		// Check: func(ctx context.Context) error { return db.PingContext(ctx) },
	})
	if err != nil {
		return err
	}
	// Inside a bake window this gives serving back to the previous
	// process, so an error below costs no request.
	defer upg.Close()

	ctx := context.Background()
	ln, err := upg.Listen(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	if c.addrFile != "" {
		// Every generation holds the same socket, so each may write it;
		// rename keeps a reader from seeing a half-written file.
		tmp := c.addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, c.addrFile); err != nil {
			return err
		}
	}
	pid := strconv.Itoa(os.Getpid())
	mux := http.NewServeMux()
	mux.Handle("/healthz/", upg.Health())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if c.delay > 0 {
			select {
			case <-time.After(c.delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("X-Served-By", pid)
		fmt.Fprintf(w, "pid=%s\n", pid)
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) { echoWebSocket(w, r, pid) })

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if ln, err = configure(upg, srv, ln, c); err != nil {
		return err
	}
	upg.HTTP(srv)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	if err := upg.Ready(ctx); err != nil {
		return err
	}
	if err := upg.Run(ctx); err != nil {
		return err
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// configure sets srv up for the flavour c.proto and returns the listener to
// serve.
func configure(upg *graceful.Upgrader, srv *http.Server, ln net.Listener, c config) (net.Listener, error) {
	switch c.proto {
	case "http1":
	case "h2c":
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	case "h2c-xnet":
		// x/net's h2c serves each h2c connection with the handler it
		// was given, not srv's: it needs DrainHandler of its own.
		h2s := &http2.Server{}
		srv.Handler = h2c.NewHandler(upg.DrainHandler(srv.Handler), h2s)
		if err := http2.ConfigureServer(srv, h2s); err != nil {
			return nil, err
		}
	case "tls":
		cert, err := tls.LoadX509KeyPair(c.cert, c.key)
		if err != nil {
			return nil, fmt.Errorf("-proto tls: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
		// Wrapped after Listen: the plain socket is what graceful hands
		// down.
		return tls.NewListener(ln, srv.TLSConfig), nil
	default:
		return nil, fmt.Errorf("-proto %q: want http1, h2c, h2c-xnet or tls", c.proto)
	}
	return ln, nil
}

// echoWebSocket answers every message with the serving PID and the message,
// until the client leaves or the process drains: then it closes with status
// going away, and the client reconnects to the new process. The connection
// came from graceful's listener, so the drain waits for its close without
// Track.
func echoWebSocket(w http.ResponseWriter, r *http.Request, pid string) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	go func() {
		select {
		case <-graceful.Draining(r.Context()):
			_ = ws.Close(websocket.StatusGoingAway, "server restarting")
		case <-r.Context().Done():
		}
	}()
	ctx := context.Background()
	for {
		typ, msg, err := ws.Read(ctx)
		if err != nil {
			return
		}
		if err := ws.Write(ctx, typ, append([]byte("pid="+pid+" "), msg...)); err != nil {
			return
		}
	}
}
