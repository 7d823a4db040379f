package graceful

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// Listen returns a stream listener for network and address: the one handed
// down by the parent process under the same network and address, a socket
// activated by systemd with that address, or a new one. Wrap it for TLS
// after Listen. Its Accept blocks until Ready and while the process bakes
// or drains, so serving may start before Ready. Call Listen before Ready:
// descriptors handed down and not claimed by then are closed.
func (u *Upgrader) Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	key := fileKey{kindListener, network, addr}
	u.mu.Lock()
	defer u.mu.Unlock()
	inner, f, err := openLocked(u, ctx, key, socketKind[net.Listener]{
		name:     "listener",
		fromFile: net.FileListener,
		listen:   u.opts.ListenConfig.Listen,
	})
	if err != nil {
		return nil, err
	}
	l := newListener(inner, key, f, u.drain)
	if u.state == StateStarting {
		// A process accepts only once its readiness check passed;
		// until then connections wait in the kernel's queue (or go to
		// the parent, which holds the same socket).
		l.pause()
	}
	u.listeners = append(u.listeners, l)
	return l, nil
}

// ListenPacket is Listen for packet sockets (UDP, unixgram). Packet sockets
// cannot be paused: both processes may read from the socket during a
// handoff, so stop reading when Draining's channel closes.
func (u *Upgrader) ListenPacket(ctx context.Context, network, addr string) (net.PacketConn, error) {
	key := fileKey{kindPacket, network, addr}
	u.mu.Lock()
	defer u.mu.Unlock()
	pc, f, err := openLocked(u, ctx, key, socketKind[net.PacketConn]{
		name:     "packet conn",
		packet:   true,
		fromFile: net.FilePacketConn,
		listen:   u.opts.ListenConfig.ListenPacket,
	})
	if err != nil {
		return nil, err
	}
	p := &packetConn{PacketConn: pc, key: key, file: f}
	u.packets = append(u.packets, p)
	return p, nil
}

// socketKind is what Listen and ListenPacket differ in: how a socket is made
// from a descriptor and how a new one is opened.
type socketKind[T io.Closer] struct {
	name     string // in errors: "listener", "packet conn"
	packet   bool   // for takeActivated
	fromFile func(*os.File) (T, error)
	listen   func(ctx context.Context, network, addr string) (T, error)
}

// openLocked returns the socket for key, in order of preference: the one
// handed down by the parent, one activated by systemd, or a new one; and
// the descriptor to hand to a new process (the inherited one, or a
// duplicate this process owns). u.mu must be held.
func openLocked[T io.Closer](u *Upgrader, ctx context.Context, key fileKey, k socketKind[T]) (sock T, f *os.File, err error) {
	var zero T
	network, addr := key[1], key[2]
	if u.state >= StateDraining {
		return zero, nil, ErrDraining
	}
	if err := u.uniqueLocked(key); err != nil {
		return zero, nil, err
	}
	if f = u.inherited[key]; f != nil {
		delete(u.inherited, key)
		if sock, err = k.fromFile(f); err != nil {
			f.Close()
			return zero, nil, fmt.Errorf("%w: %s %s: %v", ErrInherit, k.name, key, err)
		}
	} else if af := u.takeActivated(network, addr, k.packet); af != nil {
		sock, err = k.fromFile(af)
		af.Close()
		if err != nil {
			return zero, nil, fmt.Errorf("graceful: activated socket for %s %s: %w", network, addr, err)
		}
	} else if sock, err = k.listen(ctx, network, addr); err != nil {
		return zero, nil, fmt.Errorf("graceful: listen %s %s: %w", network, addr, err)
	}
	if ul, ok := any(sock).(*net.UnixListener); ok {
		// The path must outlive this process when a successor serves it.
		ul.SetUnlinkOnClose(false)
	}
	if f != nil {
		return sock, f, nil
	}
	sc, ok := any(sock).(syscall.Conn)
	if !ok {
		sock.Close()
		return zero, nil, fmt.Errorf("graceful: %T cannot be handed to a new process", sock)
	}
	if f, err = dupFile(sc, key); err != nil {
		sock.Close()
		return zero, nil, fmt.Errorf("graceful: listen %s %s: %w", network, addr, err)
	}
	return sock, f, nil
}

// uniqueLocked refuses a second socket under the same network and address:
// the new process could inherit only one of them.
func (u *Upgrader) uniqueLocked(k fileKey) error {
	for _, l := range u.listeners {
		if l.key == k {
			return fmt.Errorf("graceful: Listen(%q, %q) called twice; each network and address can be handed down once", k[1], k[2])
		}
	}
	for _, p := range u.packets {
		if p.key == k {
			return fmt.Errorf("graceful: ListenPacket(%q, %q) called twice; each network and address can be handed down once", k[1], k[2])
		}
	}
	return nil
}

// takeActivated finds a systemd-activated socket bound to addr.
func (u *Upgrader) takeActivated(network, addr string, packet bool) *os.File {
	for i, f := range u.activated {
		var a net.Addr
		if packet {
			pc, err := net.FilePacketConn(f)
			if err != nil {
				continue
			}
			a = pc.LocalAddr()
			pc.Close()
		} else {
			l, err := net.FileListener(f)
			if err != nil {
				continue
			}
			a = l.Addr()
			l.Close()
		}
		if a.String() == addr || (a.Network() == network && sameAddr(a.String(), addr)) {
			u.activated = append(u.activated[:i], u.activated[i+1:]...)
			return f
		}
	}
	return nil
}

func sameAddr(have, want string) bool {
	hh, hp, err1 := net.SplitHostPort(have)
	wh, wp, err2 := net.SplitHostPort(want)
	if err1 != nil || err2 != nil || hp != wp {
		return false
	}
	return hh == wh || wh == "" || (wh == "0.0.0.0" && hh == "::")
}
