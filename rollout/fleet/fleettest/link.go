package fleettest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Link is a TCP relay in front of an engine: clients that dial Addr reach
// the target while the link is up. Cut closes every relayed connection and
// refuses new ones, as a network partition between one host and the
// engine would; Restore heals it. Its zero value is not usable: use
// NewLink.
type Link struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	cut    bool
	closed bool
	conns  map[net.Conn]struct{}
}

// NewLink listens on a free port of host (a loopback address; empty means
// 127.0.0.1) and relays to target.
func NewLink(host, target string) (*Link, error) {
	if host == "" {
		host = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, fmt.Errorf("fleettest: link to %s: %w", target, err)
	}
	l := &Link{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// Addr is the address to dial instead of the target.
func (l *Link) Addr() string { return l.ln.Addr().String() }

func (l *Link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		if !l.track(c) {
			c.Close()
			continue
		}
		l.wg.Add(1)
		go l.relay(c)
	}
}

func (l *Link) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut || l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *Link) forget(cs ...net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cs {
		delete(l.conns, c)
		c.Close()
	}
}

func (l *Link) relay(c net.Conn) {
	defer l.wg.Done()
	up, err := net.Dial("tcp", l.target)
	if err != nil {
		l.forget(c)
		return
	}
	if !l.track(up) {
		up.Close()
		l.forget(c)
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	l.forget(c, up)
	<-done
}

// Cut closes every relayed connection and refuses new ones until Restore.
func (l *Link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = true
	for c := range l.conns {
		c.Close()
		delete(l.conns, c)
	}
}

// Restore relays new connections again.
func (l *Link) Restore() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = false
}

// Close cuts the link for good and waits for its goroutines.
func (l *Link) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.Cut()
	err := l.ln.Close()
	l.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
