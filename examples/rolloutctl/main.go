// Command rolloutctl talks to the admin API of a baton rollout (see
// rollout.NewHandler and rollout.Driver) over a Unix socket or a loopback
// address.
//
//	rolloutctl -socket /run/orders/admin.sock start release-v2.yaml
//	rolloutctl -socket /run/orders/admin.sock watch
//	rolloutctl -socket /run/orders/admin.sock status
//	rolloutctl -addr 127.0.0.1:9091 promote
//	rolloutctl -socket /run/orders/admin.sock abort "p99 latency doubled"
//	rolloutctl -socket /run/orders/admin.sock console
//
// Commands: status, watch, console, start FILE, promote, promote-full,
// abort [reason], pause, resume, retry. start checks the manifest here
// first (its errors name the file and line), then sends it; the service
// binds and validates it before anything moves. watch shows a progress
// line per step (a bar each on a terminal; -bars on|off|auto), prints each
// decision as the rollout takes it, and exits when the rollout ends: 0
// when it succeeded, 1 when it was rolled back or failed.
//
// console makes the service's web console reachable from a browser when
// the admin API listens on a Unix socket, which no browser opens: it
// serves it on a loopback port (-listen, 127.0.0.1:0 by default, a free
// port), prints the URL and forwards every request over the socket until
// interrupted. The loopback side is guarded like the API itself (Host and
// Origin checked). With -addr the console is already on loopback: it
// prints its URL.
//
// With -socket naming the stable name of rollout.ListenAdmin (a link that
// the service points at the process driving the rollout), every request
// connects afresh, so rolloutctl follows the rollout across handoffs: a
// command refused because the process no longer drives, or a connection
// refused while the processes trade places, is tried again.
//
// It exits 1 when the rollout refuses the command, printing why, and 2 on
// a usage error.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/batonhq/baton/rollout"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

var commands = map[string]bool{
	"status": true, "watch": true, "console": true, "start": true, "promote": true, "promote-full": true, "abort": true,
	"pause": true, "resume": true, "retry": true,
}

// follow bounds how long a command keeps trying while the processes of a
// handoff trade places (connections refused, "no longer drives").
const follow = 30 * time.Second

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rolloutctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", "", "path of the admin Unix socket (or the stable name of rollout.ListenAdmin)")
	addr := fs.String("addr", "", "loopback address of the admin API (host:port)")
	timeout := fs.Duration("timeout", 10*time.Second, "request timeout")
	limit := fs.Duration("for", time.Hour, "how long watch waits for the rollout to end")
	poll := fs.Duration("wait", 20*time.Second, "how long one watch request waits for a change (at most 25s)")
	bars := fs.String("bars", "auto", "watch: draw a progress bar per step (on, off, or auto: on a terminal)")
	listen := fs.String("listen", "127.0.0.1:0", "console: the loopback address to serve the console on")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rolloutctl (-socket PATH | -addr HOST:PORT) status|watch|console|start FILE|promote|promote-full|abort [reason]|pause|resume|retry")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 || !commands[rest[0]] || (*socket == "") == (*addr == "") {
		fs.Usage()
		return 2
	}
	cmd := rest[0]
	switch {
	case cmd == "start" && len(rest) != 2:
		fmt.Fprintln(stderr, "rolloutctl: start takes the release manifest's file")
		return 2
	case cmd != "abort" && cmd != "start" && len(rest) > 1:
		fmt.Fprintf(stderr, "rolloutctl: %s takes no argument\n", cmd)
		return 2
	}
	if *bars != "auto" && *bars != "on" && *bars != "off" {
		fmt.Fprintf(stderr, "rolloutctl: -bars %q: want on, off or auto\n", *bars)
		return 2
	}
	c, err := dial(*socket, *addr, *timeout)
	if err != nil {
		fmt.Fprintln(stderr, "rolloutctl:", err)
		return 2
	}
	switch cmd {
	case "watch":
		return c.watch(*limit, *poll, *bars, stdout, stderr)
	case "console":
		if *addr != "" {
			fmt.Fprintf(stdout, "console: http://%s/ (the rollout), http://%s/fleet (the fleet)\n", *addr, *addr)
			return 0
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return console(ctx, *socket, *listen, *timeout, stdout, stderr)
	case "status":
		v, err := c.status(0, 0)
		if err != nil {
			fmt.Fprintln(stderr, "rolloutctl:", err)
			return 1
		}
		printStatus(stdout, v)
		return 0
	}
	var body []byte
	ctype := "application/json"
	switch cmd {
	case "abort":
		body, _ = json.Marshal(rollout.CommandRequest{Reason: strings.Join(rest[1:], " ")})
	case "start":
		if body, ctype, err = manifest(rest[1]); err != nil {
			fmt.Fprintln(stderr, "rolloutctl:", err)
			return 1
		}
	}
	v, err := c.post("/api/"+cmd, ctype, body)
	if err != nil {
		fmt.Fprintf(stderr, "rolloutctl: %s %v\n", cmd, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: accepted\n", cmd)
	printStatus(stdout, v)
	return 0
}

// manifest reads and checks a release manifest, as the service will.
func manifest(path string) ([]byte, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, rollout.MaxReleaseSize+1))
	if err != nil {
		return nil, "", err
	}
	if _, err := rollout.ParseRelease(data, path); err != nil {
		return nil, "", err
	}
	if strings.EqualFold(filepath.Ext(path), ".json") {
		return data, "application/json", nil
	}
	return data, "application/yaml", nil
}

type client struct {
	http    *http.Client
	base    string
	timeout time.Duration
}

func dial(socket, addr string, timeout time.Duration) (*client, error) {
	if socket != "" {
		// A connection per request: the stable name is resolved each time,
		// so the next request reaches the process that drives now.
		tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: timeout}).DialContext(ctx, "unix", socket)
		}}
		return &client{http: &http.Client{Transport: tr}, base: "http://rollout", timeout: timeout}, nil
	}
	if err := loopback(addr); err != nil {
		return nil, fmt.Errorf("-addr %w", err)
	}
	return &client{http: &http.Client{}, base: "http://" + addr, timeout: timeout}, nil
}

// refusal is an answer other than 200: what the API said.
type refusal struct {
	status string
	reason string
}

func (r *refusal) Error() string { return fmt.Sprintf("refused (%s): %s", r.status, r.reason) }

// retryable reports whether err comes from the processes of a handoff
// trading places (the link names a process that just left, an answer cut
// by its exit, a process that no longer drives): try again. A socket that
// does not exist at all is not retried.
func retryable(err error) bool {
	var rf *refusal
	if errors.As(err, &rf) {
		return strings.Contains(rf.reason, "no longer drives")
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// do sends one request, trying again for a while when a handoff is under
// way, and decodes the status it answers.
func (c *client) do(method, path, ctype string, body []byte, wait time.Duration) (rollout.StatusView, error) {
	var v rollout.StatusView
	deadline := time.Now().Add(follow)
	for {
		err := c.once(method, path, ctype, body, wait, &v)
		if err == nil || !retryable(err) || time.Now().After(deadline) {
			return v, err
		}
		time.Sleep(200 * time.Millisecond) // the processes of a handoff trade places
	}
}

func (c *client) once(method, path, ctype string, body []byte, wait time.Duration, v *rollout.StatusView) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout+wait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &refusal{status: resp.Status, reason: e.Error}
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("bad answer: %w", err)
	}
	return nil
}

func (c *client) post(path, ctype string, body []byte) (rollout.StatusView, error) {
	return c.do(http.MethodPost, path, ctype, body, 0)
}

// status reads the status; with after > 0 it waits (at most wait) for a
// revision other than after.
func (c *client) status(after int64, wait time.Duration) (rollout.StatusView, error) {
	path := "/api/status"
	if after > 0 {
		path += "?wait=" + strconv.FormatInt(after, 10) + "&timeout=" + wait.String()
	}
	return c.do(http.MethodGet, path, "", nil, wait)
}

func phaseName(p rollout.Phase) string {
	if p == rollout.PhasePending {
		return "pending"
	}
	return string(p)
}

func printStatus(w io.Writer, v rollout.StatusView) {
	phase := phaseName(v.Phase)
	if v.Paused {
		phase += " (paused)"
	}
	fmt.Fprintf(w, "rollout %s: %s (run %d)\n", v.ID, phase, v.Run)
	if v.Release != nil {
		fmt.Fprintf(w, "release: version %s", v.Release.Version)
		if v.Release.Binary != "" {
			fmt.Fprintf(w, ", binary %s", v.Release.Binary)
		}
		fmt.Fprintln(w)
	}
	if v.Reason != "" {
		fmt.Fprintf(w, "reason: %s\n", v.Reason)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSTEP\tKIND\tSTATUS\tDURATION\tLAST DECISION")
	for i, s := range v.Steps {
		status := string(s.Status)
		if s.Waiting {
			status += " (waiting)"
		}
		last := s.Error
		if n := len(s.Decisions); last == "" && n > 0 {
			last = s.Decisions[n-1].Reason
		}
		dur := ""
		if !s.StartedAt.IsZero() {
			dur = time.Duration(s.DurationSeconds * float64(time.Second)).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i, s.Name, s.Kind, status, dur, last)
	}
	tw.Flush()
}
