//go:build !linux

package graceful

import "os"

// Without systemd there is nobody to notify and no socket activation.

func (u *Upgrader) notifyReady()     {}
func (u *Upgrader) notifyStopping()  {}
func (u *Upgrader) notifyReloading() {}
func (u *Upgrader) notifyMain()      {}

func activatedFiles() []*os.File { return nil }
