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

// A secret with the characters Slack and JSON escape is masked in each of
// its escaped forms too: Slack shows &amp; as &, and zap writes & and < as
// they are inside a JSON string while encoding/json escapes them.
func TestValuesMaskEscapedForms(t *testing.T) {
	const pw = `p&ss"w<rd>1`
	v := NewValues(pw)
	for _, s := range []string{
		"said " + pw,
		"said p&amp;ss\"w&lt;rd&gt;1",
		`{"error":"said p&ss\"w<rd>1"}`,
		`{"error":"said p\u0026ss\"w\u003crd\u003e1"}`,
		`{"error":"said p&amp;ss\"w&lt;rd&gt;1"}`,
	} {
		if got := v.String(s); strings.Contains(got, "ss") {
			t.Errorf("%s masked as %s", s, got)
		}
	}
}

// A private key quoted in part (one line of it) is masked too.
func TestValuesMaskEachLineOfAKey(t *testing.T) {
	const line = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"
	v := NewValues("-----BEGIN RSA PRIVATE KEY-----\n" + line + "\n-----END RSA PRIVATE KEY-----\n")
	if got := v.String("git said: bad key " + line[:64]); strings.Contains(got, "MIIE") {
		t.Errorf("a key's line was not masked: %s", got)
	}
	if got := NewValuesMin(4, "abcd").String("x abcd y"); got != "x [redacted] y" {
		t.Errorf("NewValuesMin(4) masked as %q", got)
	}
}
