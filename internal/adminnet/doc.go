// Package adminnet opens listeners for admin endpoints, which have no
// authentication of their own and so must be reachable only from the local
// machine: a Unix socket with mode 0600, or a loopback TCP address.
//
// # Guarantees
//
//   - ListenUnix never exposes the socket with looser permissions than 0600,
//     whatever the umask: the socket is bound in a private directory (mode
//     0700), chmodded there, and only then renamed to its path. A chmod after
//     binding at the final path would leave a window in which the umask
//     applies.
//   - ListenUnix replaces a stale socket left by a dead process but refuses to
//     remove any other kind of file at its path.
//   - ListenLoopback refuses addresses that are not loopback, before and after
//     resolution ("localhost" must resolve to a loopback address).
//
// # Limits
//
// Mode 0600 restricts the socket to the process owner (and root); it is no
// protection against code running as that user. The rename needs the private
// directory and path on the same file system, which holds because the
// directory is created beside path.
package adminnet
