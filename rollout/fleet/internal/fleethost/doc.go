// Package fleethost is the harness of the fleet layers' process tests:
// the engines a test runs on (embedded etcd always, PostgreSQL with
// BATON_TEST_POSTGRES_DSN), how a child process opens the same engine from
// its environment, and host processes on loopback addresses of their own
// whose output lines a test awaits.
package fleethost
