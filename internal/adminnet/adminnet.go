package adminnet

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
)

// ListenUnix listens on a Unix socket at path with mode 0600, so only the
// owner of the process can connect. The socket is bound in a private
// directory beside path and renamed into place, so it is never reachable with
// looser permissions; a stale socket at path is replaced, any other file is
// refused. Closing the listener removes the socket.
func ListenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("admin socket %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("admin socket: removing stale socket: %w", err)
		}
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".baton-admin-*")
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	inner := filepath.Join(tmp, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: inner, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	// The socket file moves to path; Close removes it there instead.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(inner, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Rename(inner, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return &unixListener{Listener: ln, path: path}, nil
}

// unixListener removes its socket file on the first Close.
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
		return nil, fmt.Errorf("admin address %q: %w", addr, err)
	}
	if host != "localhost" {
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("admin address %q is not loopback: the admin API has no authentication", addr)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("admin address %q resolved to %s, not loopback", addr, a.IP)
	}
	return ln, nil
}
