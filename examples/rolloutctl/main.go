// Command rolloutctl talks to the admin API of a baton rollout (see
// rollout.NewHandler and rollout.Driver) over a Unix socket or a loopback
// address.
//
//	rolloutctl -socket /run/orders/admin.sock start release-v2.yaml
//	rolloutctl -socket /run/orders/admin.sock watch
//	rolloutctl -socket /run/orders/admin.sock status
//	rolloutctl -addr 127.0.0.1:9091 promote
//	rolloutctl -socket /run/orders/admin.sock abort "p99 latency doubled"
//
// Commands: status, watch, start FILE, promote, promote-full,
// abort [reason], pause, resume, retry. start checks the manifest here
// first (its errors name the file and line), then sends it; the service
// binds and validates it before anything moves. watch prints each
// decision as the rollout takes it and exits when the rollout ends: 0 when
// it succeeded, 1 when it was rolled back or failed.
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
	"path/filepath"
	"sort"
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
	"status": true, "watch": true, "start": true, "promote": true, "promote-full": true, "abort": true,
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
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rolloutctl (-socket PATH | -addr HOST:PORT) status|watch|start FILE|promote|promote-full|abort [reason]|pause|resume|retry")
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
	c, err := dial(*socket, *addr, *timeout)
	if err != nil {
		fmt.Fprintln(stderr, "rolloutctl:", err)
		return 2
	}
	switch cmd {
	case "watch":
		return c.watch(*limit, *poll, stdout, stderr)
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
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, errors.New("-addr must be a loopback address: the admin API has no authentication")
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

// watch prints the rollout's decisions as they are taken until it ends.
func (c *client) watch(limit, poll time.Duration, stdout, stderr io.Writer) int {
	seen := map[string]bool{}
	phase := rollout.Phase("?")
	var rev int64
	id := ""
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		v, err := c.status(rev, poll)
		if err != nil {
			fmt.Fprintln(stderr, "rolloutctl: watch:", err)
			return 1
		}
		if v.ID != id && id != "" {
			fmt.Fprintf(stdout, "release %s replaced %s\n", v.ID, id)
		}
		id, rev = v.ID, v.Revision
		printDecisions(stdout, v, seen)
		if v.Phase != phase {
			phase = v.Phase
			fmt.Fprintf(stdout, "rollout %s: %s\n", v.ID, phaseName(v.Phase))
		}
		switch v.Phase {
		case rollout.PhaseSucceeded:
			return 0
		case rollout.PhaseRolledBack, rollout.PhaseFailed:
			fmt.Fprintf(stdout, "reason: %s\n", v.Reason)
			return 1
		}
	}
	fmt.Fprintf(stderr, "rolloutctl: watch: the rollout did not end within %s\n", limit)
	return 1
}

// printDecisions prints the decisions not printed yet, oldest first.
func printDecisions(w io.Writer, v rollout.StatusView, seen map[string]bool) {
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	add := func(step string, ds []rollout.Decision) {
		for _, d := range ds {
			k := step + "|" + d.At.Format(time.RFC3339Nano) + "|" + d.Reason
			if seen[k] {
				continue
			}
			seen[k] = true
			text := d.Reason
			if step != "" {
				text = step + ": " + text
			}
			lines = append(lines, line{d.At, text})
		}
	}
	add("", v.Decisions)
	for _, s := range v.Steps {
		add(s.Name, s.Decisions)
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].at.Before(lines[j].at) })
	for _, l := range lines {
		fmt.Fprintf(w, "%s  %s\n", l.at.UTC().Format("15:04:05.000"), l.text)
	}
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
