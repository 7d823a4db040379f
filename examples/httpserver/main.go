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
//	KillMode=mixed
//
// systemctl reload runs an upgrade; the new process reports MAINPID= and
// READY=1, so systemd follows it. With a matching .socket unit the first
// process takes its listener from systemd (LISTEN_FDS).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/batonhq/baton/graceful"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	pidfile := flag.String("pidfile", "", "file to hold the PID of the serving process")
	addrFile := flag.String("addrfile", "", "file to receive the bound address (useful with -addr 127.0.0.1:0)")
	delay := flag.Duration("delay", 0, "how long each request takes")
	upgradeTimeout := flag.Duration("upgrade-timeout", graceful.DefaultUpgradeTimeout, "how long a new process may take to become ready")
	bake := flag.Duration("bake", 0, "how long the old process stays warm after a handoff")
	drain := flag.Duration("drain-timeout", graceful.DefaultDrainTimeout, "how long a drain may take before connections are closed")
	drainDelay := flag.Duration("drain-delay", 0, "how long to stay not-ready before draining on SIGTERM")
	flag.Parse()

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("pid", os.Getpid())
	if err := run(log, *addr, *addrFile, *pidfile, *delay, *upgradeTimeout, *bake, *drain, *drainDelay); err != nil {
		log.Error("exiting", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, addr, addrFile, pidfile string, delay, upgradeTimeout, bake, drain, drainDelay time.Duration) error {
	upg, err := graceful.New(graceful.Options{
		UpgradeTimeout: upgradeTimeout,
		BakeWindow:     bake,
		DrainTimeout:   drain,
		DrainDelay:     drainDelay,
		PIDFile:        pidfile,
		Logger:         log,
		// Check: func(ctx context.Context) error { return db.PingContext(ctx) },
	})
	if err != nil {
		return err
	}
	defer upg.Close()

	ctx := context.Background()
	ln, err := upg.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	if addrFile != "" {
		// Every generation holds the same socket, so each may write it;
		// rename keeps a reader from seeing a half-written file.
		tmp := addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, addrFile); err != nil {
			return err
		}
	}
	pid := strconv.Itoa(os.Getpid())
	mux := http.NewServeMux()
	mux.Handle("/healthz/", upg.Health())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("X-Served-By", pid)
		fmt.Fprintf(w, "pid=%s\n", pid)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	upg.HTTP(srv)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	if err := upg.Ready(ctx); err != nil {
		return err
	}
	if err := upg.Run(ctx); err != nil {
		return err
	}
	if err := <-serveErr; err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}
