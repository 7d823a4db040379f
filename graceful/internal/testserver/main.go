// Command testserver is the process graceful's tests upgrade. It behaves
// like examples/httpserver, plus endpoints the tests drive and faults chosen
// by the BATON_TEST_FAULT variable (set by a wrapper script the tests put at
// the upgrade path):
//
//	exit       print to stderr and exit 3 before Ready
//	hang       print to stderr and never become ready
//	crash      become ready, then exit 4 200 ms later, never serving
//	unhealthy  become ready, then fail the readiness check (bake rollback)
//	gate       become ready only once the file in BATON_TEST_GATE exists
//	leave      become ready and serve until the file in BATON_TEST_GATE
//	           exists, then return an error from main, whose deferred
//	           Close runs (an application failing after Ready)
//
// BATON_TEST_RACE=1 adds /race, a handler with a deliberate data race.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/batonhq/baton/graceful"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	addrFile := flag.String("addrfile", "", "write the bound address here")
	bake := flag.Duration("bake", 0, "bake window")
	timeout := flag.Duration("upgrade-timeout", 10*time.Second, "upgrade timeout")
	drain := flag.Duration("drain-timeout", 10*time.Second, "drain timeout")
	drainDelay := flag.Duration("drain-delay", 0, "drain delay")
	pidfile := flag.String("pidfile", "", "PID file")
	unixPath := flag.String("unix", "", "also serve HTTP on this Unix socket")
	udpAddr := flag.String("udp", "", "answer UDP datagrams on this address with the PID")
	flag.Parse()

	fault := os.Getenv("BATON_TEST_FAULT")
	switch fault {
	case "exit":
		fmt.Fprintln(os.Stderr, "loading config: /etc/app.yaml line 3: bad value")
		os.Exit(3)
	case "hang":
		fmt.Fprintln(os.Stderr, "warming cache...")
		select {}
	}

	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("pid", os.Getpid())
	var checks atomic.Int64
	opts := graceful.Options{
		BakeWindow:     *bake,
		UpgradeTimeout: *timeout,
		DrainTimeout:   *drain,
		DrainDelay:     *drainDelay,
		CheckInterval:  20 * time.Millisecond,
		PIDFile:        *pidfile,
		Logger:         log,
		Check: func(ctx context.Context) error {
			n := checks.Add(1)
			switch fault {
			case "unhealthy":
				if n > 1 {
					return errors.New("database unreachable")
				}
			case "gate":
				_ = os.WriteFile(os.Getenv("BATON_TEST_GATE")+".waiting", nil, 0o600)
				for {
					if _, err := os.Stat(os.Getenv("BATON_TEST_GATE")); err == nil {
						return nil
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(5 * time.Millisecond):
					}
				}
			}
			return nil
		},
	}
	if err := run(log, opts, fault, *addr, *addrFile, *unixPath, *udpAddr); err != nil {
		log.Error("exiting", "err", err)
		os.Exit(1)
	}
}

// run serves until the process has nothing left to serve. Its deferred
// Close is what an application's error path after Ready runs.
func run(log *slog.Logger, opts graceful.Options, fault, addr, addrFile, unixPath, udpAddr string) error {
	upg, err := graceful.New(opts)
	if err != nil {
		return fmt.Errorf("new: %w", err)
	}
	defer upg.Close()
	ctx := context.Background()
	ln, err := upg.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if addrFile != "" && !upg.HasParent() {
		tmp := addrFile + ".tmp"
		_ = os.WriteFile(tmp, []byte(ln.Addr().String()), 0o600)
		_ = os.Rename(tmp, addrFile)
	}
	pid := strconv.Itoa(os.Getpid())
	mux := http.NewServeMux()
	mux.Handle("/healthz/", upg.Health())
	// inHandler counts requests inside the / handler, so that a test can
	// know its long requests are in flight here before it upgrades.
	var inHandler atomic.Int64
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		inHandler.Add(1)
		defer inHandler.Add(-1)
		if d, _ := time.ParseDuration(r.URL.Query().Get("delay")); d > 0 {
			time.Sleep(d)
		}
		fmt.Fprintf(w, "pid=%s\n", pid)
	})
	mux.HandleFunc("/exe", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s pid=%s\n", os.Args[0], pid)
	})
	mux.HandleFunc("/inflight", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d pid=%s\n", inHandler.Load(), pid)
	})
	// /upgrade?binary=...&bake=... upgrades with UpgradeOptions; without
	// them, as Upgrade does.
	mux.HandleFunc("POST /upgrade", func(w http.ResponseWriter, r *http.Request) {
		var o graceful.UpgradeOptions
		o.Binary = r.URL.Query().Get("binary")
		if b := r.URL.Query().Get("bake"); b != "" {
			d, err := time.ParseDuration(b)
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintln(w, err)
				return
			}
			o.BakeWindow = d
		}
		if err := upg.UpgradeWith(r.Context(), o); err != nil {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprintln(w, err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// /promote and /rollback end the bake window of the process that
	// answers: promote it, or give serving back to its predecessor.
	mux.HandleFunc("POST /promote", func(w http.ResponseWriter, r *http.Request) {
		if err := upg.Promote(r.Context()); err != nil {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprintln(w, err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("POST /rollback", func(w http.ResponseWriter, r *http.Request) {
		if err := upg.Rollback(r.Context()); err != nil {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprintln(w, err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// /hijack takes the connection over, says hello, and says bye when
	// the process drains; it never closes on its own, so only the drain
	// deadline can end it unless the client hangs up.
	mux.HandleFunc("/hijack", func(w http.ResponseWriter, r *http.Request) {
		c, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		draining := graceful.Draining(r.Context())
		release := upg.Track(c, nil)
		defer release()
		fmt.Fprintf(bw, "hello pid=%s\n", pid)
		bw.Flush()
		<-draining
		fmt.Fprintf(bw, "bye pid=%s\n", pid)
		bw.Flush()
		// Wait for the client to hang up or the deadline to close us.
		_, _ = bufio.NewReader(c).ReadString('\n')
	})
	if os.Getenv("BATON_TEST_RACE") == "1" {
		// /race races on purpose: the tests check that the race detector
		// is in the server processes when it is in the test binary.
		mux.HandleFunc("/race", func(w http.ResponseWriter, r *http.Request) {
			var n int
			done := make(chan struct{})
			go func() { n++; close(done) }()
			n++
			<-done
			fmt.Fprintln(w, n)
		})
	}
	srv := &http.Server{Handler: mux}
	upg.HTTP(srv)
	if fault != "crash" {
		go srv.Serve(ln)
	}
	if unixPath != "" {
		uln, err := upg.Listen(ctx, "unix", unixPath)
		if err != nil {
			return fmt.Errorf("listen unix: %w", err)
		}
		go srv.Serve(uln)
	}
	if udpAddr != "" {
		pc, err := upg.ListenPacket(ctx, "udp", udpAddr)
		if err != nil {
			return fmt.Errorf("listen udp: %w", err)
		}
		go func() {
			buf := make([]byte, 512)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo([]byte("pid="+pid), from)
			}
		}()
	}
	if err := upg.Ready(ctx); err != nil {
		return fmt.Errorf("ready: %w", err)
	}
	if fault == "crash" {
		// Crash a moment after the handoff, never having served: the
		// connections queued meanwhile must reach the resumed parent.
		time.Sleep(200 * time.Millisecond)
		fmt.Fprintln(os.Stderr, "panic: nil map write (simulated)")
		os.Exit(4)
	}
	if fault == "leave" {
		// Serve until told, then fail as an application does after Ready:
		// main returns an error and the deferred Close runs.
		ran := make(chan error, 1)
		go func() { ran <- upg.Run(ctx) }()
		gate := os.Getenv("BATON_TEST_GATE")
		for {
			select {
			case err := <-ran:
				return err
			case <-time.After(5 * time.Millisecond):
			}
			if _, err := os.Stat(gate); err == nil {
				return errors.New("simulated failure after ready (leave)")
			}
		}
	}
	return upg.Run(ctx)
}
