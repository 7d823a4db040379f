package graceful

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"time"
)

// This file hooks net/http servers into the drainer: connection states,
// request contexts, and answers that carry Connection: close during a
// drain.

// HTTP registers srv for draining: its connections are tracked through
// ConnState (the previous hook still runs), its request contexts carry
// what [Draining] needs, and its Handler (nil means http.DefaultServeMux) is
// wrapped by [Upgrader.DrainHandler]. Every HTTP flavour net/http serves
// drains: HTTP/1, HTTP/2 over TLS, and unencrypted HTTP/2 (Protocols). For
// x/net's h2c.NewHandler, also wrap the handler it hands requests to (see
// DrainHandler). Set srv.Handler first, and call HTTP before srv.Serve, with
// a listener from Listen.
func (u *Upgrader) HTTP(srv *http.Server) { u.drain.addHTTP(srv) }

// DrainHandler returns next (nil means http.DefaultServeMux) with its
// answers written during a drain carrying Connection: close: net/http
// closes an HTTP/1 connection right after such an answer, and an HTTP/2
// server sends GOAWAY and closes the connection once the client's streams
// are done, so that clients move to the new process on their next request
// while everything in flight is answered. HTTP applies it to the server's
// Handler. Apply it yourself to a handler that is served on connections
// the server hands over: x/net's h2c serves each h2c connection with the
// handler given to h2c.NewHandler, not with the server's, so write
// h2c.NewHandler(u.DrainHandler(mux), h2s).
func (u *Upgrader) DrainHandler(next http.Handler) http.Handler {
	return u.drain.closeWhenDraining(next)
}

// addHTTP hooks srv's ConnState and BaseContext.
func (d *drainer) addHTTP(srv *http.Server) {
	srv.Handler = d.closeWhenDraining(srv.Handler)
	prevState := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		d.connState(c, st)
		if prevState != nil {
			prevState(c, st)
		}
	}
	prevBase := srv.BaseContext
	srv.BaseContext = func(ln net.Listener) context.Context {
		ctx := context.Background()
		if prevBase != nil {
			ctx = prevBase(ln)
		}
		return context.WithValue(ctx, drainKey{}, d)
	}
	d.mu.Lock()
	d.servers = append(d.servers, srv)
	d.mu.Unlock()
}

// connState records what net/http reports. One connection may be reported
// under several net.Conns (a *tls.Conn, net/http's stand-in for an
// unencrypted HTTP/2 connection, the conn x/net's h2c wraps around a
// hijacked one); all are filed under the same entry.
func (d *drainer) connState(c net.Conn, st http.ConnState) {
	key := canon(c)
	own, _ := key.(*conn)
	d.mu.Lock()
	e := d.conns[key]
	if e == nil && own == nil {
		// x/net's h2c serves a hijacked connection through a wrapper
		// that does not reveal it; its addresses are the connection's.
		if a := addrPair(c); a != "" {
			e = d.byAddr[a]
		}
	}
	switch st {
	case http.StateClosed:
		if e != nil {
			d.removeLocked(e)
		}
	case http.StateHijacked:
		// net/http let go of it. One of ours is waited for until it
		// closes (a WebSocket, h2c); a foreign one, whose close nobody
		// reports, until Track's release or the drain deadline.
		if e != nil {
			e.hijacked, e.st, e.since = true, st, time.Now()
			if own != nil {
				if e.addr = addrPair(own); e.addr != "" {
					d.byAddr[e.addr] = e
				}
			}
		}
	default:
		if own != nil && own.closed.Load() {
			break // reported after it closed: nothing to wait for
		}
		if e == nil {
			e = &connEntry{key: key, own: own}
			d.conns[key] = e
		}
		e.st, e.since = st, time.Now()
	}
	d.mu.Unlock()
	if st != http.StateNew && st != http.StateActive {
		d.poke()
	}
}

// closeWhenDraining makes answers written during a drain carry Connection:
// close. This replaces http.Server.SetKeepAlivesEnabled(false), which also
// closes every idle connection at that instant (the race idleGrace avoids)
// and closes connections after answers written just before it without
// telling the client; and it reaches HTTP/2, where net/http and x/net turn
// the header into a GOAWAY that the next request meets.
func (d *drainer) closeWhenDraining(next http.Handler) http.Handler {
	if next == nil {
		next = http.DefaultServeMux
	}
	if _, ok := next.(drainHandler); ok {
		return next
	}
	return drainHandler{d: d, next: next}
}

type drainHandler struct {
	d    *drainer
	next http.Handler
}

func (h drainHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cw := &closeWriter{ResponseWriter: w, d: h.d}
	h.next.ServeHTTP(cw, r)
	// A handler that wrote nothing: net/http writes the header from this
	// map after we return.
	cw.header()
}

// closeWriter adds Connection: close to an answer if a drain has started
// by the time its header is written. It offers what net/http's
// ResponseWriters offer (Flusher, Hijacker, ReaderFrom, Pusher) and Unwrap
// for http.ResponseController.
type closeWriter struct {
	http.ResponseWriter
	d     *drainer
	wrote bool
}

func (w *closeWriter) header() {
	if w.wrote {
		return
	}
	w.wrote = true
	if w.d.closing.Load() {
		w.ResponseWriter.Header().Set("Connection", "close")
	}
}

func (w *closeWriter) WriteHeader(code int) {
	if code >= 200 {
		w.header()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *closeWriter) Write(b []byte) (int, error) {
	w.header()
	return w.ResponseWriter.Write(b)
}

func (w *closeWriter) WriteString(str string) (int, error) {
	w.header()
	return io.WriteString(w.ResponseWriter, str)
}

func (w *closeWriter) ReadFrom(r io.Reader) (int64, error) {
	w.header()
	return io.Copy(w.ResponseWriter, r)
}

func (w *closeWriter) Flush() {
	w.header()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *closeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.wrote = true // the connection is the handler's now
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *closeWriter) Push(target string, opts *http.PushOptions) error {
	if p, ok := w.ResponseWriter.(http.Pusher); ok {
		return p.Push(target, opts)
	}
	return http.ErrNotSupported
}

func (w *closeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
