//go:build unix

package adminnet_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/adminnet"
	"github.com/batonhq/baton/internal/testchild"
)

const (
	roleLinked = "linked"                     // a process serving its pid on a linked socket
	linkedPath = "BATON_ADMINNET_TEST_LINKED" // the stable name
)

// linkedMain listens with ListenLinked, answers its pid, and obeys
// "claim" and "close" on stdin.
func linkedMain() int {
	l, err := adminnet.ListenLinked(os.Getenv(linkedPath))
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strconv.Itoa(os.Getpid()))
	})}
	go srv.Serve(l)
	fmt.Println("LISTENING")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "claim":
			if err := l.Claim(); err != nil {
				fmt.Println("ERROR", err)
				return 1
			}
			fmt.Println("CLAIMED")
		case "close":
			srv.Close()
			l.Close()
			fmt.Println("CLOSED")
			return 0
		}
	}
	return 0
}

type linkedProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines *testchild.Lines
}

func startLinked(t *testing.T, path string) *linkedProc {
	t.Helper()
	cmd, err := testchild.Command(context.Background(), roleLinked, linkedPath+"="+path)
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &linkedProc{cmd: cmd, in: in, lines: testchild.NewLines(fmt.Sprintf("linked %d", cmd.Process.Pid), out)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		testchild.Wait(t, "linked", cmd, 0)
	})
	p.lines.Await(t, "LISTENING", 0, func(l string) bool { return l == "LISTENING" || strings.HasPrefix(l, "ERROR") })
	return p
}

func (p *linkedProc) do(t *testing.T, cmd, reply string) {
	t.Helper()
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		t.Fatal(err)
	}
	p.lines.Await(t, reply, 0, func(l string) bool { return l == reply })
}

// answering returns the pid of the process behind the stable name, or 0
// when nothing answers there.
func answering(t *testing.T, path string) int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
	resp, err := c.Get("http://admin/")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pid, _ := strconv.Atoi(string(b))
	return pid
}

// Each process has a socket of its own; the stable name follows the
// process that claims it, is never stolen from a live one at start, is
// taken over from a dead one, and is removed only by its owner.
func TestLinkedFollowsTheClaimingProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	path := filepath.Join(t.TempDir(), "admin.sock")
	a := startLinked(t, path)
	if got := answering(t, path); got != a.cmd.Process.Pid {
		t.Fatalf("the first process did not take the name: %d answers", got)
	}
	if fi, err := os.Stat(filepath.Join(filepath.Dir(path), "admin.sock."+strconv.Itoa(a.cmd.Process.Pid))); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the per-process socket: %v %v", fi, err)
	}
	b := startLinked(t, path)
	if got := answering(t, path); got != a.cmd.Process.Pid {
		t.Fatalf("a second process took the live name at start: %d answers", got)
	}
	b.do(t, "claim", "CLAIMED") // the new process of a handoff takes the drive
	if got := answering(t, path); got != b.cmd.Process.Pid {
		t.Fatalf("after the claim %d answers, want %d", got, b.cmd.Process.Pid)
	}
	a.do(t, "close", "CLOSED")
	if got := answering(t, path); got != b.cmd.Process.Pid {
		t.Fatalf("closing the old process moved the name: %d answers", got)
	}
	// A process killed with the name: the next one takes it over.
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	testchild.Eventually(t, "the killed process to be gone", 0, 0, func() error {
		if !testchild.Gone(b.cmd.Process.Pid) {
			return fmt.Errorf("still running")
		}
		return nil
	})
	c := startLinked(t, path)
	if got := answering(t, path); got != c.cmd.Process.Pid {
		t.Fatalf("the name of a dead process was not taken over: %d answers", got)
	}
	c.do(t, "close", "CLOSED")
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("the name is left after its owner closed: %v", err)
	}
}
