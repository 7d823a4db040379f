//go:build !unix

package haproxy

import "os"

// Start refuses to run on these systems; the values only keep the build.
var (
	softStop = os.Kill
	hardStop = os.Kill
)
