// Package etcd is the fleet engine on etcd v3 (go.etcd.io/etcd/client/v3),
// the only package of baton's library that imports etcd's client.
//
//	e, err := etcd.Open(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}})
//	m, err := fleet.Join(ctx, e, fleet.Options{...})
//
// # How it maps the fleet onto etcd
//
//   - Documents are etcd keys; a document's revision is the key's mod
//     revision, and List and Get are linearizable reads.
//   - Commit is one etcd Txn: each op compares the key's create revision
//     (absent) or mod revision (the revision read), and a fenced Txn also
//     compares the create revision of its leader key with its term. The
//     server evaluates the compares and applies the writes in one step of
//     its Raft log, so a deposed leader's write is refused, never applied.
//   - Leases are concurrency.Sessions: the client renews them every third of
//     the TTL and gives them up when no renewal succeeded for a whole TTL.
//   - Elections are concurrency.Elections on the prefix election+"/"; the
//     term is the leader key's create revision.
//   - Watch is etcd's Watch from a revision, resumed over new connections.
//
// # Known limits
//
//   - TTLs are whole seconds (rounded up), and etcd raises them to its
//     minimum, 1.5 election timeouts (2 s with the default 1 s).
//   - etcd's leases survive a restart of the server: a lease whose holder
//     is gone expires one TTL after the server is back.
//   - Compaction is the cluster operator's (etcd's --auto-compaction-*); a
//     watch from a compacted revision fails with fleet.ErrCompacted and the
//     fleet lists again.
package etcd
