package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// The walker's primitives: reading YAML nodes of each type, collecting a
// problem (with its key path and line) instead of stopping at the first.

func (w *walker) seq(f fieldSet, key, what string) ([]*yaml.Node, string) {
	p := f.at(key)
	n := f.vals[key]
	if n == nil {
		return nil, p
	}
	n = deref(n)
	if w.flagged[n] {
		return nil, p
	}
	if n.Kind != yaml.SequenceNode {
		w.add(n, p, fmt.Sprintf("want a list of %s, got %s", what, describe(n)))
		return nil, p
	}
	return append([]*yaml.Node{}, n.Content...), p
}

// section validates the mapping at key; false when it is absent or broken.
func (w *walker) section(f fieldSet, key string, known ...string) (fieldSet, bool) {
	n := f.vals[key]
	if n == nil {
		return fieldSet{}, false
	}
	return w.fields(n, f.at(key), known...)
}

// fields checks that n is a mapping, reports unknown and duplicate keys,
// and returns the known keys' non-null values. A null value counts as
// absent, so "github:" with everything below commented out turns GitHub off
// the same way as removing the section.
func (w *walker) fields(n *yaml.Node, path string, known ...string) (fieldSet, bool) {
	n = deref(n)
	f := fieldSet{path: path, vals: map[string]*yaml.Node{}}
	if path != "" {
		f.node = n
	}
	if w.flagged[n] {
		return f, false
	}
	if n.Kind != yaml.MappingNode {
		w.add(n, path, "want a mapping, got "+describe(n))
		return f, false
	}
	for _, e := range w.entries(n, path) {
		k := e.key.Value
		if !slices.Contains(known, k) {
			w.unknown(e, path, known)
			continue
		}
		if !isNull(e.val) {
			f.vals[k] = e.val
		}
	}
	return f, true
}

// entries returns a mapping's key/value pairs in order, with "<<" merge keys
// expanded (explicit keys win over merged ones) and duplicates reported.
func (w *walker) entries(n *yaml.Node, path string) []entry {
	var out, merged []entry
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if w.flagged[k] {
			continue
		}
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			merged = append(merged, w.merge(v, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			w.add(k, path, "keys must be plain strings, got "+describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			if !w.dups[k] {
				w.dups[k] = true
				w.add(k, join(path, k.Value), fmt.Sprintf("duplicate key (first at line %d)", first.Line))
			}
			continue
		}
		seen[k.Value] = k
		out = append(out, entry{k, v})
	}
	for _, e := range merged {
		if _, ok := seen[e.key.Value]; !ok {
			seen[e.key.Value] = e.key
			out = append(out, e)
		}
	}
	return out
}

func (w *walker) merge(v *yaml.Node, path string) []entry {
	v = deref(v)
	switch v.Kind {
	case yaml.MappingNode:
		return w.entries(v, path)
	case yaml.SequenceNode:
		var out []entry
		for _, m := range v.Content {
			if m = deref(m); m.Kind == yaml.MappingNode {
				out = append(out, w.entries(m, path)...)
			} else {
				w.add(m, join(path, "<<"), "want a mapping to merge, got "+describe(m))
			}
		}
		return out
	}
	w.add(v, join(path, "<<"), "want a mapping to merge, got "+describe(v))
	return nil
}

// unknown reports a key the schema does not have. Secret-looking keys get
// the secrets message instead, since a misspelled key is the lesser problem.
func (w *walker) unknown(e entry, path string, known []string) {
	p := join(path, e.key.Value)
	if w.containsFlagged(e.val) {
		return // its secret value is already reported at this path
	}
	if secretName(e.key.Value) {
		w.add(e.key, p, secretMessage(p, ""))
		return
	}
	msg := "unknown key"
	if s := suggest(e.key.Value, known); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else {
		msg += " (known: " + strings.Join(known, ", ") + ")"
	}
	w.add(e.key, p, msg)
}

// scanSecrets reports every scalar in the file that looks like a
// credential, before the typed walk, so that secrets are found under
// unknown keys and in wrongly typed values too, and are never echoed.
func (w *walker) scanSecrets(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = fmt.Sprintf("%s[%d]", path, i)
			}
			w.scanSecrets(c, p)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := path
			if k.Kind == yaml.ScalarNode {
				if env, ok := secretValue(k.Value); ok {
					w.flagged[k] = true
					w.add(k, path, secretMessage(path, env))
				} else {
					p = join(path, k.Value)
				}
			}
			w.scanSecrets(v, p)
		}
	case yaml.ScalarNode:
		if env, ok := secretValue(n.Value); ok {
			w.flagged[n] = true
			w.add(n, path, secretMessage(path, env))
		}
	}
}

func (w *walker) containsFlagged(n *yaml.Node) bool {
	if w.flagged[n] {
		return true
	}
	for _, c := range n.Content {
		if w.containsFlagged(c) {
			return true
		}
	}
	return false
}

// str reads the string at key. Absent, null or "" gives def, or a
// "required" problem when required. check returns a message for a
// malformed value, or "".
func (w *walker) str(f fieldSet, key string, required bool, def string, check func(string) string) string {
	n := f.vals[key]
	p := f.at(key)
	if n == nil {
		if required {
			w.add(f.node, p, "required")
		}
		return def
	}
	v, ok := w.asString(n, p)
	if !ok {
		return def
	}
	if strings.TrimSpace(v) == "" {
		if required {
			w.add(deref(n), p, "required")
		}
		return def
	}
	if check != nil {
		if msg := check(v); msg != "" {
			w.add(deref(n), p, msg)
		}
	}
	return v
}

// strList reads a list of strings at key; present reports whether the key
// was there at all. A required list must have at least one entry.
func (w *walker) strList(f fieldSet, key string, required bool, check func(string) string) (list []string, present bool) {
	n := f.vals[key]
	p := f.at(key)
	if n == nil {
		if required {
			w.add(f.node, p, "required")
		}
		return nil, false
	}
	n = deref(n)
	if w.flagged[n] {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		msg := "want a list, got " + describe(n)
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && !strings.ContainsAny(n.Value, "\n[]") {
			msg += fmt.Sprintf(" (write [%s])", n.Value)
		}
		w.add(n, p, msg)
		return nil, true
	}
	if required && len(n.Content) == 0 {
		w.add(n, p, "required: list at least one")
	}
	list = []string{}
	for i, item := range n.Content {
		ip := fmt.Sprintf("%s[%d]", p, i)
		v, ok := w.asString(item, ip)
		if !ok {
			continue
		}
		if check != nil {
			if msg := check(v); msg != "" {
				w.add(deref(item), ip, msg)
				continue
			}
		}
		list = append(list, v)
	}
	return list, true
}

// asString accepts any scalar except null and booleans: "2024" or 1.10 are
// fine as branch names, but "true" where a name is expected is a mistake.
func (w *walker) asString(n *yaml.Node, p string) (string, bool) {
	n = deref(n)
	if w.flagged[n] {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!bool" || n.ShortTag() == "!!null" {
		w.add(n, p, "want a string, got "+describe(n))
		return "", false
	}
	return n.Value, true
}

// boolean reads a YAML boolean. "yes", "on" and the like are refused: YAML
// 1.2 reads them as strings, and guessing would make four_eyes: "no" mean
// something different to different tools.
func (w *walker) boolean(f fieldSet, key string) bool {
	n := f.vals[key]
	if n == nil {
		return false
	}
	n = deref(n)
	if w.flagged[n] {
		return false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		w.add(n, f.at(key), "want true or false, got "+describe(n))
		return false
	}
	return strings.EqualFold(n.Value, "true")
}

func (w *walker) integer(n *yaml.Node, p string) (int, bool) {
	n = deref(n)
	if w.flagged[n] {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		if v, err := strconv.Atoi(n.Value); err == nil {
			return v, true
		}
	}
	w.add(n, p, "want an integer, got "+describe(n))
	return 0, false
}

func (w *walker) duration(n *yaml.Node, p string) (time.Duration, bool) {
	n = deref(n)
	if w.flagged[n] {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		d, err := time.ParseDuration(n.Value)
		if err == nil && d > 0 {
			return d, true
		}
		if err == nil {
			w.add(n, p, fmt.Sprintf("must be longer than 0, got %s", quote(n.Value)))
			return 0, false
		}
	}
	w.add(n, p, "want a duration like 15m or 1h30m, got "+describe(n))
	return 0, false
}

// resolve makes a relative path absolute against the config file's
// directory, so that the meaning of the file does not depend on the
// directory the bot happens to be started from.
func (w *walker) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(w.base, p)
}

func suggest(k string, known []string) string {
	lk := strings.ToLower(strings.ReplaceAll(k, "-", "_"))
	best, bestD := "", -1
	for _, c := range known {
		if d := levenshtein(lk, c); bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" && bestD <= max(1, len(best)/3) {
		return best
	}
	if len(lk) >= 4 {
		for _, c := range known {
			if strings.Contains(c, lk) || strings.Contains(lk, c) {
				return c
			}
		}
	}
	return ""
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n == nil {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func seqLen(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	if n = deref(n); n.Kind == yaml.SequenceNode {
		return len(n.Content)
	}
	return 0
}

// describe names what a node holds, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!int", "!!float", "!!bool":
			return n.Value
		}
		return quote(n.Value)
	}
	return "nothing"
}

// quote quotes a value for a message, shortened, and never a secret (the
// walk reports secrets first, but a message is the wrong place to rely on
// that).
func quote(v string) string {
	if _, secret := secretValue(v); secret {
		return "[redacted]"
	}
	if utf8.RuneCountInString(v) > 60 {
		v = string([]rune(v)[:57]) + "…"
	}
	return strconv.Quote(v)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
