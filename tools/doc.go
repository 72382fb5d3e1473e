// Package tools pins the developer tools the test suite runs (staticcheck,
// helm) as Go module tools, in a module of their own so that their
// dependencies never mix with the library's or the e2e module's.
package tools
