package graceful

import (
	"fmt"
	"os"
	"strconv"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// systemd integration, on Linux only: notifications when NOTIFY_SOCKET is
// set (Type=notify), and socket activation (LISTEN_FDS) on a first start.

// notify sends a state to systemd when NOTIFY_SOCKET is set; otherwise it
// does nothing. The variable is kept for new processes, which notify for
// themselves (the unit needs NotifyAccess=all).
func (u *Upgrader) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		u.log.Warn("systemd notify failed", "state", state, "err", err)
	}
}

func (u *Upgrader) notifyReady()    { u.notify(daemon.SdNotifyReady) }
func (u *Upgrader) notifyStopping() { u.notify(daemon.SdNotifyStopping) }

func (u *Upgrader) notifyReloading() {
	st := daemon.SdNotifyReloading
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err == nil {
		st += "\nMONOTONIC_USEC=" + strconv.FormatUint(uint64(ts.Sec)*1e6+uint64(ts.Nsec)/1e3, 10)
	}
	u.notify(st)
}

func (u *Upgrader) notifyMain() {
	u.notify(fmt.Sprintf("MAINPID=%d\n%s", os.Getpid(), daemon.SdNotifyReady))
}

// activatedFiles takes the sockets systemd passed (LISTEN_FDS), unsetting
// the variables so that new processes, which get their sockets from this
// one, do not see them.
func activatedFiles() []*os.File { return activation.Files(true) }
