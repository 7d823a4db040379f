// Command tfserver is a service on cloudflare/tableflip v1.2.3 in its
// documented pattern (Upgrade on SIGHUP, then http.Server.Shutdown). Tests
// use it to show that a tableflip process can upgrade into a graceful one;
// upgradeload -plain measures it as the baseline.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/cloudflare/tableflip"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	addrFile := flag.String("addrfile", "", "write the bound address here")
	pidfile := flag.String("pidfile", "", "PID file (written by tableflip)")
	flag.Parse()

	upg, err := tableflip.New(tableflip.Options{PIDFile: *pidfile})
	if err != nil {
		panic(err)
	}
	defer upg.Stop()
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGHUP)
		for range sig {
			if err := upg.Upgrade(); err != nil {
				fmt.Fprintln(os.Stderr, "upgrade failed:", err)
			}
		}
	}()
	ln, err := upg.Listen("tcp", *addr)
	if err != nil {
		panic(err)
	}
	if *addrFile != "" {
		_ = os.WriteFile(*addrFile+".tmp", []byte(ln.Addr().String()), 0o600)
		_ = os.Rename(*addrFile+".tmp", *addrFile)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pid=%d\n", os.Getpid())
	})}
	go srv.Serve(ln)
	if err := upg.Ready(); err != nil {
		panic(err)
	}
	<-upg.Exit()
	_ = srv.Shutdown(context.Background())
}
