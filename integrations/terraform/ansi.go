package terraform

import (
	"io"
	"strings"
	"sync"
)

// StripANSI removes terminal escape sequences. Terraform is run with
// -no-color, but values in a plan (and output of provisioners or providers)
// are outside text that may still carry escapes; in chat or a log they are
// noise at best and can hide or rewrite text at worst.
func StripANSI(s string) string {
	i := strings.IndexByte(s, 0x1b)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		b.WriteString(s[:i])
		s = s[i+1:]
		s = s[escapeLen(s):]
		i = strings.IndexByte(s, 0x1b)
	}
	b.WriteString(s)
	return b.String()
}

// escapeLen returns how many bytes after an ESC belong to its sequence.
func escapeLen(s string) int {
	if s == "" {
		return 0
	}
	switch s[0] {
	case '[': // CSI: parameters and intermediates, then one final byte 0x40–0x7e.
		for j := 1; j < len(s); j++ {
			if s[j] >= 0x40 && s[j] <= 0x7e {
				return j + 1
			}
			if s[j] < 0x20 { // a control byte ends a malformed sequence
				return j
			}
		}
		return len(s)
	case ']', 'P', '_', '^': // OSC, DCS, APC, PM: up to BEL or ESC \.
		for j := 1; j < len(s); j++ {
			if s[j] == 0x07 {
				return j + 1
			}
			if s[j] == 0x1b {
				if j+1 < len(s) && s[j+1] == '\\' {
					return j + 2
				}
				return j
			}
		}
		return len(s)
	default:
		if s[0] >= 0x20 && s[0] <= 0x7e {
			return 1 // two-byte escapes such as ESC c or ESC 7
		}
		return 0
	}
}

// lineWriter strips escapes from each write and serialises writers shared by
// stdout and stderr, which terraform-exec copies from two goroutines.
// terraform-exec writes whole lines, so a sequence is never split across
// writes in practice.
type lineWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	redact func(string) string
}

func (l lineWriter) Write(p []byte) (int, error) {
	s := StripANSI(string(p))
	if l.redact != nil {
		s = l.redact(s)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := io.WriteString(l.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}
