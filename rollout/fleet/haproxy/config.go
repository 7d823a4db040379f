package haproxy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Defaults of Config, Backend and Server.
const (
	DefaultServerWeight  = 100
	DefaultCheckInterval = 500 * time.Millisecond
	DefaultHTTPTimeout   = 30 * time.Second
)

// Config is the configuration Start writes for its HAProxy: one listen
// section (frontend and backend under one name) per Backend, in HTTP mode,
// and an admin socket. The zero value has no backend (Start refuses it).
type Config struct {
	// Binary is the haproxy executable. Empty means Find's answer.
	Binary string
	// Dir holds the configuration file, the admin socket (admin.sock,
	// mode 0600) and HAProxy's output (haproxy.log). It must exist; a
	// unix socket's path must stay under about 100 bytes. Empty means a
	// new directory under os.TempDir() that Close and Shutdown remove.
	Dir string
	// Backends are the listen sections.
	Backends []Backend
	// Timeout is HAProxy's client and server timeout. Zero means
	// DefaultHTTPTimeout.
	Timeout time.Duration
}

// Backend is one listen section: a frontend address and its servers. The
// zero value has no name (Start refuses it).
type Backend struct {
	// Name names the section in the Runtime API (Switch's Backend).
	Name string
	// Listen is the address clients connect to. Empty means
	// "127.0.0.1:0": Start binds a free port, keeps the socket (so no
	// other program can take the port in between) and hands it to
	// HAProxy; Process.Addr says which port it is.
	Listen string
	// Servers are the backend's servers, in order.
	Servers []Server
	// HealthPath, when not empty, turns on HTTP health checks (GET
	// HealthPath, 2xx or 3xx is up) of every server; a server then takes
	// traffic only once a check passed. Empty means no checks: a server
	// is up as soon as its state is ready.
	HealthPath string
	// CheckInterval is the interval of health checks. Zero means
	// DefaultCheckInterval.
	CheckInterval time.Duration
	// Retry makes HAProxy try another server when a connection to one
	// fails or closes before any answer (retries 3, option redispatch,
	// retry-on conn-failure empty-response): what lets clients ride over
	// a server killed without a drain. It resends requests that are not
	// idempotent (a POST whose server died before answering), so the
	// application must tolerate that. False means HAProxy's defaults:
	// retries on the same server, connection failures only.
	Retry bool
}

// Server is one server of a Backend. The zero value has no name.
type Server struct {
	// Name names the server in the Runtime API.
	Name string
	// Address is the server's host:port. Empty means not known yet (an
	// instance that will listen on a port of its own choosing): the
	// server starts in maintenance at a placeholder, 127.0.0.1:1, until
	// Client.SetAddr and Client.SetState(Ready) bring it in.
	Address string
	// Weight is its weight (1..MaxWeight). Zero means
	// DefaultServerWeight.
	Weight int
	// Disabled starts the server in maintenance (HAProxy's "disabled"):
	// the group a Switch brings in later.
	Disabled bool
}

// placeholder is the address of a server whose address is not known yet.
const placeholder = "127.0.0.1:1"

// Find returns the haproxy executable to run: $BATON_HAPROXY when set,
// else haproxy on PATH, else Debian's /usr/sbin/haproxy. The error wraps
// ErrNotFound.
func Find() (string, error) {
	if p := os.Getenv("BATON_HAPROXY"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: BATON_HAPROXY=%s: %v", ErrNotFound, p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy", nil
	}
	return "", fmt.Errorf("%w: not on PATH nor at /usr/sbin/haproxy; install it (Debian: apt-get install haproxy) or set BATON_HAPROXY", ErrNotFound)
}

func (c *Config) check() error {
	if len(c.Backends) == 0 {
		return errors.New("haproxy: Config has no backend")
	}
	names := map[string]bool{}
	for _, b := range c.Backends {
		if err := validName("backend", b.Name); err != nil {
			return err
		}
		if names[b.Name] {
			return fmt.Errorf("haproxy: backend %s is in Config twice", b.Name)
		}
		names[b.Name] = true
		if len(b.Servers) == 0 {
			return fmt.Errorf("haproxy: backend %s has no server", b.Name)
		}
		if b.HealthPath != "" && (!strings.HasPrefix(b.HealthPath, "/") || strings.ContainsAny(b.HealthPath, " \t\r\n\\\"'#")) {
			return fmt.Errorf("haproxy: backend %s: health path %q must be an absolute path with no space, quote or '#'", b.Name, b.HealthPath)
		}
		srvs := map[string]bool{}
		for _, s := range b.Servers {
			if err := validName("server", s.Name); err != nil {
				return err
			}
			if srvs[s.Name] {
				return fmt.Errorf("haproxy: server %s/%s is in Config twice", b.Name, s.Name)
			}
			srvs[s.Name] = true
			if _, _, err := net.SplitHostPort(s.Address); s.Address != "" && (err != nil || strings.ContainsAny(s.Address, " \t\r\n#")) {
				return fmt.Errorf("haproxy: server %s/%s: address %q is not host:port", b.Name, s.Name, s.Address)
			}
			if s.Weight < 0 || s.Weight > MaxWeight {
				return fmt.Errorf("haproxy: server %s/%s: weight %d is outside 0..%d", b.Name, s.Name, s.Weight, MaxWeight)
			}
		}
	}
	return nil
}

// Render returns the configuration text with the admin socket at
// adminSocket and backend i bound to binds[i] (an address, or HAProxy's
// "fd@N" for an inherited socket); a nil binds means each Backend's
// Listen. It is what Start writes, for a program that runs HAProxy its
// own way.
func (c Config) Render(adminSocket string, binds []string) (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	if binds != nil && len(binds) != len(c.Backends) {
		return "", fmt.Errorf("haproxy: %d binds for %d backends", len(binds), len(c.Backends))
	}
	if strings.ContainsAny(adminSocket, " \t\r\n#\"'\\") || adminSocket == "" {
		return "", fmt.Errorf("haproxy: admin socket path %q must be non-empty with no space, quote or '#'", adminSocket)
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultHTTPTimeout
	}
	var w strings.Builder
	fmt.Fprintf(&w, "global\n  stats socket %s mode 600 level admin\n  stats timeout %dms\n", adminSocket, timeout.Milliseconds())
	fmt.Fprintf(&w, "\ndefaults\n  mode http\n  option http-keep-alive\n  timeout connect 5s\n  timeout client %[1]dms\n  timeout server %[1]dms\n  timeout http-keep-alive %[1]dms\n  timeout check 2s\n", timeout.Milliseconds())
	for i, b := range c.Backends {
		bind := b.Listen
		if binds != nil {
			bind = binds[i]
		}
		if bind == "" || strings.ContainsAny(bind, " \t\r\n#") {
			return "", fmt.Errorf("haproxy: backend %s: bind %q is empty or has a space or '#'", b.Name, bind)
		}
		fmt.Fprintf(&w, "\nlisten %s\n  bind %s\n  balance roundrobin\n", b.Name, bind)
		if b.Retry {
			w.WriteString("  retries 3\n  option redispatch 1\n  retry-on conn-failure empty-response\n")
		}
		check := ""
		if b.HealthPath != "" {
			iv := b.CheckInterval
			if iv == 0 {
				iv = DefaultCheckInterval
			}
			fmt.Fprintf(&w, "  option httpchk GET %s\n", b.HealthPath)
			check = fmt.Sprintf(" check inter %dms fall 2 rise 1", iv.Milliseconds())
		}
		for _, s := range b.Servers {
			wt := s.Weight
			if wt == 0 {
				wt = DefaultServerWeight
			}
			addr := s.Address
			if addr == "" {
				addr = placeholder
			}
			fmt.Fprintf(&w, "  server %s %s weight %d%s", s.Name, addr, wt, check)
			if s.Disabled || s.Address == "" {
				w.WriteString(" disabled")
			}
			w.WriteString("\n")
		}
	}
	return w.String(), nil
}
