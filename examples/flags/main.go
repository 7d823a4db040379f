// Command flags is a small HTTP service whose behaviour follows a flags
// file, evaluated through the OpenFeature client backed by baton's flags
// package. Edit the file while it runs: the next request sees the change.
//
//	go run ./examples/flags                       # serve on 127.0.0.1:8080, admin on 127.0.0.1:8081
//	curl '127.0.0.1:8080/?user=bob&plan=pro'
//	curl 127.0.0.1:8081/flags                     # flags, state and usage
//	curl -X POST -H 'Content-Type: application/json' 127.0.0.1:8081/flags/new-checkout/disable
//	go run ./examples/flags -demo                 # a scripted, bounded run: serve, edit the file, serve again
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	of "github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/flags/openfeature"
)

func main() {
	file := flag.String("flags", "examples/flags/flags.yaml", "flags file (YAML or JSON)")
	addr := flag.String("addr", "127.0.0.1:8080", "service address")
	adminAddr := flag.String("admin", "127.0.0.1:8081", "admin address: a loopback host and port")
	demo := flag.Bool("demo", false, "run a scripted demo on a copy of the file and exit")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var err error
	if *demo {
		err = runDemo(log, *file)
	} else {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err = serve(ctx, log, *file, *addr, *adminAddr)
	}
	if err != nil {
		log.Error("exiting", "err", err)
		os.Exit(1)
	}
}

// app is the service: flags, the OpenFeature client and the handlers.
type app struct {
	store  *flags.Store
	src    *flags.FileSource
	api    *of.EvaluationAPI
	client *of.Client
}

func start(log *slog.Logger, file string) (*app, error) {
	store, err := flags.New(flags.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	src, err := flags.NewFileSource(store, flags.FileOptions{Paths: []string{file}})
	if err != nil {
		store.Close()
		return nil, err
	}
	api := isolated.NewAPI()
	if err := api.SetProviderAndWait(context.Background(), openfeature.New(store, openfeature.Options{})); err != nil {
		src.Close()
		store.Close()
		return nil, err
	}
	return &app{store: store, src: src, api: api, client: api.NewClient()}, nil
}

func (a *app) close() {
	_ = a.api.Shutdown(context.Background())
	_ = a.src.Close()
	_ = a.store.Close()
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	if user == "" {
		user = "anonymous"
	}
	ec := of.NewEvaluationContext(user, map[string]any{"plan": r.URL.Query().Get("plan")})
	greeting := a.client.String(r.Context(), "greeting", "Hello", ec)
	checkout, _ := a.client.BooleanValueDetails(r.Context(), "new-checkout", false, ec)
	fmt.Fprintf(w, "%s, %s. checkout: %s (%s)\n", greeting, user,
		map[bool]string{true: "new", false: "classic"}[checkout.Value], checkout.Reason)
}

func serve(ctx context.Context, log *slog.Logger, file, addr, adminAddr string) error {
	a, err := start(log, file)
	if err != nil {
		return err
	}
	defer a.close()
	a.api.AddHandler(of.ProviderConfigChange, callback(func(d of.EventDetails) {
		log.Info("flags changed", "flags", d.FlagChanges)
	}))
	a.api.AddHandler(of.ProviderStale, callback(func(d of.EventDetails) {
		log.Warn("flags file rejected; serving the last good configuration", "why", d.Message)
	}))

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	adminLn, err := listenAdmin(adminAddr)
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
	adminSrv := &http.Server{Handler: flags.NewAdminHandler(a.store, flags.AdminOptions{}), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- adminSrv.Serve(adminLn) }()
	log.Info("serving", "addr", ln.Addr().String(), "admin", adminLn.Addr().String(), "flags", file)

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(err, srv.Shutdown(shutdownCtx), adminSrv.Shutdown(shutdownCtx))
}

// listenAdmin keeps the admin API off public interfaces: it has no
// authentication, so it listens on a loopback address only (and its
// handler answers only loopback Host names, against DNS rebinding).
func listenAdmin(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("admin address %q: %w", addr, err)
	}
	if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("admin address %q is not loopback: the admin API has no authentication", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	// "localhost" could resolve elsewhere: check what was bound.
	if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("admin address %q bound %s, not loopback", addr, ln.Addr())
	}
	return ln, nil
}

func callback(fn func(of.EventDetails)) of.EventCallback {
	f := fn
	return &f
}

// runDemo serves a copy of the flags file, edits it twice (once badly) and
// shows what requests see. It is bounded: every wait has a timeout.
func runDemo(log *slog.Logger, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "baton-flags-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "flags.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	a, err := start(slog.New(slog.NewTextHandler(io.Discard, nil)), path)
	if err != nil {
		return err
	}
	defer a.close()
	changed := make(chan of.EventDetails, 8)
	stale := make(chan of.EventDetails, 8)
	a.api.AddHandler(of.ProviderConfigChange, callback(func(d of.EventDetails) { changed <- d }))
	a.api.AddHandler(of.ProviderStale, callback(func(d of.EventDetails) { stale <- d }))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	defer http.DefaultClient.CloseIdleConnections()
	// get prints the response and checks that it says want.
	get := func(query, want string) error {
		resp, err := http.Get("http://" + ln.Addr().String() + "/?" + query)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		fmt.Printf("  GET /?%s -> %s", query, body)
		if err == nil && !strings.Contains(string(body), want) {
			err = fmt.Errorf("GET /?%s: %q does not say %q", query, body, want)
		}
		return err
	}
	wait := func(ch <-chan of.EventDetails, what string) (of.EventDetails, error) {
		select {
		case d := <-ch:
			return d, nil
		case <-time.After(10 * time.Second):
			return of.EventDetails{}, fmt.Errorf("no %s event within 10s", what)
		}
	}
	write := func(body string) error { // as editors do: write aside, rename over
		if err := os.WriteFile(path+".tmp", []byte(body), 0o644); err != nil {
			return err
		}
		return os.Rename(path+".tmp", path)
	}

	fmt.Println("1. as shipped:")
	for _, q := range [][2]string{
		{"user=alice", "Welcome back, alice"}, // staff segment
		{"user=bob&plan=pro", "checkout: new (TARGETING_MATCH)"},
		{"user=carol", "checkout: classic (DEFAULT)"},
	} {
		if err := get(q[0], q[1]); err != nil {
			return err
		}
	}
	fmt.Println("2. the file turns new-checkout off for everyone:")
	start := time.Now()
	if err := write(strings.Replace(string(data), "default: off\n", "default: off\n    disabled: true\n", 1)); err != nil {
		return err
	}
	d, err := wait(changed, "CONFIGURATION_CHANGED")
	if err != nil {
		return err
	}
	fmt.Printf("  CONFIGURATION_CHANGED %v after %v\n", d.FlagChanges, time.Since(start).Round(time.Millisecond))
	if err := get("user=bob&plan=pro", "checkout: classic (DISABLED)"); err != nil {
		return err
	}
	fmt.Println("3. a broken edit is refused; the last good flags stay:")
	if err := write(strings.Replace(string(data), "default: plain", "default: plian", 1)); err != nil {
		return err
	}
	if d, err = wait(stale, "STALE"); err != nil {
		return err
	}
	fmt.Printf("  STALE: %s\n", d.Message)
	if err := get("user=bob&plan=pro", "checkout: classic (DISABLED)"); err != nil {
		return err
	}
	for _, st := range a.store.Flags() {
		fmt.Printf("  usage: %s evaluated %d times %v\n", st.Key, st.Evaluations, st.ByVariant)
	}
	return nil
}
