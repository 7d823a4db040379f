// Package traffic gives a fleet one canary: one weight, one assignment of
// keys and one verdict for every host. It stands on package fleet (any
// engine) and applies what is shared through canary's own API; package
// canary knows nothing of the fleet.
package traffic
