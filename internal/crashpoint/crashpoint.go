//go:build !crashtest

// Package crashpoint lets the crash-matrix tests kill the bot at the Nth
// persisted transition. In production builds (without the crashtest build
// tag) Hit does nothing and cannot be made to: the variable that would arm
// it does not exist.
package crashpoint

// Enabled reports whether this binary was built with the crash hook.
const Enabled = false

// Hit is called by the store just before each write transaction commits.
func Hit(what string) {}
