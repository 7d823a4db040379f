package canary

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// UpstreamOptions configures NewUpstream. Address is required: the zero
// UpstreamOptions makes NewUpstream fail with ErrInvalidOptions. Every
// other zero field means the documented default.
type UpstreamOptions struct {
	// Address is where the other process listens: "host:port" for TCP or
	// "unix:/path/to.sock" for a Unix socket.
	Address string
	// Transport carries the proxied requests; nil means a transport made
	// for one upstream (see DefaultUpstreamIdleConns), dialing Address.
	// With a custom transport, Address must be TCP.
	Transport http.RoundTripper
	// FlushInterval is passed to httputil.ReverseProxy: zero flushes only
	// at the end (streams such as text/event-stream, and answers of
	// unknown length such as gRPC's, flush at once anyway).
	FlushInterval time.Duration
	// H2C speaks HTTP/2 without TLS to the upstream (prior knowledge), as
	// a gRPC server expects; the upstream's trailers (grpc-status) reach
	// the client and the Classifier. False means HTTP/1.1. It needs the
	// transport NewUpstream makes (Transport nil).
	H2C bool
	// Logger receives proxy errors; nil discards.
	Logger *slog.Logger
}

// DefaultUpstreamIdleConns is the number of idle keep-alive connections
// kept to an upstream: enough that a loaded splitter does not open a new
// connection (and burn an ephemeral port) per request.
const DefaultUpstreamIdleConns = 128

// Upstream is an http.Handler that proxies to another process (the new
// binary on another port or a Unix socket), for use as a Splitter target.
// The inbound Host header is kept and X-Forwarded-* headers are set. When
// the upstream cannot be reached the client gets 502 Bad Gateway, which the
// splitter counts as an error, unless the client had already gone away
// (then the splitter counts it as canceled, see Splitter.ServeHTTP). Use NewUpstream; the zero value is not usable.
type Upstream struct {
	proxy     *httputil.ReverseProxy
	transport *http.Transport // ours, nil for a custom transport
	addr      string
}

// NewUpstream returns a proxy to o.Address.
func NewUpstream(o UpstreamOptions) (*Upstream, error) {
	if o.Address == "" {
		return nil, optErr("Address", `an upstream address is required ("host:port" or "unix:/path")`)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	u := &Upstream{addr: o.Address}
	target := &url.URL{Scheme: "http", Host: o.Address}
	rt := o.Transport
	if o.H2C && rt != nil {
		return nil, optErr("H2C", "needs the transport NewUpstream makes; configure HTTP/2 on the custom Transport instead")
	}
	if path, ok := strings.CutPrefix(o.Address, "unix:"); ok {
		if path == "" {
			return nil, optErr("Address", "unix: needs a socket path")
		}
		if rt != nil {
			return nil, optErr("Transport", "a custom transport cannot dial the Unix socket %s", path)
		}
		target.Host = "upstream.sock" // any valid host: the dialer ignores it
		u.transport = newTransport(func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}, o.H2C)
		rt = u.transport
	} else {
		if _, _, err := net.SplitHostPort(o.Address); err != nil {
			return nil, optErr("Address", "%q is neither host:port nor unix:/path: %v", o.Address, err)
		}
		if rt == nil {
			d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
			u.transport = newTransport(d.DialContext, o.H2C)
			rt = u.transport
		}
	}
	u.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:     rt,
		FlushInterval: o.FlushInterval,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				// The client is gone: nobody reads this answer, and the
				// splitter does not count it as the upstream's error.
				log.Debug("canary: client went away before the upstream answered", "upstream", o.Address, "path", r.URL.Path, "err", err)
			} else {
				log.Warn("canary: upstream unreachable", "upstream", o.Address, "path", r.URL.Path, "err", err)
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return u, nil
}

func newTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error), h2c bool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if h2c {
		t.Protocols = new(http.Protocols)
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	t.Proxy = nil // the upstream is local: never through an HTTP proxy
	t.DialContext = dial
	t.MaxIdleConns = DefaultUpstreamIdleConns
	t.MaxIdleConnsPerHost = DefaultUpstreamIdleConns
	return t
}

// ServeHTTP proxies the request to the upstream.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) { u.proxy.ServeHTTP(w, r) }

// Address returns the upstream's address as given.
func (u *Upstream) Address() string { return u.addr }

// Close closes idle connections to the upstream; in-flight requests finish.
// It is idempotent and returns nil.
func (u *Upstream) Close() error {
	if u.transport != nil {
		u.transport.CloseIdleConnections()
	}
	return nil
}
