package git

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/deploybot/deploybot/internal/childenv"
)

// Redacted replaces a token wherever it would otherwise appear in an error.
const Redacted = "[redacted]"

// tokenEnv is the variable the askpass script reads. Only children that
// contact the remote get it, so a local command can never leak it.
const tokenEnv = "DEPLOYBOT_GIT_TOKEN"

// killGrace bounds how long a cancelled git may take to clean up after
// SIGTERM: git removes its *.lock files on SIGTERM but not on SIGKILL, and a
// stale index.lock or ref lock would break every later command in that repo.
const killGrace = 10 * time.Second

// Tail limits keep errors readable in logs and Slack while still showing the
// "fatal:" line, which git prints last.
const (
	tailLines = 12
	tailBytes = 1500
)

// Error is returned by every failing git command. It names the command so an
// operator can rerun it by hand in the same directory.
type Error struct {
	// Args are the git arguments after the program name, without the
	// "-c" overrides this package always adds. They never contain a secret.
	Args []string
	// Dir is where the command ran.
	Dir string
	// Stderr is the end of git's standard error, with the token replaced by
	// Redacted.
	Stderr string
	// Err is the *exec.ExitError, the context error, or the start error.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("git")
	for _, a := range e.Args {
		b.WriteByte(' ')
		if a == "" || strings.ContainsAny(a, " \t\n\"'") {
			b.WriteString(strconv.Quote(a))
		} else {
			b.WriteString(a)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	if e.Stderr != "" {
		b.WriteString(": ")
		b.WriteString(strings.ReplaceAll(e.Stderr, "\n", "; "))
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ExitCode is git's exit status, or -1 when git did not exit on its own
// (cancelled, not started). Some commands report answers, not failures,
// through it (diff --quiet, config --get).
func (e *Error) ExitCode() int {
	var ee *exec.ExitError
	if errors.As(e.Err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// exitCode is 0 for success, git's status for a failed command, -1 otherwise.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ge *Error
	if errors.As(err, &ge) {
		return ge.ExitCode()
	}
	return -1
}

type runOpts struct {
	// remote marks commands that talk to origin; only they get the token.
	remote bool
	stdin  []byte
}

// globalArgs are put before every subcommand. An empty credential.helper
// resets the helper list, so no configured helper ever receives the token.
// gc.autoDetach=false keeps automatic gc inside the process we control
// (and cancel) instead of a detached daemon that would outlive it and hold
// locks. core.hooksPath=/dev/null runs no client-side hook (pre-push,
// reference-transaction, post-commit …, from a global hooksPath too): a hook
// would run with the environment of the git that calls it, token included,
// and the bot's clone has no hooks it needs.
var globalArgs = []string{"-c", "credential.helper=", "-c", "gc.autoDetach=false", "-c", "core.hooksPath=/dev/null"}

// gitEnv is what git inherits on top of childenv.Baseline: where its own
// configuration is (an operator's safe.directory or ssh settings), how to
// reach an ssh remote (agent, ssh command) and which CAs an https remote is
// checked against. Nothing else from the bot's environment reaches git, so
// none of the bot's credentials can end up in a hook, a helper or a trace.
// The token is added per command, for the askpass helper only (see run).
var gitEnv = []string{
	"GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_NOSYSTEM", "XDG_CONFIG_HOME",
	"GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT", "SSH_AUTH_SOCK",
	"GIT_SSL_CAINFO", "GIT_SSL_CAPATH",
}

func (r *Repo) env() []string {
	inherited := childenv.Inherit(gitEnv)
	// LC_* come with the baseline; LC_ALL=C below must win over them so
	// that the messages this package parses are in English.
	delete(inherited, "LC_ALL")
	env := make([]string, 0, len(inherited)+10)
	for k, v := range inherited {
		env = append(env, k+"="+v)
	}
	sort.Strings(env) // deterministic, for anyone comparing environments
	return append(env,
		"GIT_TERMINAL_PROMPT=0",
		"GCM_INTERACTIVE=never",
		"LC_ALL=C",
		"GIT_AUTHOR_NAME="+r.authorName,
		"GIT_AUTHOR_EMAIL="+r.authorEmail,
		"GIT_COMMITTER_NAME="+r.authorName,
		"GIT_COMMITTER_EMAIL="+r.authorEmail,
	)
}

// run executes git in dir and returns its standard output.
func (r *Repo) run(ctx context.Context, dir string, o runOpts, args ...string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, &Error{Args: args, Dir: dir, Err: err}
	}
	env := r.env()
	var token string
	if o.remote && r.askpass != "" {
		token = r.token()
		if strings.ContainsAny(token, "\r\n\x00") {
			// The askpass script answers one line; never echo the value.
			return nil, &Error{Args: args, Dir: dir, Err: errors.New("token contains a line break or NUL; refusing to use it")}
		}
		if token != "" {
			env = append(env, "GIT_ASKPASS="+r.askpass, tokenEnv+"="+token)
		}
	}

	cmd := exec.CommandContext(ctx, r.gitPath, append(append([]string(nil), globalArgs...), args...)...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if o.stdin != nil {
		cmd.Stdin = bytes.NewReader(o.stdin)
	}
	configureCancel(cmd)
	cmd.WaitDelay = killGrace

	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	// Redact before cutting the tail, so a token split by the cut cannot
	// survive as an unrecognisable fragment.
	secrets := []string{token}
	return stdout.Bytes(), &Error{
		Args:   redactAll(args, secrets),
		Dir:    dir,
		Stderr: tail(redact(stderr.String(), secrets)),
		Err:    err,
	}
}

// redact replaces each secret, in every form it is likely to be echoed in,
// with Redacted.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		for _, v := range secretForms(sec) {
			s = strings.ReplaceAll(s, v, Redacted)
		}
	}
	return s
}

// secretForms lists a secret as is and URL-escaped with upper- and
// lower-case hex: git itself writes credentials in URLs with lower-case
// escapes, servers and proxies usually with upper-case ones.
func secretForms(sec string) []string {
	if sec == "" {
		return nil
	}
	forms := []string{sec}
	for _, esc := range []string{url.QueryEscape(sec), url.PathEscape(sec)} {
		forms = append(forms, esc, lowerEscapes(esc))
	}
	return forms
}

func lowerEscapes(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1] = lowerHex(b[i+1])
			b[i+2] = lowerHex(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func lowerHex(c byte) byte {
	if 'A' <= c && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

func redactAll(args, secrets []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = redact(a, secrets)
	}
	return out
}

// tail keeps the last lines of stderr: git reports the cause last.
func tail(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n") // progress meters
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimRight(l, " \t"); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	s = strings.Join(lines, "\n")
	if len(s) > tailBytes {
		s = s[len(s)-tailBytes:]
		// Do not start in the middle of a UTF-8 sequence.
		for len(s) > 0 && s[0]&0xC0 == 0x80 {
			s = s[1:]
		}
		s = "…" + s
	}
	return s
}
