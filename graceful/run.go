package graceful

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// catchSignals starts catching the lifecycle signals at New, so that one
// arriving before Run (a quick second reload, a stop during start-up) is
// queued instead of killing the process with the default action.
func (u *Upgrader) catchSignals() {
	u.sigs = make(chan os.Signal, 8)
	signal.Notify(u.sigs, u.opts.UpgradeSignal, syscall.SIGTERM, syscall.SIGINT)
}

func (u *Upgrader) releaseSignals() { signal.Stop(u.sigs) }

// Run serves the process's lifecycle until it has nothing left to serve:
// Options.UpgradeSignal (SIGHUP by default; systemd's ExecReload sends it)
// upgrades, SIGTERM or SIGINT drains (Shutdown), and a second one closes at
// once. It returns nil when serving ended after a handoff or a drain, or
// ctx.Err() after closing everything if ctx ends first. Call it after Ready.
func (u *Upgrader) Run(ctx context.Context) error {
	sigs := u.sigs
	stops := 0
	for {
		select {
		case s := <-sigs:
			if s == u.opts.UpgradeSignal {
				u.wg.Add(1)
				go func() {
					defer u.wg.Done()
					if err := u.Upgrade(ctx); err != nil {
						u.log.Error("upgrade refused or failed", "err", err)
					}
				}()
				continue
			}
			stops++
			if stops > 1 {
				u.log.Warn("second stop signal: closing now", "signal", s.String())
				u.Close()
				return nil
			}
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				if err := u.Shutdown(context.Background()); err != nil && !errors.Is(err, context.Canceled) {
					u.log.Error("shutdown", "err", err)
				}
			}()
		case <-u.done:
			u.wg.Wait()
			return nil
		case <-ctx.Done():
			u.Close()
			return ctx.Err()
		}
	}
}
