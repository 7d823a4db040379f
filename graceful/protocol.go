package graceful

import (
	"encoding/binary"
	"encoding/gob"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// The handoff speaks cloudflare/tableflip v1.2.3's wire protocol, so a
// process on tableflip can upgrade into one on graceful and back: the
// sentinel variable marks a child, descriptor 3 is the write end of the
// readiness pipe (one byte, 42), descriptor 4 carries the gob-encoded names
// of the descriptors that follow from 5 on, and stays open until the parent
// exits. graceful adds two named descriptors of its own (a control socket
// for the bake window and the real standard error) and eight bytes after the
// readiness byte (the child's own start-up time, big-endian nanoseconds);
// tableflip ignores both.
//
// On the control socket each message is one byte. The child sends
// msgRollback (take serving back) or msgPromote (stop baking); the parent
// answers msgRollback with msgAck once it accepts again. The parent closing
// the socket means it is no longer a fallback (window over, promoted,
// stopping, or gone); a child that gets no ack before that serves on.
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

	msgRollback = 'g' // child to parent: take serving back
	msgAck      = 'k' // parent to child: serving taken back
	msgPromote  = 'e' // child to parent: promoted, stop baking and drain
)

// readyMsgLen is the readiness byte and the start-up time.
const readyMsgLen = 9

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

// inherit takes over what the parent handed down, or returns nil on a
// first start.
func inherit() (*inheritance, error) {
	if os.Getenv(envParent) == "" || handoffSupported() != nil {
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
	closeOnExec(fdReady)
	closeOnExec(fdNames)
	var names [][]string
	if err := gob.NewDecoder(in.names).Decode(&names); err != nil {
		return nil, fmt.Errorf("%w: decoding descriptor names: %v", ErrInherit, err)
	}
	for i, n := range names {
		var k fileKey
		copy(k[:], n)
		fd := fdFirst + i
		closeOnExec(fd)
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
	_ = dupStderr(in.stderr)
	_ = in.stderr.Close()
	in.stderr = nil
}

// sendReady tells the parent that this process accepts connections.
func (in *inheritance) sendReady(startup time.Duration) error {
	var msg [readyMsgLen]byte
	msg[0] = notifyReady
	binary.BigEndian.PutUint64(msg[1:], uint64(startup))
	_, err := in.ready.Write(msg[:])
	_ = in.ready.Close()
	return err
}

// child is a new process started by an upgrade, as its parent sees it.
type child struct {
	path    string
	pid     int
	spawned time.Duration // fork and exec
	startup time.Duration // its own New to Ready, once ready
	ready   chan struct{} // closed with startup set
	exited  chan struct{}
	state   *os.ProcessState // set before exited closes
	proc    *os.Process
	control net.Conn
	// namesW is the write end of the names pipe. It must stay open for
	// the rest of this process's life once the child serves: its closing
	// is how the child learns that this process exited.
	namesW *os.File
	stderr *os.File // captured standard error (unlinked temp file)
}

// startChild starts path with the given named descriptors; with bake, the
// child also gets the control socket, whose presence is how it knows its
// parent will bake.
func startChild(path string, args []string, files map[fileKey]*os.File, bake bool) (*child, error) {
	start := time.Now()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	namesR, namesW, err := os.Pipe()
	if err != nil {
		readyR.Close()
		readyW.Close()
		return nil, err
	}
	control, controlChild, err := socketpair()
	if err != nil {
		readyR.Close()
		readyW.Close()
		namesR.Close()
		namesW.Close()
		return nil, err
	}
	errf, err := os.CreateTemp("", "graceful-stderr-*")
	if err == nil {
		_ = os.Remove(errf.Name())
	} else {
		errf = nil
	}
	// The child's ends, duplicated into it by StartProcess.
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
		add(fileKey{kindFd, nameControl, ""}, controlChild)
	}
	stderr := os.Stderr
	if errf != nil {
		add(fileKey{kindFd, nameStderr, ""}, os.Stderr)
		stderr = errf
	}
	attr := &os.ProcAttr{
		Env:   append(os.Environ(), envParent+"=yes"),
		Files: append([]*os.File{os.Stdin, os.Stdout, stderr}, extra...),
	}
	proc, err := os.StartProcess(path, append([]string{path}, args...), attr)
	if err != nil {
		readyR.Close()
		namesW.Close()
		control.Close()
		if errf != nil {
			errf.Close()
		}
		return nil, err
	}
	c := &child{
		path:    path,
		pid:     proc.Pid,
		spawned: time.Since(start),
		proc:    proc,
		ready:   make(chan struct{}),
		exited:  make(chan struct{}),
		control: control,
		namesW:  namesW,
		stderr:  errf,
	}
	// Both goroutines end by themselves: the first when the child exits,
	// the second when the pipe's write end closes (ready or exit).
	go func() {
		c.state, _ = proc.Wait()
		close(c.exited)
	}()
	go func() {
		defer readyR.Close()
		var msg [readyMsgLen]byte
		n, _ := io.ReadFull(readyR, msg[:])
		if n >= 1 && msg[0] == notifyReady {
			if n == len(msg) {
				c.startup = time.Duration(binary.BigEndian.Uint64(msg[1:]))
			}
			close(c.ready)
		}
	}()
	// A child that died before reading shows in its exit status.
	_ = gob.NewEncoder(namesW).Encode(names)
	return c, nil
}

// abandon kills the child unless it already exited, waits for its exit,
// closes what this process kept for it, and returns cause as an
// *UpgradeError naming the child, its exit status (-1 if killed) and its
// last lines of standard error.
func (c *child) abandon(cause error, lines int) *UpgradeError {
	_ = c.proc.Kill()
	<-c.exited
	status := -1
	if c.state != nil {
		status = c.state.ExitCode()
	}
	e := &UpgradeError{Path: c.path, PID: c.pid, ExitStatus: status, Stderr: c.stderrTail(lines), Err: cause}
	c.control.Close()
	// Nobody is left to learn of this process's exit through it.
	c.namesW.Close()
	c.copyStderr()
	return e
}

// stderrTail returns the last n lines the child wrote before it failed.
func (c *child) stderrTail(n int) []string {
	if c.stderr == nil {
		return nil
	}
	const limit = 64 << 10
	st, err := c.stderr.Stat()
	if err != nil {
		return nil
	}
	off := max(st.Size()-limit, 0)
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
