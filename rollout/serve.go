package rollout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/batonhq/baton/internal/adminnet"
)

// ListenUnix listens on a Unix socket at path with mode 0600, so only the
// owner of the process can reach the admin API. The socket is bound in a
// private directory and renamed into place, so it is never reachable with
// looser permissions. A stale socket at path (nobody answers) is replaced;
// a live one is refused (another instance serves there: for a service
// that upgrades in place use ListenAdmin, which gives each process its own
// socket and a stable name), and any other file is refused.
// Closing the listener removes the socket unless another listener has
// taken the path over since.
func ListenUnix(path string) (net.Listener, error) {
	ln, err := adminnet.ListenUnix(path)
	if err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
	}
	return ln, nil
}

// AdminSocket is a process's admin socket with a stable name that follows
// the rollout across handoffs: each process listens on its own socket,
// "<path>.<pid>" (mode 0600), and path is a symbolic link that baton
// points at the process that drives the rollout (Driver.Run claims it
// when this process takes the drive; Claim does it by hand). rolloutctl
// -socket path reaches that process, before and after an upgrade, and
// after serving comes back. The zero value is not usable: use
// ListenAdmin.
type AdminSocket struct {
	*adminnet.Linked
}

// ListenAdmin listens on this process's socket "<path>.<pid>" and links
// path to it when no live process holds the name. The directory of path
// should be private to the service's user: the link, like the socket, is
// how the admin API is reached.
func ListenAdmin(path string) (*AdminSocket, error) {
	l, err := adminnet.ListenLinked(path)
	if err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
	}
	return &AdminSocket{l}, nil
}

// ListenLoopback listens on addr ("127.0.0.1:0", "[::1]:8081",
// "localhost:9000") and refuses any address that is not loopback, since
// the admin API has no authentication.
func ListenLoopback(addr string) (net.Listener, error) {
	ln, err := adminnet.ListenLoopback(addr)
	if err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
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

// ServeAdmin serves h on ln in a goroutine of its own and returns at
// once; Shutdown or Close stop it.
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
