// Package adminnet opens listeners for admin endpoints, which have no
// authentication of their own and so must be reachable only from the local
// machine: a Unix socket with mode 0600, or a loopback TCP address. Guard
// is the HTTP guard every baton admin API shares (rollout's and flags'):
// loopback Host or Unix socket or an explicit allow-list, no foreign
// Origin, JSON bodies only; WriteError and WriteJSON are its one error
// format, {"error": "..."}.
//
// # Guarantees
//
//   - ListenUnix never exposes the socket with looser permissions than 0600,
//     whatever the umask: the socket is bound in a private directory (mode
//     0700), chmodded there, and only then renamed to its path. A chmod after
//     binding at the final path would leave a window in which the umask
//     applies.
//   - ListenUnix replaces a stale socket left by a dead process (one that
//     refuses connections) but refuses, with ErrSocketInUse, a socket some
//     process answers on, so a second instance cannot steal a live admin
//     socket; it refuses to remove any other kind of file at its path.
//   - Closing the listener removes the socket file only if path still names
//     the socket this listener created (same inode): a successor that took
//     the path over keeps its socket.
//   - ListenLoopback refuses addresses that are not loopback, before and after
//     resolution ("localhost" must resolve to a loopback address).
//   - Guard answers no request a web page on the same machine could have
//     made its browser send: a DNS-rebound name as Host, another site's (or
//     another local port's) Origin, a cross-site form's body type.
//
// # Limits
//
// The liveness probe and the rename are two steps: two instances starting
// at the same instant on the same stale path may both pass the probe, and
// the later rename wins. A handoff does not need a shared path: each
// process listens on its own (examples/demo writes the live one to
// admin.current), since the old process still serves during a bake.
//
// Mode 0600 restricts the socket to the process owner (and root); it is no
// protection against code running as that user. The rename needs the private
// directory and path on the same file system, which holds because the
// directory is created beside path.
package adminnet
