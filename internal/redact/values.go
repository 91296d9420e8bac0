package redact

import (
	"encoding/json"
	"io"
	"sort"
	"strings"
)

// MinSecret is the shortest value Values masks: a shorter one (a
// one-letter password) would mask ordinary words everywhere.
const MinSecret = 6

// Values masks known secret values (the configured tokens and passwords)
// wherever they appear: the last line of defence for text that reaches a
// log or Slack from an outside system's answer (an error that quotes a
// header, a tool that echoes its input). The zero value masks nothing.
type Values struct{ r *strings.Replacer }

// NewValues masks each value of at least MinSecret characters in every
// form it can take on its way out: as it is, escaped for Slack (&amp; &lt;
// &gt;, which Slack shows as the characters again), and either of those
// inside a JSON string, with and without HTML escaping (zap writes log
// lines without it, encoding/json with it). A multi-line value (a private
// key) also counts each of its long lines, since output often shows only
// part of it. Longest first, so that a secret containing another is masked
// whole.
func NewValues(secrets ...string) Values { return NewValuesMin(MinSecret, secrets...) }

// NewValuesMin is NewValues with another shortest value: what a Terraform
// plan marks sensitive is masked from 4 characters on, in plan text only.
func NewValuesMin(min int, secrets ...string) Values {
	seen := map[string]bool{}
	var forms []string
	add := func(s string) {
		if len(s) < min {
			return
		}
		for _, x := range []string{s, slackEscaper.Replace(s)} {
			for _, f := range []string{x, jsonString(x, false), jsonString(x, true)} {
				if !seen[f] {
					seen[f] = true
					forms = append(forms, f)
				}
			}
		}
	}
	for _, s := range secrets {
		s = strings.TrimSpace(s)
		add(s)
		if strings.Contains(s, "\n") {
			for _, l := range strings.Split(s, "\n") {
				if l = strings.TrimSpace(l); len(l) >= 16 {
					add(l)
				}
			}
		}
	}
	if len(forms) == 0 {
		return Values{}
	}
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, Mask)
	}
	return Values{r: strings.NewReplacer(pairs...)}
}

// slackEscaper is steps.Escape's escaping (the domain's; not imported here).
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// jsonString is s as it reads between the quotes of a JSON string.
func jsonString(s string, escapeHTML bool) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	_ = enc.Encode(s)
	q := strings.TrimSuffix(b.String(), "\n")
	return q[1 : len(q)-1]
}

// String returns s with every secret masked.
func (v Values) String(s string) string {
	if v.r == nil {
		return s
	}
	return v.r.Replace(s)
}

// Bytes is String for file contents.
func (v Values) Bytes(b []byte) []byte {
	if v.r == nil {
		return b
	}
	return []byte(v.r.Replace(string(b)))
}

// Writer masks what is written to w. Each Write must hold whole values:
// zap writes one entry per call, so a log line is never split inside one.
func (v Values) Writer(w io.Writer) io.Writer {
	if v.r == nil {
		return w
	}
	return valuesWriter{v, w}
}

type valuesWriter struct {
	v Values
	w io.Writer
}

func (m valuesWriter) Write(p []byte) (int, error) {
	if _, err := m.w.Write(m.v.Bytes(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}
