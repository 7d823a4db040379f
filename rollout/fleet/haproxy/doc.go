// Package haproxy is blue-green behind a real load balancer: HAProxy,
// driven through its Runtime API (the admin socket), with no library of
// its own.
package haproxy
