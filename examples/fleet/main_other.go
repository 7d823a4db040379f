//go:build !unix

package main

import (
	"fmt"
	"os"
)

// The example signals and groups processes, as only Unix can.
func main() {
	fmt.Fprintln(os.Stderr, "fleet: this example runs on Unix only")
	os.Exit(2)
}
