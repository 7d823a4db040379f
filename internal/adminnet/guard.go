package adminnet

import (
	"encoding/json"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// GuardOptions configure Guard. The zero value answers requests whose Host
// is loopback or that arrive on a Unix socket, with no Origin or this
// API's own, and takes bodies as application/json only.
type GuardOptions struct {
	// AllowedHosts lists further Host header values (without port,
	// compared case-insensitively) the handler answers, for a proxy or a
	// name in front of it; "*" accepts any. Nil accepts only an empty
	// Host, "localhost" and loopback addresses.
	AllowedHosts []string
	// Option names the setting that fills AllowedHosts in the refusals
	// ("AdminOptions.AllowedHosts"), so that an operator knows what to
	// change. Empty means "the allowed hosts".
	Option string
	// BodyTypes are the media types a POST, PUT, PATCH or DELETE may
	// carry. Nil means application/json only. Never list a type a
	// browser sends cross-site without a preflight
	// (application/x-www-form-urlencoded, multipart/form-data,
	// text/plain).
	BodyTypes []string
}

// Guard refuses the requests that a web page in a browser on the same
// machine could make a local admin API answer, and serves the others with
// next:
//
//   - Host must be loopback (localhost, 127.0.0.0/8, ::1), listed in
//     AllowedHosts, or the request must come over a Unix socket (which no
//     browser opens): after DNS rebinding, a page's own name resolves to
//     127.0.0.1 and it becomes same-origin with a loopback listener, but
//     its requests still carry its name as Host. Refused with 403.
//   - Origin, when present, must be the API's own (the Host the request
//     was sent to) or an allowed host: a page on another site, or on
//     another local port, is refused with 403 even when its request is
//     one a browser sends without a preflight.
//   - A POST, and a PUT, PATCH or DELETE with a body, must carry one of
//     BodyTypes (by default application/json), which a cross-site form
//     cannot send without a CORS preflight that the API never grants.
//     Refused with 415.
//
// Every refusal is a JSON body {"error": "..."} saying why.
func Guard(next http.Handler, o GuardOptions) http.Handler {
	g := &guard{next: next, option: o.Option, types: o.BodyTypes}
	if g.option == "" {
		g.option = "the allowed hosts"
	}
	if g.types == nil {
		g.types = []string{"application/json"}
	}
	for _, h := range o.AllowedHosts {
		if h == "*" {
			g.anyHost = true
		}
		g.hosts = append(g.hosts, strings.ToLower(h))
	}
	return g
}

type guard struct {
	next    http.Handler
	option  string
	hosts   []string
	anyHost bool
	types   []string
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.hostAllowed(r) {
		WriteError(w, http.StatusForbidden, fmt.Sprintf(
			"Host %q is not loopback: the admin API answers only localhost, loopback addresses, "+
				"Unix sockets and %s (a guard against DNS rebinding)", r.Host, g.option))
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && !g.originAllowed(origin, r.Host) {
		WriteError(w, http.StatusForbidden, fmt.Sprintf(
			"Origin %q is not this admin API's (%s): requests from other sites are refused "+
				"(a guard against cross-site requests)", origin, r.Host))
		return
	}
	switch {
	case r.Method == http.MethodGet, r.Method == http.MethodHead, r.Method == http.MethodOptions:
	case r.Method != http.MethodPost && r.Header.Get("Content-Type") == "":
		// A browser preflights every cross-site PUT, PATCH and DELETE,
		// whatever they carry: only a body type needs checking.
	default:
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || !slices.Contains(g.types, mt) {
			WriteError(w, http.StatusUnsupportedMediaType, fmt.Sprintf(
				"%s needs Content-Type: %s (got %q)", r.Method, strings.Join(g.types, " or "), r.Header.Get("Content-Type")))
			return
		}
	}
	g.next.ServeHTTP(w, r)
}

func (g *guard) hostAllowed(r *http.Request) bool {
	if g.anyHost || r.Host == "" {
		return true
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && la.Network() == "unix" {
		return true // no browser can connect to a Unix socket
	}
	host := hostOnly(r.Host)
	return host == "localhost" || isLoopback(host) || slices.Contains(g.hosts, host)
}

// originAllowed reports whether origin is the API's own (same host and
// port as the Host the request was sent to) or an allowed host.
func (g *guard) originAllowed(origin, reqHost string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false // "null" (a sandboxed or file: page) included
	}
	if strings.EqualFold(u.Host, reqHost) {
		return true
	}
	return g.anyHost || slices.Contains(g.hosts, hostOnly(u.Host))
}

func hostOnly(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
}

func isLoopback(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// ErrorBody is the JSON of every error an admin API answers. The zero
// value has no message.
type ErrorBody struct {
	Error string `json:"error"`
}

// WriteError answers code with {"error": msg}, never cached.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, ErrorBody{Error: msg})
}

// WriteJSON answers code with v as JSON, never cached.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
