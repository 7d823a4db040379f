// Package atomicfile replaces small files so that a crash at any point
// leaves either the old or the new content, never a torn one: the data is
// written to a temporary file in the same directory, fsynced, renamed over
// the target, and the directory is fsynced so that the rename itself is
// durable. rollout's FileStore, its process PID files and the adapters'
// state files write through it.
//
// # Limits
//
// The temporary file and the target must be on one file system (they are:
// the temporary file is created beside the target). Where a directory
// cannot be opened for fsync (Windows), the rename is as durable as the
// file system makes it.
package atomicfile
