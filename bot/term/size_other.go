//go:build !linux

package term

import "io"

// Width is the terminal's width in columns; 0 (unknown) off Linux.
func Width(w io.Writer) int { return 0 }
