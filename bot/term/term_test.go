package term

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/internal/testtool"
)

func TestMrkdwnPlain(t *testing.T) {
	r := Renderer{}
	for _, tc := range []struct{ name, in, want string }{
		{"bold", "*Run* `run-1`", "Run run-1"},
		{"italic", "3. Publish — _pending_", "3. Publish — pending"},
		{"strike", "~gone~ now", "gone now"},
		{"nested", "*_both_*", "both"},
		{"link with text", "see <https://github.com/x/y/pull/1|the PR>", "see the PR"},
		{"bare link", "<https://example.com/a>", "https://example.com/a"},
		{"console link", "*Run* <console:C0DEPLOYS/29.000000|run-4>", "Run run-4"},
		{"user", "clicked by <@U0ALICE>", "clicked by @U0ALICE"},
		{"user with label", "<@U0ALICE|alice>", "@alice"},
		{"group", "<!subteam^S0MAINTAINERS> look", "@S0MAINTAINERS look"},
		{"group with handle", "<!subteam^S0MAINTAINERS|@maintainers>", "@maintainers"},
		{"flattened group", "waiting for @subteam^S0MAINTAINERS", "waiting for @S0MAINTAINERS"},
		{"channel", "announced in <#C0ALERTS>", "announced in #C0ALERTS"},
		{"here", "<!here> now", "@here now"},
		{"known emoji", ":rocket: Applying", "🚀 Applying"},
		{"status emoji", ":white_check_mark: 1. Check Airflow", "✅ 1. Check Airflow"},
		{"unknown emoji", ":sparkles: new", "sparkles new"},
		{"clock is not emoji", "at 22:46:19 UTC", "at 22:46:19 UTC"},
		{"action id is not emoji", "approve:run-1:3", "approve:run-1:3"},
		{"entities", "a &amp; b &lt;c&gt;", "a & b <c>"},
		{"escaped mention stays text", "&lt;!channel&gt;", "<!channel>"},
		{"snake case", "data_refresh_cleared_flag is_set", "data_refresh_cleared_flag is_set"},
		{"arithmetic", "2*3*4 and a * b", "2*3*4 and a * b"},
		{"tilde count", "+2 to add, ~0 to change, -0 to destroy", "+2 to add, ~0 to change, -0 to destroy"},
		{"quote", ">returns 500s &amp; more", "│ returns 500s & more"},
		{"code keeps markup", "`*x*` and `a_b_c`", "*x* and a_b_c"},
		{"code block", "*Plan*, latest:\n```\n+ add :x: *y*\n&lt;b&gt;\n```", "Plan, latest:\n  + add :x: *y*\n  <b>"},
		{"code block then text", "```\nline\n```\nafter *b*", "  line\nafter b"},
		{"unclosed", "*open and `tick", "*open and `tick"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.Mrkdwn(tc.in); got != tc.want {
				t.Errorf("Mrkdwn(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestMrkdwnColor(t *testing.T) {
	r := Renderer{Color: true, Name: func(id string) string {
		if id == "U0ALICE" {
			return "alice"
		}
		return ""
	}}
	for _, tc := range []struct{ name, in, want string }{
		{"bold", "*Run*", "\x1b[1mRun\x1b[22m"},
		{"italic", "_pending_", "\x1b[3mpending\x1b[23m"},
		{"code", "`run-1`", "\x1b[36mrun-1\x1b[39m"},
		{"link", "<https://x|PR>", "\x1b[4mPR\x1b[24m"},
		{"known name", "<@U0ALICE>", "\x1b[1m@alice\x1b[22m"},
		{"unknown name", "<@U0BOB>", "\x1b[1m@U0BOB\x1b[22m"},
		{"bold code", "*plan `abc`*", "\x1b[1mplan \x1b[36mabc\x1b[39m\x1b[22m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.Mrkdwn(tc.in); got != tc.want {
				t.Errorf("Mrkdwn(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
			if Strip(r.Mrkdwn(tc.in)) != (Renderer{Name: r.Name}).Mrkdwn(tc.in) {
				t.Errorf("colour and plain say different words for %q", tc.in)
			}
		})
	}
}

// No mrkdwn survives in what a person reads, and plain output has no
// escapes, over every emoji deploybot uses.
func TestEveryKnownEmojiRenders(t *testing.T) {
	for name := range Emoji {
		got := Renderer{}.Mrkdwn("x :" + name + ": y")
		if strings.Contains(got, ":") || strings.Contains(got, "\x1b") {
			t.Errorf(":%s: rendered %q", name, got)
		}
	}
}

func TestDetect(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if Detect(f, env()).Color {
		t.Error("a file got colour")
	}
	if Detect(&strings.Builder{}, env()).Color {
		t.Error("a buffer got colour")
	}
	// A terminal: colour unless NO_COLOR or TERM=dumb.
	tty, _ := testtool.Terminal(t)
	if !Detect(tty, env("TERM", "xterm")).Color {
		t.Error("a terminal got no colour")
	}
	if Detect(tty, env("NO_COLOR", "1")).Color {
		t.Error("NO_COLOR was ignored")
	}
	if Detect(tty, env("TERM", "dumb")).Color {
		t.Error("TERM=dumb was ignored")
	}
}

func TestRows(t *testing.T) {
	for _, tc := range []struct {
		text       string
		cols, want int
	}{
		{"a\nb\n", 80, 2},
		{strings.Repeat("x", 80) + "\n", 80, 1},
		{strings.Repeat("x", 81) + "\n", 80, 2},
		{"\x1b[1m" + strings.Repeat("x", 80) + "\x1b[22m\n", 80, 1},
		{strings.Repeat("🚀", 40) + "\n", 80, 1},
		{strings.Repeat("🚀", 41) + "\n", 80, 2},
		{"⚠️ warning\n", 10, 1},
		{"\n\n", 80, 2},
		{"a\nb\n", 0, 2},
	} {
		if got := Rows(tc.text, tc.cols); got != tc.want {
			t.Errorf("Rows(%q, %d) = %d, want %d", tc.text, tc.cols, got, tc.want)
		}
	}
}

func TestWidth(t *testing.T) {
	tty, _ := testtool.Terminal(t)
	if w := Width(tty); w != 80 {
		t.Errorf("Width of an 80-column terminal = %d", w)
	}
	if w := Width(&strings.Builder{}); w != 0 {
		t.Errorf("Width of a buffer = %d", w)
	}
}

// Outside text cannot drive the terminal: a release note carrying escape
// sequences (clear screen, recolour, an OSC title) prints as plain text.
func TestOutsideControlCharactersNeverReachTheTerminal(t *testing.T) {
	in := "fix \x1b[2J\x1b[31mred\x1b]0;owned\x07 \u009b1mbold\x00 done\nnext\tcol"
	for _, r := range []Renderer{{}, {Color: true}} {
		out := r.Mrkdwn(in)
		plain := Strip(out)
		if strings.ContainsAny(plain, "\x1b\x07\x00\u009b") {
			t.Errorf("color=%v: control characters reached the terminal: %q", r.Color, out)
		}
		if !strings.Contains(plain, "red") || !strings.Contains(plain, "next\tcol") || !strings.Contains(plain, "\n") {
			t.Errorf("color=%v: the text itself was lost: %q", r.Color, plain)
		}
	}
}
