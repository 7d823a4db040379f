package rollout

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ListenUnix listens on a Unix socket at path with mode 0600, so only the
// owner of the process can reach the admin API. The socket is bound in a
// private directory and renamed into place, so it is never reachable with
// looser permissions; a stale socket at path is replaced, any other file
// is refused. Closing the listener removes the socket.
func ListenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("rollout: %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("rollout: removing stale socket: %w", err)
		}
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".baton-admin-*")
	if err != nil {
		return nil, fmt.Errorf("rollout: admin socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	inner := filepath.Join(tmp, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: inner, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("rollout: admin socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(inner, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("rollout: admin socket: %w", err)
	}
	if err := os.Rename(inner, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("rollout: admin socket: %w", err)
	}
	return &unixListener{Listener: ln, path: path}, nil
}

type unixListener struct {
	net.Listener
	path string
	once sync.Once
}

func (l *unixListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { os.Remove(l.path) })
	return err
}

// ListenLoopback listens on addr ("127.0.0.1:0", "[::1]:8081",
// "localhost:9000") and refuses any address that is not loopback.
func ListenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("rollout: admin address %q: %w", addr, err)
	}
	if host != "localhost" {
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("rollout: admin address %q is not loopback: the admin API has no authentication", addr)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rollout: admin listener: %w", err)
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("rollout: %q resolved to %s, not loopback", addr, a.IP)
	}
	return ln, nil
}

// AdminServer serves an admin handler on a listener; it owns one goroutine
// that ends with Shutdown or Close. The zero value is not usable: use
// ServeAdmin.
type AdminServer struct {
	srv  *http.Server
	done chan struct{}
	err  error
}

// ServeAdmin starts serving h on ln.
func ServeAdmin(ln net.Listener, h http.Handler) *AdminServer {
	s := &AdminServer{
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	return s
}

// Shutdown stops accepting and waits for requests in flight, or ctx.
func (s *AdminServer) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	select {
	case <-s.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err == nil {
		err = s.err
	}
	return err
}

// Close stops at once; it is idempotent.
func (s *AdminServer) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}
