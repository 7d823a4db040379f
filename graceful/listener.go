package graceful

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// listener is a net.Listener whose accepting can be paused and resumed
// without closing the socket. A paused process keeps its descriptor, so the
// kernel's accept queue (shared with the successor, which holds another
// descriptor of the same socket) keeps every queued connection: nothing is
// refused and nothing is reset, whoever accepts it.
type listener struct {
	net.Listener
	key fileKey
	// file is a duplicate descriptor handed to new processes (nil where
	// there is no handoff).
	file *os.File
	// drain learns of every accepted connection's close (conn).
	drain *drainer

	mu     sync.Mutex
	paused bool
	wake   chan struct{} // closed when accepting resumes
	closed chan struct{}
	once   sync.Once
	// inAccept counts callers inside the socket's accept; handedOut
	// counts connections returned whose caller has not come back to
	// Accept yet. A caller such as http.Server.Serve registers a
	// connection (ConnState StateNew) before it accepts again, so once
	// both are zero every accepted connection is visible to the drain.
	inAccept, handedOut int
	quiet               chan struct{} // poked when either drops
}

type deadliner interface{ SetDeadline(time.Time) error }

func newListener(inner net.Listener, key fileKey, file *os.File, d *drainer) *listener {
	return &listener{Listener: inner, key: key, file: file, drain: d, wake: make(chan struct{}), closed: make(chan struct{}), quiet: make(chan struct{}, 1)}
}

// Accept blocks while the listener is paused. A connection the kernel handed
// over before the pause took effect is returned and served normally.
func (l *listener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.handedOut > 0 {
		l.handedOut--
		l.pokeLocked()
	}
	l.mu.Unlock()
	for {
		l.mu.Lock()
		paused, wake := l.paused, l.wake
		if !paused {
			l.inAccept++
		}
		l.mu.Unlock()
		select {
		case <-l.closed:
			return nil, net.ErrClosed
		default:
		}
		if paused {
			select {
			case <-wake:
				continue
			case <-l.closed:
				return nil, net.ErrClosed
			}
		}
		c, err := l.Listener.Accept()
		l.mu.Lock()
		l.inAccept--
		if err == nil {
			l.handedOut++
		}
		l.pokeLocked()
		l.mu.Unlock()
		if err == nil {
			return &conn{Conn: c, drain: l.drain}, nil
		}
		// A deadline in the past is how pause interrupts a blocked Accept.
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		select {
		case <-l.closed:
			return nil, net.ErrClosed
		default:
		}
		return nil, err
	}
}

func (l *listener) pokeLocked() {
	select {
	case l.quiet <- struct{}{}:
	default:
	}
}

// pauseQuietBound bounds how long pause waits for the accepting caller to
// come back; only a caller that stopped calling Accept (or does slow work
// between accepts) can make it wait that long.
const pauseQuietBound = 250 * time.Millisecond

// pause stops accepting. The socket stays open. It returns once a
// connection the kernel handed over just before the pause has reached the
// server (see inAccept), so a drain that starts next sees it and answers it.
func (l *listener) pause() {
	l.mu.Lock()
	if !l.paused {
		l.paused = true
		l.wake = make(chan struct{})
		if d, ok := l.Listener.(deadliner); ok {
			_ = d.SetDeadline(time.Unix(1, 0))
		}
	}
	l.mu.Unlock()
	bound := time.NewTimer(pauseQuietBound)
	defer bound.Stop()
	for {
		l.mu.Lock()
		quiet := l.inAccept == 0 && l.handedOut == 0
		l.mu.Unlock()
		if quiet {
			return
		}
		select {
		case <-l.quiet:
		case <-l.closed:
			return
		case <-bound.C:
			return
		}
	}
}

// resume accepts again after pause.
func (l *listener) resume() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.paused {
		return
	}
	l.paused = false
	if d, ok := l.Listener.(deadliner); ok {
		_ = d.SetDeadline(time.Time{})
	}
	close(l.wake)
}

// Close closes this process's descriptors of the socket; a successor's
// descriptors keep it open. Idempotent.
func (l *listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.closed)
		err = l.Listener.Close()
		if l.file != nil {
			_ = l.file.Close()
		}
	})
	return err
}

// packetConn keeps the duplicate descriptor of an inherited or created
// packet socket.
type packetConn struct {
	net.PacketConn
	key  fileKey
	file *os.File
	once sync.Once
}

func (p *packetConn) Close() error {
	var err error
	p.once.Do(func() {
		err = p.PacketConn.Close()
		if p.file != nil {
			_ = p.file.Close()
		}
	})
	return err
}

// conn is a connection accepted by a graceful listener. Its Close tells the
// drainer, which is how a connection that net/http no longer reports on (a
// hijacked one: a WebSocket, HTTP/2 served by x/net's h2c) ends the drain's
// wait for it as soon as its owner closes it. NetConn returns the
// connection underneath (a *net.TCPConn, a *net.UnixConn); ReadFrom (for
// sendfile), CloseWrite and SyscallConn pass through to it.
type conn struct {
	net.Conn
	drain  *drainer
	closed atomic.Bool
}

// Close closes the connection and, the first time, tells the drainer.
func (c *conn) Close() error {
	err := c.Conn.Close()
	if !c.closed.Swap(true) && c.drain != nil {
		c.drain.connClosed(c)
	}
	return err
}

// NetConn returns the connection the listener accepted.
func (c *conn) NetConn() net.Conn { return c.Conn }

func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}
