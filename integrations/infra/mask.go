package infra

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/deploybot/deploybot/internal/childenv"
	"github.com/deploybot/deploybot/internal/redact"
)

// Masked replaces a secret value in text bound for Slack.
const Masked = redact.Mask

// minSecretLen keeps short values ("1", "true", "dev") from being blanked
// all over a plan just because a sensitive attribute happens to hold them.
const minSecretLen = 4

// secretName is a variable whose value is a credential, among those passed
// to Terraform through infra.terraform_env (AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN, TF_TOKEN_*): its value is masked in everything the
// bot posts. Other inherited values (AWS_REGION) are harmless and often
// part of what a reviewer needs to read (ARNs).
var secretName = regexp.MustCompile(`(?i)(secret|token|passw|private|credential|session|dsn|_key$)`)

// masker rewrites text that leaves for Slack: the host's absolute paths
// under the workdir become "<workdir>/…", the home directory "~", and
// secret values are replaced by Masked.
type masker struct {
	paths   [][2]string // prefix, replacement; longest first
	secrets redact.Values
}

func (in *Infra) masker(extra ...string) *masker {
	m := &masker{}
	add := func(p, repl string) {
		if p == "" || p == "/" {
			return
		}
		m.paths = append(m.paths, [2]string{filepath.Clean(p), repl})
		if real, err := filepath.EvalSymlinks(p); err == nil && real != filepath.Clean(p) {
			m.paths = append(m.paths, [2]string{real, repl})
		}
	}
	add(in.cfg.Workdir, "<workdir>")
	if home, err := os.UserHomeDir(); err == nil {
		add(home, "~")
	}
	sort.Slice(m.paths, func(i, j int) bool { return len(m.paths[i][0]) > len(m.paths[j][0]) })

	secrets := append(append([]string(nil), in.Secrets...), extra...)
	patterns := in.cfg.TerraformEnv
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		// Values Terraform may hold, and the bot's own credentials
		// whether or not the config was told about them.
		if (childenv.Match(k, patterns) && secretName.MatchString(k)) || childenv.IsForbidden(k) && secretName.MatchString(k) {
			secrets = append(secrets, v)
		}
	}
	m.secrets = redact.NewValuesMin(minSecretLen, secrets...)
	return m
}

func (m *masker) String(s string) string {
	s = m.secrets.String(s)
	for _, p := range m.paths {
		s = replacePath(s, p[0], p[1])
	}
	return s
}

// replacePath replaces prefix where it is a whole path or the start of
// one, so /home/bot is not rewritten inside /home/bot2.
func replacePath(s, prefix, repl string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, prefix)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := i + len(prefix)
		if end == len(s) || s[end] == '/' || !isPathByte(s[end]) {
			b.WriteString(s[:i])
			b.WriteString(repl)
		} else {
			b.WriteString(s[:end])
		}
		s = s[end:]
	}
}

func isPathByte(c byte) bool {
	return c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// Err returns err with its message masked. The chain is kept, so
// errors.Is(err, context.Canceled) still works; only the text changes.
func (m *masker) Err(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := m.String(msg); clean != msg {
		return &maskedError{msg: clean, err: err}
	}
	return err
}

type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }

// writer masks what goes to w line by line: a secret split across two
// writes would otherwise pass unrecognised. Flush writes a last unfinished
// line.
type writer struct {
	m   *masker
	w   io.Writer
	mu  sync.Mutex
	buf []byte
}

func (m *masker) Writer(w io.Writer) *writer { return &writer{m: m, w: w} }

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	i := bytes.LastIndexByte(w.buf, '\n')
	if i < 0 {
		return len(p), nil
	}
	out := w.m.String(string(w.buf[:i+1]))
	w.buf = append(w.buf[:0], w.buf[i+1:]...)
	if _, err := io.WriteString(w.w, out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return nil
	}
	out := w.m.String(string(w.buf))
	w.buf = w.buf[:0]
	_, err := io.WriteString(w.w, out)
	return err
}

// sensitiveValues collects the literal values a plan marks sensitive
// (resource attributes before and after, outputs, variables), so that
// they are masked if Terraform or a provider ever prints them.
func sensitiveValues(p *tfjson.Plan) []string {
	if p == nil {
		return nil
	}
	var out []string
	for _, rc := range p.ResourceChanges {
		changeSensitive(rc, &out)
	}
	return append(out, planSensitive(p)...)
}

// changeSensitive adds the values one resource change marks sensitive.
func changeSensitive(rc *tfjson.ResourceChange, out *[]string) {
	if rc == nil || rc.Change == nil {
		return
	}
	collectSensitive(rc.Change.Before, rc.Change.BeforeSensitive, out)
	collectSensitive(rc.Change.After, rc.Change.AfterSensitive, out)
}

// planSensitive collects the sensitive values of p's outputs and
// variables (not of its resource changes: see changeSensitive).
func planSensitive(p *tfjson.Plan) []string {
	if p == nil {
		return nil
	}
	var out []string
	for _, oc := range p.OutputChanges {
		if oc == nil {
			continue
		}
		collectSensitive(oc.Before, oc.BeforeSensitive, &out)
		collectSensitive(oc.After, oc.AfterSensitive, &out)
	}
	if p.Config != nil && p.Config.RootModule != nil {
		for name, v := range p.Config.RootModule.Variables {
			if v != nil && v.Sensitive {
				if pv, ok := p.Variables[name]; ok && pv != nil {
					collectSensitive(pv.Value, true, &out)
				}
			}
		}
	}
	return out
}

// collectSensitive walks value along the shape of marks (true, or a
// map/list of marks, as Terraform's JSON plan writes them).
func collectSensitive(value, marks any, out *[]string) {
	if b, ok := marks.(bool); ok {
		if b {
			leaves(value, out)
		}
		return
	}
	switch m := marks.(type) {
	case map[string]any:
		if v, ok := value.(map[string]any); ok {
			for k, mk := range m {
				collectSensitive(v[k], mk, out)
			}
		}
	case []any:
		if v, ok := value.([]any); ok {
			for i, mk := range m {
				if i < len(v) {
					collectSensitive(v[i], mk, out)
				}
			}
		}
	}
}

func leaves(v any, out *[]string) {
	switch x := v.(type) {
	case string:
		*out = append(*out, x)
	case map[string]any:
		for _, e := range x {
			leaves(e, out)
		}
	case []any:
		for _, e := range x {
			leaves(e, out)
		}
	}
}
