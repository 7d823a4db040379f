package haproxy

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults of ClientOptions.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultMaxReply = 4 << 20
)

// MaxWeight is the largest weight HAProxy accepts for a server.
const MaxWeight = 256

// ClientOptions configure NewClient. The zero value gives every command
// DefaultTimeout and accepts answers of up to DefaultMaxReply bytes.
type ClientOptions struct {
	// Timeout bounds one command, from the dial to the end of the answer,
	// on top of the context's deadline. Zero means DefaultTimeout.
	Timeout time.Duration
	// MaxReply bounds the size of one answer. Zero means
	// DefaultMaxReply.
	MaxReply int
}

// Client sends commands to one HAProxy's Runtime API, one connection per
// command (HAProxy answers and closes in its non-interactive mode, so no
// state is carried from one command to the next). It is safe for
// concurrent use. The zero value is not usable: use NewClient.
type Client struct {
	network, addr string
	o             ClientOptions
}

// NewClient returns a Client for the admin socket at addr: a path (the
// unix socket of "stats socket /run/haproxy/admin.sock level admin") or
// host:port (a TCP "stats socket ipv4@127.0.0.1:9999 level admin"). The
// socket must be at level admin for the commands that change servers.
func NewClient(addr string, o ClientOptions) (*Client, error) {
	if addr == "" {
		return nil, errors.New("haproxy: empty admin socket address")
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxReply == 0 {
		o.MaxReply = DefaultMaxReply
	}
	if o.Timeout < 0 || o.MaxReply < 0 {
		return nil, errors.New("haproxy: negative Timeout or MaxReply")
	}
	c := &Client{network: "tcp", addr: addr, o: o}
	if strings.ContainsRune(addr, '/') {
		c.network = "unix"
	}
	return c, nil
}

// Addr returns the admin socket's address as given to NewClient.
func (c *Client) Addr() string { return c.addr }

// validName accepts what HAProxy accepts in proxy and server names
// (letters, digits, '-', '_', '.', ':'), up to 128 bytes. Everything else,
// spaces, ';' and newlines first, would end the name or the command.
func validName(kind, s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("%w: %s name %q must be 1 to 128 bytes", ErrInvalidName, kind, s)
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == ':':
		default:
			return fmt.Errorf("%w: %s name %q has %q; allowed are letters, digits, '-', '_', '.' and ':'", ErrInvalidName, kind, s, r)
		}
	}
	return nil
}

func validServer(backend, server string) error {
	if err := validName("backend", backend); err != nil {
		return err
	}
	return validName("server", server)
}

// run sends one command line and returns the whole answer. The line is
// built by this package only, from validated names and fixed words.
func (c *Client) run(ctx context.Context, line string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.network, c.addr)
	if err != nil {
		return "", fmt.Errorf("haproxy: %q: dial admin socket %s: %w", line, c.addr, err)
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	// A cancelled context interrupts a read in progress.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		return "", c.ioErr(ctx, line, err)
	}
	buf, err := io.ReadAll(io.LimitReader(conn, int64(c.o.MaxReply)+1))
	if err != nil {
		return "", c.ioErr(ctx, line, err)
	}
	if len(buf) > c.o.MaxReply {
		return "", fmt.Errorf("%w: %q: more than %d bytes from %s", ErrReplyTooLarge, line, c.o.MaxReply, c.addr)
	}
	return string(buf), nil
}

func (c *Client) ioErr(ctx context.Context, line string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("haproxy: %q on %s: %w", line, c.addr, context.Cause(ctx))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The socket's deadline is the context's: it may fire first.
		return fmt.Errorf("haproxy: %q on %s: no answer in time: %w", line, c.addr, context.DeadlineExceeded)
	}
	return fmt.Errorf("haproxy: %q on %s: %w", line, c.addr, err)
}

// set runs a command whose success is an empty answer.
func (c *Client) set(ctx context.Context, line string) error {
	reply, err := c.run(ctx, line)
	if err != nil {
		return err
	}
	if r := strings.TrimSpace(reply); r != "" {
		return &CommandError{Command: line, Reply: r}
	}
	return nil
}

// SetWeight sets the weight (0..MaxWeight) of backend/server.
func (c *Client) SetWeight(ctx context.Context, backend, server string, weight int) error {
	if err := validServer(backend, server); err != nil {
		return err
	}
	if weight < 0 || weight > MaxWeight {
		return fmt.Errorf("haproxy: weight %d of %s/%s is outside 0..%d", weight, backend, server, MaxWeight)
	}
	return c.set(ctx, fmt.Sprintf("set server %s/%s weight %d", backend, server, weight))
}

// SetAddr points backend/server at addr, an IP address and a port
// ("127.0.0.3:41234", "[::1]:8080"), as a fleet does when an instance
// comes back on a new port. Its health checks follow. Sessions already
// on the old address are not moved: drain the server first when it
// matters.
func (c *Client) SetAddr(ctx context.Context, backend, server, addr string) error {
	if err := validServer(backend, server); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("haproxy: address %q of %s/%s: %w", addr, backend, server, err)
	}
	ip := net.ParseIP(host)
	n, perr := strconv.Atoi(port)
	if ip == nil || perr != nil || n < 1 || n > 65535 {
		return fmt.Errorf("haproxy: address %q of %s/%s: want an IP address and a port 1..65535", addr, backend, server)
	}
	reply, err := c.run(ctx, fmt.Sprintf("set server %s/%s addr %s port %d", backend, server, ip, n))
	if err != nil {
		return err
	}
	// HAProxy reports a change ("IP changed from ... to ...", "no need
	// to change the addr") with a line of its own; an error does not
	// name the address.
	r := strings.TrimSpace(reply)
	if r != "" && !strings.Contains(r, "changed") && !strings.Contains(r, "no need to change") {
		return &CommandError{Command: fmt.Sprintf("set server %s/%s addr %s port %d", backend, server, ip, n), Reply: r}
	}
	return nil
}

// State is a server's administrative state as the Runtime API sets it.
type State string

// States of SetState.
const (
	// Ready: the server takes traffic (when its health checks pass).
	Ready State = "ready"
	// Drain: no new traffic; sessions in progress finish.
	Drain State = "drain"
	// Maint: no traffic and no health checks.
	Maint State = "maint"
)

// SetState sets the administrative state of backend/server.
func (c *Client) SetState(ctx context.Context, backend, server string, s State) error {
	if err := validServer(backend, server); err != nil {
		return err
	}
	switch s {
	case Ready, Drain, Maint:
	default:
		return fmt.Errorf("haproxy: state %q of %s/%s: want ready, drain or maint", s, backend, server)
	}
	return c.set(ctx, fmt.Sprintf("set server %s/%s state %s", backend, server, s))
}

// ServerStat is one server's line of "show stat". The zero value is a
// server with no name.
type ServerStat struct {
	Backend, Server string
	// Status is HAProxy's word for the server: "UP", "DOWN", "DRAIN",
	// "MAINT", "no check", "UP 1/3" (going down), "DOWN 1/2" (going up).
	Status string
	// CheckStatus is the result of the last health check ("L7OK",
	// "L4CON", ...; "" when none ran), without the "* " HAProxy puts
	// before it while a check is running.
	CheckStatus string
	// Weight is the effective weight.
	Weight int
	// Sessions is the number of sessions using the server now (scur),
	// Queued the number waiting for it (qcur).
	Sessions, Queued int
}

// Serving reports whether HAProxy sends new traffic to the server: it is
// up (or has no checks) and has a weight.
func (s ServerStat) Serving() bool {
	return s.Weight > 0 && (strings.HasPrefix(s.Status, "UP") || s.Status == "no check")
}

// Checked reports whether the server serves and, when it has health
// checks, whether the last one passed. A server that leaves maintenance
// is UP for HAProxy before any check ran (it keeps the health it had);
// Checked waits for the check.
func (s ServerStat) Checked() bool {
	if !s.Serving() {
		return false
	}
	if s.Status == "no check" {
		return true
	}
	switch s.CheckStatus {
	case "L4OK", "L6OK", "L7OK", "L7OKC":
		return true
	}
	return false
}

// Stats returns the "show stat" lines of backend's servers, in the order of
// the configuration.
func (c *Client) Stats(ctx context.Context, backend string) ([]ServerStat, error) {
	if err := validName("backend", backend); err != nil {
		return nil, err
	}
	line := fmt.Sprintf("show stat %s 4 -1", backend)
	reply, err := c.run(ctx, line)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(reply, "# ") {
		return nil, &CommandError{Command: line, Reply: strings.TrimSpace(reply)}
	}
	r := csv.NewReader(strings.NewReader(reply[2:]))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil || len(recs) == 0 {
		return nil, fmt.Errorf("haproxy: %q: unreadable CSV: %v", line, err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for _, h := range []string{"pxname", "svname", "qcur", "scur", "status", "weight", "check_status"} {
		if _, ok := col[h]; !ok {
			return nil, fmt.Errorf("haproxy: %q: no %s column", line, h)
		}
	}
	var out []ServerStat
	for _, rec := range recs[1:] {
		if len(rec) < len(recs[0]) {
			continue
		}
		num := func(h string) int { n, _ := strconv.Atoi(rec[col[h]]); return n }
		out = append(out, ServerStat{
			Backend: rec[col["pxname"]], Server: rec[col["svname"]], Status: rec[col["status"]],
			CheckStatus: strings.TrimPrefix(rec[col["check_status"]], "* "),
			Weight:      num("weight"), Sessions: num("scur"), Queued: num("qcur"),
		})
	}
	return out, nil
}
