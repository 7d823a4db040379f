//go:build !linux

package graceful

func monotonicUsec() (uint64, bool) { return 0, false }
