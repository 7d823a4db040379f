//go:build unix

package graceful

import (
	"encoding/binary"
	"encoding/gob"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The handoff speaks cloudflare/tableflip v1.2.3's wire protocol, so a
// process on tableflip can upgrade into one on graceful and back: the
// sentinel variable marks a child, descriptor 3 is the write end of the
// readiness pipe (one byte, 42), descriptor 4 carries the gob-encoded names
// of the descriptors that follow from 5 on, and stays open until the parent
// exits. graceful adds two named descriptors of its own (a control socket
// for the bake window and the real standard error) and eight bytes after the
// readiness byte (the child's own start-up time); tableflip ignores both.
const (
	envParent   = "TABLEFLIP_HAS_PARENT_7DIU3"
	notifyReady = 42
	fdReady     = 3
	fdNames     = 4
	fdFirst     = 5

	kindListener = "listener"
	kindPacket   = "packet"
	kindFd       = "fd"

	nameControl = "baton-control"
	nameStderr  = "baton-stderr"
)

// fileKey names a passed descriptor the way tableflip does: kind, network,
// address (or kind, name, "").
type fileKey [3]string

func (k fileKey) String() string { return strings.Join(k[:], ":") }

// inheritance is what a child received from its parent.
type inheritance struct {
	ready   *os.File // readiness pipe, write end
	names   *os.File // closes (EOF) when the parent exits
	files   map[fileKey]*os.File
	control *os.File
	stderr  *os.File
}

func inherit() (*inheritance, error) {
	if os.Getenv(envParent) == "" {
		return nil, nil
	}
	// Children of this process must not believe they have a parent unless
	// we start them with one.
	_ = os.Unsetenv(envParent)
	in := &inheritance{
		ready: os.NewFile(fdReady, "graceful-ready"),
		names: os.NewFile(fdNames, "graceful-names"),
		files: make(map[fileKey]*os.File),
	}
	syscall.CloseOnExec(fdReady)
	syscall.CloseOnExec(fdNames)
	var names [][]string
	if err := gob.NewDecoder(in.names).Decode(&names); err != nil {
		return nil, fmt.Errorf("%w: decoding descriptor names: %v", ErrInherit, err)
	}
	for i, n := range names {
		var k fileKey
		copy(k[:], n)
		fd := fdFirst + i
		syscall.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), k.String())
		if f == nil {
			return nil, fmt.Errorf("%w: descriptor %d (%s) is not open", ErrInherit, fd, k)
		}
		switch k {
		case fileKey{kindFd, nameControl, ""}:
			in.control = f
		case fileKey{kindFd, nameStderr, ""}:
			in.stderr = f
		default:
			in.files[k] = f
		}
	}
	return in, nil
}

// restoreStderr points descriptor 2 back at the real standard error once the
// process is ready; until then the parent captured it to report failures.
func (in *inheritance) restoreStderr() {
	if in.stderr == nil {
		return
	}
	_ = unix.Dup3(int(in.stderr.Fd()), 2, 0)
	_ = in.stderr.Close()
	in.stderr = nil
}

// sendReady tells the parent that this process accepts connections.
func (in *inheritance) sendReady(startup time.Duration) error {
	var msg [9]byte
	msg[0] = notifyReady
	binary.BigEndian.PutUint64(msg[1:], uint64(startup))
	_, err := in.ready.Write(msg[:])
	_ = in.ready.Close()
	return err
}

// dupFile duplicates a socket's descriptor for passing to a new process,
// through SyscallConn so the original stays non-blocking.
func dupFile(c syscall.Conn, k fileKey) (*os.File, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var derr error
	if err := raw.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("dup %s: %w", k, derr)
	}
	return os.NewFile(uintptr(nfd), k.String()), nil
}

// socketpair returns the parent's and the child's end of a control socket.
func socketpair() (parent net.Conn, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	pf := os.NewFile(uintptr(fds[0]), "graceful-control")
	defer pf.Close()
	parent, err = net.FileConn(pf)
	if err != nil {
		_ = unix.Close(fds[1])
		return nil, nil, err
	}
	return parent, os.NewFile(uintptr(fds[1]), "graceful-control-child"), nil
}

// child is a new process started by Upgrade.
type child struct {
	pid     int
	ready   chan time.Duration // the child's start-up time, once ready
	exited  chan struct{}
	state   *os.ProcessState
	waitErr error
	proc    *os.Process
	control net.Conn
	stderr  *os.File // captured standard error (unlinked temp file)
}

// startChild starts path with the given named descriptors. namesKeep
// receives the write end of the names pipe, which must stay open for the
// rest of this process's life: its closing is how the child learns that this
// process exited.
func startChild(path string, args []string, files map[fileKey]*os.File, bake bool) (*child, *os.File, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	namesR, namesW, err := os.Pipe()
	if err != nil {
		readyR.Close()
		readyW.Close()
		return nil, nil, err
	}
	control, controlChild, err := socketpair()
	if err != nil {
		readyR.Close()
		readyW.Close()
		namesR.Close()
		namesW.Close()
		return nil, nil, err
	}
	errf, err := os.CreateTemp("", "graceful-stderr-*")
	if err == nil {
		_ = os.Remove(errf.Name())
	} else {
		errf = nil
	}
	cleanup := func() {
		readyR.Close()
		namesW.Close()
		control.Close()
		if errf != nil {
			errf.Close()
		}
	}
	defer func() {
		readyW.Close()
		namesR.Close()
		controlChild.Close()
	}()

	extra := []*os.File{readyW, namesR}
	var names [][]string
	add := func(k fileKey, f *os.File) {
		names = append(names, []string{k[0], k[1], k[2]})
		extra = append(extra, f)
	}
	for k, f := range files {
		add(k, f)
	}
	if bake {
		// Only a child whose parent will bake gets the control socket:
		// its presence is how the child knows it must not upgrade yet.
		add(fileKey{kindFd, nameControl, ""}, controlChild)
	}
	stderr := os.Stderr
	if errf != nil {
		add(fileKey{kindFd, nameStderr, ""}, os.Stderr)
		stderr = errf
	}

	env := append(os.Environ(), envParent+"=yes")
	attr := &os.ProcAttr{
		Env:   env,
		Files: append([]*os.File{os.Stdin, os.Stdout, stderr}, extra...),
	}
	proc, err := os.StartProcess(path, append([]string{path}, args...), attr)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	c := &child{
		pid:     proc.Pid,
		proc:    proc,
		ready:   make(chan time.Duration, 1),
		exited:  make(chan struct{}),
		control: control,
		stderr:  errf,
	}
	// Both goroutines end by themselves: the first when the child exits,
	// the second when the pipe's write end closes (ready or exit).
	go func() {
		c.state, c.waitErr = proc.Wait()
		close(c.exited)
	}()
	go func() {
		defer readyR.Close()
		var msg [9]byte
		n, _ := io.ReadFull(readyR, msg[:])
		if n >= 1 && msg[0] == notifyReady {
			var startup time.Duration
			if n == len(msg) {
				startup = time.Duration(binary.BigEndian.Uint64(msg[1:]))
			}
			c.ready <- startup
		}
	}()
	if err := gob.NewEncoder(namesW).Encode(names); err != nil {
		// The child died before reading; Wait reports why.
		_ = err
	}
	return c, namesW, nil
}

// stderrTail returns the last n lines the child wrote before it failed.
func (c *child) stderrTail(n int) []string {
	if c.stderr == nil {
		return nil
	}
	const max = 64 << 10
	st, err := c.stderr.Stat()
	if err != nil {
		return nil
	}
	off := max64(st.Size()-max, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := c.stderr.ReadAt(buf, off); err != nil && err != io.EOF {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// copyStderr forwards what the child wrote before it became ready to this
// process's standard error, so nothing it logged during start-up is lost.
func (c *child) copyStderr() {
	if c.stderr == nil {
		return
	}
	if st, err := c.stderr.Stat(); err == nil {
		_, _ = io.Copy(os.Stderr, io.NewSectionReader(c.stderr, 0, st.Size()))
	}
	_ = c.stderr.Close()
	c.stderr = nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
