package graceful

import (
	"errors"
	"net"
	"os"
	"sync"
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
	// file is a duplicate descriptor handed to new processes.
	file *os.File

	mu     sync.Mutex
	paused bool
	wake   chan struct{} // closed when accepting resumes
	closed chan struct{}
	once   sync.Once
}

type deadliner interface{ SetDeadline(time.Time) error }

func newListener(inner net.Listener, key fileKey, file *os.File) *listener {
	return &listener{Listener: inner, key: key, file: file, wake: make(chan struct{}), closed: make(chan struct{})}
}

// Accept blocks while the listener is paused. A connection the kernel handed
// over before the pause took effect is returned and served normally.
func (l *listener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		paused, wake := l.paused, l.wake
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
		if err == nil {
			return c, nil
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

// pause stops accepting. The socket stays open.
func (l *listener) pause() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.paused {
		return
	}
	l.paused = true
	l.wake = make(chan struct{})
	if d, ok := l.Listener.(deadliner); ok {
		_ = d.SetDeadline(time.Unix(1, 0))
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
		_ = p.file.Close()
	})
	return err
}
