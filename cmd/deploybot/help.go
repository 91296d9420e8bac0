package main

import "fmt"

// askedForHelp sets the mode for `deploybot help`, -h and --help: asked
// for, help is no error, so main prints the usage and exits 0.
func (m *Main) askedForHelp() error {
	m.Mode = "help"
	return nil
}

// plural says n things: "1 service", "2 services".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
