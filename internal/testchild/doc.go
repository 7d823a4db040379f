// Package testchild is the child-process harness of baton's tests: a test
// binary that re-executes itself in a named role, a Go program built once
// per test binary (with the race detector when the tests have it), and
// waits on a child's output or exit that end with a failure naming what was
// awaited instead of hanging until the global go test timeout.
//
// A package registers its roles before calling Main from TestMain:
//
//	func TestMain(m *testing.M) {
//		testchild.Register("server", serverMain)
//		testchild.Main(m, func() int { goleak.VerifyTestMain(m); return 0 })
//	}
//
// and a test starts one with Command(ctx, "server", env...). In a child,
// Main runs the role's function and exits with its status; the test
// functions never run there.
//
// Every wait in the harness has a deadline of its own (DefaultWait unless
// given), so a child that hangs fails its test in seconds with the line or
// condition it was waiting for.
package testchild
