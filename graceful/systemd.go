package graceful

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notify sends a state to systemd when NOTIFY_SOCKET is set (Type=notify);
// otherwise it does nothing. The variable is kept for new processes, which
// notify for themselves (the unit needs NotifyAccess=all).
func (u *Upgrader) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		u.log.Warn("systemd notify failed", "state", state, "err", err)
	}
}

func (u *Upgrader) notifyReloading() {
	st := daemon.SdNotifyReloading
	if us, ok := monotonicUsec(); ok {
		st += "\nMONOTONIC_USEC=" + strconv.FormatUint(us, 10)
	}
	u.notify(st)
}

func (u *Upgrader) notifyMain() {
	u.notify(fmt.Sprintf("MAINPID=%d\n%s", os.Getpid(), daemon.SdNotifyReady))
}

// writePIDFile replaces the PID file atomically so a reader never sees it
// empty or half written.
func writePIDFile(path string) error {
	if path == "" {
		return nil
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+".tmp*")
	if err != nil {
		return fmt.Errorf("graceful: PID file %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(strconv.Itoa(os.Getpid()) + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("graceful: PID file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("graceful: PID file %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("graceful: PID file %s: %w", path, err)
	}
	return nil
}
