// Package readme holds the test that compiles the Go snippets of the
// repository's README.md, so that what a newcomer copies from it builds
// against the current API.
package readme
