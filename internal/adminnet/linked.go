package adminnet

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// Linked is a per-process admin socket with a stable name: the socket is
// "<path>.<pid>" (ListenUnix, so mode 0600 and never stolen from a live
// process), and path is a symbolic link to the socket of whichever process
// last called Claim. A client dials path and reaches the process that
// claimed it; after a handoff the new process claims it, and when serving
// comes back the old one claims it again. The zero value is not usable:
// use ListenLinked.
type Linked struct {
	net.Listener
	path   string // the stable name
	target string // base name of this process's socket
	once   sync.Once
}

// ListenLinked listens on "<path>.<pid>" and, if nothing names path yet
// (or path is a link to a socket that is gone), links path to it. A
// path that is not a symbolic link is refused, and so is a link to a
// socket some process answers on: Claim takes it over when this process
// takes the drive.
func ListenLinked(path string) (*Linked, error) {
	target := filepath.Base(path) + "." + strconv.Itoa(os.Getpid())
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() != fs.ModeSymlink {
		return nil, fmt.Errorf("admin socket name %s exists and is not a symbolic link", path)
	}
	ln, err := ListenUnix(filepath.Join(filepath.Dir(path), target))
	if err != nil {
		return nil, err
	}
	l := &Linked{Listener: ln, path: path, target: target}
	if dest, err := os.Readlink(path); err != nil || probeStale(filepath.Join(filepath.Dir(path), dest)) == nil {
		// No link yet, or the one there names a socket nobody answers
		// on (a process that died): this one is the service now.
		if err := l.Claim(); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return l, nil
}

// Socket returns the path of this process's own socket.
func (l *Linked) Socket() string { return filepath.Join(filepath.Dir(l.path), l.target) }

// Path returns the stable name.
func (l *Linked) Path() string { return l.path }

// Claim points the stable name at this process's socket, atomically (a
// new link renamed over the old one): a client never finds the name
// missing.
func (l *Linked) Claim() error {
	dir := filepath.Dir(l.path)
	tmp := filepath.Join(dir, "."+filepath.Base(l.path)+".link-"+strconv.Itoa(os.Getpid()))
	_ = os.Remove(tmp)
	if err := os.Symlink(l.target, tmp); err != nil {
		return fmt.Errorf("admin socket name: %w", err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("admin socket name: %w", err)
	}
	return nil
}

// Close closes the socket and removes the stable name if it still points
// at this process's socket.
func (l *Linked) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() {
		if dest, rerr := os.Readlink(l.path); rerr == nil && dest == l.target {
			if rmErr := os.Remove(l.path); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) && err == nil {
				err = rmErr
			}
		}
	})
	return err
}
