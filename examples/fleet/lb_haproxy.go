//go:build unix

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/rollout/fleet/haproxy"
)

// lbRetries are the options of a load balancer that loses a server
// abruptly: a request whose connection fails, or that gets no answer, is
// sent again to another server (HAProxy answers it from there; the
// client never sees the failure). They are added to the defaults section
// that haproxy.Config renders.
const lbRetries = "  retries 3\n  option redispatch 1\n  retry-on conn-failure empty-response response-timeout\n"

// startHAProxy runs HAProxy in front of the hosts: one backend, "fleet",
// with each host's service address, HTTP health checks of graceful's
// readiness probe every 250 ms, and lbRetries. It returns the frontend's
// address and a stop function.
func (x *example) startHAProxy(ctx context.Context) (string, func(), error) {
	bin, err := haproxy.Find()
	if err != nil {
		return "", nil, err
	}
	dir := filepath.Join(x.dir, "haproxy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	front := ln.Addr().String()
	ln.Close()
	var servers []haproxy.Server
	for _, id := range hostIDs {
		servers = append(servers, haproxy.Server{Name: id, Address: x.addrs[id]})
	}
	cfg := haproxy.Config{Dir: dir, Backends: []haproxy.Backend{{
		Name: "fleet", Listen: front, Servers: servers, HealthPath: "/healthz", CheckInterval: 250 * time.Millisecond,
	}}}
	sock := filepath.Join(dir, "admin.sock")
	text, err := cfg.Render(sock, nil)
	if err != nil {
		return "", nil, err
	}
	if !strings.Contains(text, "\ndefaults\n") {
		return "", nil, fmt.Errorf("haproxy: the rendered configuration has no defaults section:\n%s", text)
	}
	text = strings.Replace(text, "\ndefaults\n", "\ndefaults\n"+lbRetries, 1)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return "", nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "haproxy.log"))
	if err != nil {
		return "", nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	client, err := haproxy.NewClient(sock, haproxy.ClientOptions{})
	if err != nil {
		stop()
		return "", nil, err
	}
	err = x.await("HAProxy checking every host up", 20*time.Second, func() error {
		select {
		case <-exited:
			return fmt.Errorf("%w: haproxy exited (see %s)", errStop, logf.Name())
		default:
		}
		st, err := client.Stats(ctx, "fleet")
		if err != nil {
			return err
		}
		for _, s := range st {
			if !s.Checked() {
				return fmt.Errorf("%s is %s (%s)", s.Server, s.Status, s.CheckStatus)
			}
		}
		return nil
	})
	if err != nil {
		stop()
		return "", nil, err
	}
	return front, stop, nil
}
