package adminnet

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ErrSocketInUse is wrapped by ListenUnix when a process answers on the
// socket at path: another instance serves its admin API there.
var ErrSocketInUse = errors.New("adminnet: admin socket in use")

// staleProbeTimeout bounds the dial that tells a live socket from a stale
// one; a live listener accepts in microseconds (the kernel completes the
// connection before accept), a stale one refuses at once.
const staleProbeTimeout = time.Second

// ListenUnix listens on a Unix socket at path with mode 0600, so only the
// owner of the process can connect. The socket is bound in a private
// directory beside path and renamed into place, so it is never reachable with
// looser permissions. A socket at path that nobody answers on (left by a dead
// process) is replaced; a live one is refused with ErrSocketInUse, and any
// other file is refused. Closing the listener removes the socket, unless
// path has been replaced by another socket since.
func ListenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("admin socket %s exists and is not a socket", path)
		}
		if err := probeStale(path); err != nil {
			return nil, err
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
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
	// Remember which file is ours before it becomes visible at path, so
	// that Close never removes a successor's socket.
	fi, err := os.Lstat(inner)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Rename(inner, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return &unixListener{Listener: ln, path: path, file: fi}, nil
}

// probeStale returns nil when nothing answers on the socket at path.
func probeStale(path string) error {
	c, err := net.DialTimeout("unix", path, staleProbeTimeout)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: a running process answers on %s (another instance?); stop it or use another path", ErrSocketInUse, path)
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// Permission denied, a timeout (a listener whose backlog is full is
	// alive): not provably stale, so it stays.
	return fmt.Errorf("%w: cannot tell whether %s is stale: %v", ErrSocketInUse, path, err)
}

// unixListener removes its socket file on the first Close, if path still
// names the socket it created.
type unixListener struct {
	net.Listener
	path string
	file fs.FileInfo
	once sync.Once
}

func (l *unixListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() {
		// A successor may have replaced the socket after this one stopped
		// answering: its file is not ours to remove. (Between this check
		// and the Remove a successor could still swap the file in; it
		// would have to find this socket dead first, which it only does
		// after the Listener.Close above, so the window is that small.)
		if fi, err := os.Lstat(l.path); err == nil && os.SameFile(fi, l.file) {
			os.Remove(l.path)
		}
	})
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
