package bot

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Console runs the bot in a terminal: messages print as text, buttons as
// numbered choices, over the same engine and store as Slack. Lines typed are
// slash commands ("/deploy ingestion-server rel-…"), a choice number, or
// ":as U123" to act as another user (four-eyes needs a second person).
type Console struct {
	out     io.Writer
	channel string

	mu       sync.Mutex
	user     string
	bot      *Bot
	nextTS   int
	rendered map[string]string // last text printed per message, to print only changes
	choices  []choice
}

type choice struct {
	ts     string
	button Button
	step   string
}

// NewConsole makes a console that prints to out and acts as user in
// channel (the first deploy channel).
func NewConsole(out io.Writer, user, channel string) *Console {
	return &Console{out: out, user: user, channel: channel, rendered: map[string]string{}}
}

// Attach sets the bot the console drives.
func (c *Console) Attach(b *Bot) { c.bot = b }

// Post implements Chat.
func (c *Console) Post(ctx context.Context, channel, threadTS string, v View) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextTS++
	ts := fmt.Sprintf("%d.000000", c.nextTS)
	if threadTS != "" {
		fmt.Fprintf(c.out, "    ↳ %s\n", indent(plain(viewText(v)), "      "))
		if hasButtons(v) {
			c.offer(ts, v, "      ")
		}
		return ts, nil
	}
	c.print(ts, v)
	return ts, nil
}

// Find implements Chat. The console's messages live only on the screen, so
// nothing is found: after a restart an entry that was printed just before
// the crash may print again, which a terminal reader can tell.
func (c *Console) Find(ctx context.Context, channel, threadTS, key string, since time.Time) (string, bool, error) {
	return "", false, nil
}

// FindFile implements Chat; see Find.
func (c *Console) FindFile(ctx context.Context, channel, threadTS, name, title string) (bool, error) {
	return false, nil
}

// Upload implements Chat: the console writes the file next to its state
// and prints where.
func (c *Console) Upload(ctx context.Context, channel, threadTS, name, title string, content []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	dir := filepath.Join(os.TempDir(), "deploybot-console")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, filepath.Base(name))
	if err := os.WriteFile(path, content, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "    ↳ [file] %s: %s\n", title, path)
	return nil
}

// Permalink implements Chat: the console has no links; it names the
// message instead.
func (c *Console) Permalink(ctx context.Context, channel, ts string) (string, error) {
	return "console:" + channel + "/" + ts, nil
}

// Update implements Chat.
func (c *Console) Update(ctx context.Context, channel, ts string, v View) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.print(ts, v)
	return nil
}

func (c *Console) print(ts string, v View) {
	text := plain(viewText(v))
	if c.rendered[ts] == text && !hasButtons(v) {
		return
	}
	c.rendered[ts] = text
	fmt.Fprintf(c.out, "\n┌──────────────────────────────────────────\n│ %s\n", indent(text, "│ "))
	if hasButtons(v) {
		c.offer(ts, v, "│ ")
		fmt.Fprintf(c.out, "└── type a number to click as %s, \":as U…\" to switch user, or a /command\n", c.user)
	} else {
		fmt.Fprintln(c.out, "└──")
	}
}

// offer makes a message's buttons the current numbered choices: choices
// belong to the newest message that offers any.
func (c *Console) offer(ts string, v View, prefix string) {
	var cs []choice
	for _, b := range v.Blocks {
		for _, bt := range b.Buttons {
			cs = append(cs, choice{ts: ts, button: bt})
		}
	}
	c.choices = cs
	for i, ch := range cs {
		fmt.Fprintf(c.out, "%s [%d] %s\n", prefix, i+1, ch.button.Label)
	}
}

func hasButtons(v View) bool {
	for _, b := range v.Blocks {
		if len(b.Buttons) > 0 {
			return true
		}
	}
	return false
}

// reply prints a private answer.
func (c *Console) reply(ctx context.Context, v View) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.out, "  (only you) %s\n", indent(plain(viewText(v)), "  "))
	if hasButtons(v) {
		c.offer("", v, "  ")
	}
	return nil
}

// Run reads lines from in until EOF or ctx ends.
func (c *Console) Run(ctx context.Context, in io.Reader) error {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	c.mu.Lock()
	fmt.Fprintf(c.out, "deploybot console: you are %s in %s. Type /deploy help.\n", c.user, c.channel)
	c.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			c.handle(ctx, strings.TrimSpace(line))
		}
	}
}

func (c *Console) handle(ctx context.Context, line string) {
	switch {
	case line == "":
	case line == "quit" || line == "exit":
		return
	case strings.HasPrefix(line, ":as "):
		u := strings.TrimSpace(strings.TrimPrefix(line, ":as "))
		c.mu.Lock()
		c.user = u
		fmt.Fprintf(c.out, "  now acting as %s\n", u)
		c.mu.Unlock()
	case strings.HasPrefix(line, "/"):
		name, text, _ := strings.Cut(line, " ")
		c.mu.Lock()
		user := c.user
		c.mu.Unlock()
		c.bot.HandleCommand(ctx, Command{User: user, Channel: c.channel, Name: name, Text: text, Reply: c.reply})
	default:
		n, err := strconv.Atoi(line)
		c.mu.Lock()
		user, cs := c.user, c.choices
		c.mu.Unlock()
		if err != nil || n < 1 || n > len(cs) {
			_ = c.reply(ctx, textView(fmt.Sprintf("Type a choice from 1 to %d, a /command, or :as USER.", len(cs))))
			return
		}
		ch := cs[n-1]
		c.bot.HandleClick(ctx, Click{User: user, Channel: c.channel, MessageTS: ch.ts, ActionID: ch.button.ActionID, Value: ch.button.Value, Reply: c.reply})
	}
}

func viewText(v View) string {
	var parts []string
	for _, b := range v.Blocks {
		switch b.Kind {
		case Header:
			parts = append(parts, strings.ToUpper(b.Text))
		case Section, Context:
			parts = append(parts, b.Text)
		}
	}
	if len(parts) == 0 {
		return v.Text
	}
	return strings.Join(parts, "\n")
}

var emoji = strings.NewReplacer(
	":white_circle:", "[ ]", ":hourglass_flowing_sand:", "[…]", ":eyes:", "[?]", ":white_check_mark:", "[x]",
	":x:", "[!]", ":fast_forward:", "[-]", ":warning:", "[!]", ":no_entry:", "[no]", ":tada:", "", ":rotating_light:", "[!!]",
	"&lt;", "<", "&gt;", ">", "&amp;", "&",
)

var mention = regexp.MustCompile(`<[@#]([A-Z0-9]+)>|<!subteam\^([A-Z0-9]+)>`)

// plain turns mrkdwn into terminal text.
func plain(s string) string {
	s = mention.ReplaceAllStringFunc(s, func(m string) string {
		return "@" + strings.Trim(m, "<>@#!")
	})
	return emoji.Replace(s)
}

func indent(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}
