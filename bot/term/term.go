// Package term draws Slack mrkdwn for a terminal: bold, italics, code and
// links become terminal styling (or plain text where colour is unwanted),
// emoji become Unicode, and mentions become @names, so that the console
// reads like a terminal program rather than a dump of Slack markup.
package term

import (
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ANSI SGR sequences, each with the one that ends only its own effect, so
// nested styles (bold code) close cleanly.
const (
	bold      = "\x1b[1m"
	boldOff   = "\x1b[22m"
	italic    = "\x1b[3m"
	italicOff = "\x1b[23m"
	strike    = "\x1b[9m"
	strikeOff = "\x1b[29m"
	under     = "\x1b[4m"
	underOff  = "\x1b[24m"
	cyan      = "\x1b[36m"
	dim       = "\x1b[2m"
	colorOff  = "\x1b[39m"
)

// Renderer turns mrkdwn into terminal text.
type Renderer struct {
	// Color allows ANSI escape sequences. Without it the output is plain
	// text: markup is dropped, never printed raw.
	Color bool
	// Name, when set, names a user or user group id (U0ALICE → alice).
	// An unknown id (empty answer) is shown as the id.
	Name func(id string) string
}

// Detect returns a Renderer with colour when out is a terminal and the
// NO_COLOR convention (https://no-color.org: set and not empty) is not in
// force. getenv may be nil (os.Getenv).
func Detect(out io.Writer, getenv func(string) string) Renderer {
	if getenv == nil {
		getenv = os.Getenv
	}
	return Renderer{Color: IsTerminal(out) && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"}
}

// IsTerminal reports whether w is a character device (a terminal), not a
// file or a pipe.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Bold, Dim and Code style plain text (no markup is read in it).
func (r Renderer) Bold(s string) string { return r.wrap(bold, s, boldOff) }
func (r Renderer) Dim(s string) string  { return r.wrap(dim, s, boldOff) }
func (r Renderer) Code(s string) string { return r.wrap(cyan, s, colorOff) }

func (r Renderer) wrap(on, s, off string) string {
	if !r.Color || s == "" {
		return s
	}
	return on + s + off
}

// Mrkdwn renders Slack mrkdwn. Code blocks keep their lines (indented two
// spaces, fences dropped) and only have their entities unescaped: what is
// inside is data, never markup.
//
// Control characters in s (outside text: release notes, PR titles,
// Terraform output) are dropped first, so no message can move the cursor,
// recolour or redraw the numbered choices below it: only the renderer's
// own escapes reach the terminal.
func (r Renderer) Mrkdwn(s string) string {
	s = dropControls(s)
	var b strings.Builder
	for {
		i := strings.Index(s, "```")
		if i < 0 {
			r.lines(&b, s)
			return b.String()
		}
		j := strings.Index(s[i+3:], "```")
		if j < 0 {
			r.lines(&b, s)
			return b.String()
		}
		r.lines(&b, s[:i])
		code := strings.Trim(s[i+3:i+3+j], "\n")
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
			b.WriteByte('\n')
		}
		for k, l := range strings.Split(code, "\n") {
			if k > 0 {
				b.WriteByte('\n')
			}
			b.WriteString("  " + r.Code(Unescape(l)))
		}
		s = s[i+3+j+3:]
		if s != "" && !strings.HasPrefix(s, "\n") {
			b.WriteByte('\n')
		}
	}
}

// lines renders text outside code blocks, line by line: a quote (">")
// is a line-level mark; everything else is inline.
func (r Renderer) lines(b *strings.Builder, s string) {
	for k, l := range strings.Split(s, "\n") {
		if k > 0 {
			b.WriteByte('\n')
		}
		if rest, ok := strings.CutPrefix(l, "&gt;"); ok {
			b.WriteString("│ ")
			l = strings.TrimPrefix(rest, " ")
		} else if rest, ok := strings.CutPrefix(l, ">"); ok {
			b.WriteString("│ ")
			l = strings.TrimPrefix(rest, " ")
		}
		r.inline(b, l)
	}
}

// inline renders one line: code spans, <…> tokens, emoji, styling and
// entities.
func (r Renderer) inline(b *strings.Builder, s string) {
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case '`':
			if j := strings.IndexByte(s[i+1:], '`'); j > 0 {
				b.WriteString(r.Code(Unescape(s[i+1 : i+1+j])))
				i += j + 2
				continue
			}
		case '<':
			if j := strings.IndexByte(s[i+1:], '>'); j > 0 {
				b.WriteString(r.angle(s[i+1 : i+1+j]))
				i += j + 2
				continue
			}
		case ':':
			if out, n := r.emoji(s, i); n > 0 {
				b.WriteString(out)
				i += n
				continue
			}
		case '*', '_', '~':
			if j := closing(s, i); j > 0 {
				inner := &strings.Builder{}
				r.inline(inner, s[i+1:j])
				st := styles[c]
				b.WriteString(r.wrap(st[0], inner.String(), st[1]))
				i = j + 1
				continue
			}
		case '&':
			if ent, n := entity(s[i:]); n > 0 {
				b.WriteString(ent)
				i += n
				continue
			}
		case '@':
			// A group mention already flattened by another renderer.
			if rest, ok := strings.CutPrefix(s[i:], "@subteam^"); ok && rest != "" {
				b.WriteString("@")
				i += len("@subteam^")
				continue
			}
		}
		b.WriteByte(c)
		i++
	}
}

// styles are the inline markers and the escapes that start and end them.
var styles = map[byte][2]string{'*': {bold, boldOff}, '_': {italic, italicOff}, '~': {strike, strikeOff}}

// closing finds the marker closing the one at i, Slack's way: the opener
// follows a non-word character and precedes a non-space; the closer, on
// the same line, follows a non-space and precedes a non-word character.
// It returns -1 when the marker is literal (2*3*4, snake_case).
func closing(s string, i int) int {
	m := s[i]
	if i > 0 {
		prev, _ := utf8.DecodeLastRuneInString(s[:i])
		if isWord(prev) || prev == rune(m) {
			return -1
		}
	}
	if i+1 >= len(s) || s[i+1] == ' ' || s[i+1] == m {
		return -1
	}
	for j := i + 2; j < len(s); j++ {
		if s[j] != m || s[j-1] == ' ' {
			continue
		}
		if j+1 < len(s) {
			next, _ := utf8.DecodeRuneInString(s[j+1:])
			if isWord(next) {
				continue
			}
		}
		return j
	}
	return -1
}

func isWord(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// angle renders what was between < and >: a mention, a channel, a special
// mention, or a link (shown by its text, or its address without one).
func (r Renderer) angle(t string) string {
	target, label, hasLabel := strings.Cut(t, "|")
	switch {
	case strings.HasPrefix(target, "@"):
		return r.Bold("@" + r.name(target[1:], label))
	case strings.HasPrefix(target, "#"):
		if hasLabel && label != "" {
			return r.Bold("#" + Unescape(label))
		}
		return r.Bold("#" + target[1:])
	case strings.HasPrefix(target, "!subteam^"):
		return r.Bold("@" + r.name(strings.TrimPrefix(target, "!subteam^"), strings.TrimPrefix(label, "@")))
	case strings.HasPrefix(target, "!"):
		if hasLabel && label != "" {
			return r.Bold(Unescape(label))
		}
		return r.Bold("@" + strings.TrimPrefix(target, "!"))
	}
	if hasLabel && label != "" {
		return r.wrap(under, Unescape(label), underOff)
	}
	return r.wrap(under, Unescape(target), underOff)
}

// name is how an id is shown: the label Slack carried, else a name the
// console knows, else the id.
func (r Renderer) name(id, label string) string {
	if label != "" {
		return Unescape(label)
	}
	if r.Name != nil {
		if n := r.Name(id); n != "" {
			return n
		}
	}
	return id
}

// emoji renders the :name: starting at i and reports how many bytes it
// took, 0 when it is not an emoji (12:30:05, approve:run-1:3).
func (r Renderer) emoji(s string, i int) (string, int) {
	j := strings.IndexByte(s[i+1:], ':')
	if j <= 0 {
		return "", 0
	}
	name := s[i+1 : i+1+j]
	if u, ok := Emoji[name]; ok {
		return u, j + 2
	}
	letter := false
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z':
			letter = true
		case c >= '0' && c <= '9', c == '_', c == '+', c == '-':
		default:
			return "", 0
		}
	}
	if !letter {
		return "", 0
	}
	// An unknown emoji shows as its name, where it stands alone.
	if i > 0 {
		if prev, _ := utf8.DecodeLastRuneInString(s[:i]); isWord(prev) {
			return "", 0
		}
	}
	if end := i + j + 2; end < len(s) {
		if next, _ := utf8.DecodeRuneInString(s[end:]); isWord(next) {
			return "", 0
		}
	}
	return name, j + 2
}

// Emoji are the Slack emoji deploybot uses, as Unicode.
var Emoji = map[string]string{
	"arrow_up":                  "⬆️",
	"arrows_counterclockwise":   "🔄",
	"bookmark":                  "🔖",
	"checkered_flag":            "🏁",
	"eyes":                      "👀",
	"fast_forward":              "⏩",
	"fire":                      "🔥",
	"floppy_disk":               "💾",
	"heavy_check_mark":          "✔️",
	"hourglass_flowing_sand":    "⏳",
	"information_source":        "ℹ️",
	"large_green_circle":        "🟢",
	"leftwards_arrow_with_hook": "↩️",
	"link":                      "🔗",
	"lock":                      "🔒",
	"mag":                       "🔍",
	"mega":                      "📣",
	"memo":                      "📝",
	"memory":                    "📝",
	"no_entry":                  "⛔",
	"no_entry_sign":             "🚫",
	"octagonal_sign":            "🛑",
	"package":                   "📦",
	"red_circle":                "🔴",
	"rewind":                    "⏪",
	"rocket":                    "🚀",
	"rotating_light":            "🚨",
	"tada":                      "🎉",
	"unlock":                    "🔓",
	"warning":                   "⚠️",
	"white_check_mark":          "✅",
	"white_circle":              "⚪",
	"x":                         "❌",
	"+1":                        "👍",
}

// entity decodes the three entities Slack escapes.
func entity(s string) (string, int) {
	for _, e := range [][2]string{{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}} {
		if strings.HasPrefix(s, e[0]) {
			return e[1], len(e[0])
		}
	}
	return "", 0
}

// Unescape decodes &amp;, &lt; and &gt;.
func Unescape(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}

// Strip removes ANSI escape sequences (CSI ones, which is all Renderer
// writes): the width of styled text, and tests that read what a person
// sees.
func Strip(s string) string {
	if !strings.Contains(s, "\x1b[") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Rows is how many rows text takes on a terminal cols wide, once long
// lines wrap: escapes take none, wide characters (most emoji) two columns,
// combining marks and variation selectors none.
func Rows(text string, cols int) int {
	if cols <= 0 {
		return strings.Count(text, "\n")
	}
	rows := 0
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		w := 0
		for _, r := range Strip(l) {
			w += runeWidth(r)
		}
		rows += max(1, (w+cols-1)/cols)
	}
	return rows
}

func runeWidth(r rune) int {
	switch {
	case r == 0xFE0F || r == 0x200D || unicode.Is(unicode.Mn, r):
		return 0
	case r >= 0x1F000 || (r >= 0x2600 && r <= 0x27BF) || (r >= 0x2B00 && r <= 0x2BFF) || (r >= 0x1100 && r <= 0x115F) || (r >= 0x2E80 && r <= 0xA4CF) || (r >= 0xAC00 && r <= 0xD7A3) || (r >= 0xF900 && r <= 0xFAFF) || (r >= 0xFF00 && r <= 0xFF60):
		return 2
	}
	return 1
}

// dropControls removes C0 controls but newline and tab, DEL, and C1
// controls (ESC and CSI included).
func dropControls(s string) string {
	clean := true
	for _, c := range s {
		if isControl(c) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return strings.Map(func(c rune) rune {
		if isControl(c) {
			return -1
		}
		return c
	}, s)
}

func isControl(c rune) bool {
	return (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f || (c >= 0x80 && c < 0xa0)
}
