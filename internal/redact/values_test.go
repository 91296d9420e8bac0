package redact

import (
	"bytes"
	"strings"
	"testing"
)

func TestValuesMaskKnownSecrets(t *testing.T) {
	const token = "tok-Secret\"Value-123"
	v := NewValues(token, "abc", "", "tok-Secret")
	got := v.String("GitHub said: bad token " + token + ", and tok-Secret alone")
	if strings.Contains(got, "Secret") || got != "GitHub said: bad token [redacted], and [redacted] alone" {
		t.Errorf("masked as %q", got)
	}
	if got := v.String("abc is too short to be a secret"); got != "abc is too short to be a secret" {
		t.Errorf("a short value was masked: %q", got)
	}
	var buf bytes.Buffer
	w := v.Writer(&buf)
	line := `{"msg":"failed","error":"token tok-Secret\"Value-123 refused"}` + "\n"
	if n, err := w.Write([]byte(line)); err != nil || n != len(line) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if strings.Contains(buf.String(), "Value-123") {
		t.Errorf("a JSON-escaped secret reached the log: %s", buf.String())
	}
	var zero Values
	if zero.String(token) != token {
		t.Error("the zero Values masked something")
	}
}
