// Command rolloutctl talks to the admin API of a baton rollout (see
// rollout.NewHandler) over a Unix socket or a loopback address.
//
//	rolloutctl -socket /run/myservice/rollout.sock status
//	rolloutctl -addr 127.0.0.1:9091 promote
//	rolloutctl -socket ./rollout.sock abort "p99 latency doubled"
//
// Commands: status, promote, promote-full, abort [reason], pause, resume,
// retry. It exits 1 when the rollout refuses the command, printing why.
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
	"strings"
	"text/tabwriter"
	"time"

	"github.com/batonhq/baton/rollout"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

var commands = map[string]bool{
	"status": true, "promote": true, "promote-full": true, "abort": true,
	"pause": true, "resume": true, "retry": true,
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rolloutctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", "", "path of the admin Unix socket")
	addr := fs.String("addr", "", "loopback address of the admin API (host:port)")
	timeout := fs.Duration("timeout", 10*time.Second, "request timeout")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rolloutctl (-socket PATH | -addr HOST:PORT) status|promote|promote-full|abort [reason]|pause|resume|retry")
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
	if cmd != "abort" && len(rest) > 1 {
		fmt.Fprintf(stderr, "rolloutctl: %s takes no argument\n", cmd)
		return 2
	}
	client, base, err := dial(*socket, *addr, *timeout)
	if err != nil {
		fmt.Fprintln(stderr, "rolloutctl:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var req *http.Request
	if cmd == "status" {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/status", nil)
	} else {
		var body []byte
		if cmd == "abort" {
			body, _ = json.Marshal(rollout.CommandRequest{Reason: strings.Join(rest[1:], " ")})
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/"+cmd, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "rolloutctl:", err)
		return 2
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "rolloutctl:", err)
		return 1
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		fmt.Fprintln(stderr, "rolloutctl:", err)
		return 1
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		fmt.Fprintf(stderr, "rolloutctl: %s refused (%s): %s\n", cmd, resp.Status, e.Error)
		return 1
	}
	var v rollout.StatusView
	if err := json.Unmarshal(data, &v); err != nil {
		fmt.Fprintln(stderr, "rolloutctl: bad answer:", err)
		return 1
	}
	if cmd != "status" {
		fmt.Fprintf(stdout, "%s: accepted\n", cmd)
	}
	printStatus(stdout, v)
	return 0
}

func dial(socket, addr string, timeout time.Duration) (*http.Client, string, error) {
	if socket != "" {
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: timeout}).DialContext(ctx, "unix", socket)
		}}
		return &http.Client{Transport: tr}, "http://rollout", nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, "", fmt.Errorf("-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, "", errors.New("-addr must be a loopback address: the admin API has no authentication")
	}
	return &http.Client{}, "http://" + addr, nil
}

func printStatus(w io.Writer, v rollout.StatusView) {
	phase := string(v.Phase)
	if phase == "" {
		phase = "pending"
	}
	if v.Paused {
		phase += " (paused)"
	}
	fmt.Fprintf(w, "rollout %s: %s (run %d)\n", v.ID, phase, v.Run)
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
