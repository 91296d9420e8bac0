package terraform

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"

	"github.com/deploybot/deploybot/internal/childenv"
)

// DefaultWaitDelay is how long a cancelled command gets between SIGINT and
// SIGKILL. Terraform uses the time to release the state lock and persist
// partial state; killing it sooner risks a stuck lock, and terraform-exec's
// own default (60 s) holds up shutdown of the bot longer than needed.
const DefaultWaitDelay = 30 * time.Second

// DefaultInheritEnv is what Terraform inherits from the bot's environment,
// beyond childenv.Baseline, when Runner.InheritEnv is nil (and what the
// config key infra.terraform_env defaults to): AWS credentials and settings
// for the S3 backend and the AWS provider the Openverse infrastructure uses,
// and TF_TOKEN_* for a Terraform Cloud/registry host. Anything else a
// backend needs (GOOGLE_APPLICATION_CREDENTIALS, ARM_*, …) is named in the
// config; deploybot's own credentials never are (childenv.Forbidden).
var DefaultInheritEnv = []string{"AWS_*", "TF_TOKEN_*"}

// minRedactLen keeps short, harmless values such as "1" or "true" from being
// blanked all over the output when they happen to be in Runner.Env.
const minRedactLen = 8

// Runner runs one Terraform binary in one root module. It shells out through
// terraform-exec rather than linking Terraform so that the exact release the
// infrastructure repository is pinned to does the planning.
//
// A Runner holds no state between calls and may be used from several
// goroutines, but Terraform's state lock serialises commands on one Dir.
type Runner struct {
	// Bin is the terraform executable: a path, or a name looked up in PATH.
	Bin string
	// Dir is the root module (e.g. environments/prod of the infra checkout).
	Dir string
	// InheritEnv names the variables of the bot's environment Terraform
	// gets on top of childenv.Baseline: names, or prefixes ending in "*".
	// nil means DefaultInheritEnv; an empty list means none. Variables of
	// deploybot's own (SLACK_*, SENTRY_*, AIRFLOW_*, GITHUB_*, DEPLOYBOT_*)
	// are never inherited, whatever the list says.
	InheritEnv []string
	// Env is added to the inherited environment, e.g. cloud credentials.
	// Keys terraform-exec manages itself (TF_IN_AUTOMATION, TF_INPUT, TF_LOG*,
	// TF_CLI_ARGS*, TF_VAR_*, TF_WORKSPACE, …) are rejected; TF_IN_AUTOMATION
	// is always set to 1 by terraform-exec. Values of 8 characters or more are
	// redacted from Log and from errors.
	Env map[string]string
	// Log receives stdout and stderr of every command except show, line by
	// line as they are produced, with escape sequences stripped.
	Log io.Writer
	// WaitDelay overrides DefaultWaitDelay when positive.
	WaitDelay time.Duration
	// Observe, when set, hears of every command once it has ended: its
	// subcommand (init, plan, apply, show, …) and its error (metrics).
	Observe func(command string, err error)
}

// Error is a failed Terraform command. Stderr carries the end of what
// Terraform printed, where its diagnostics are, so that the chat message
// explains the failure without anyone opening the bot's logs.
type Error struct {
	Command string // init, plan, apply, show, version
	Dir     string
	// Stderr is the tail of Terraform's stderr: escapes stripped, values of
	// Runner.Env redacted, at most 40 lines.
	Stderr string
	msg    string
	cause  error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("terraform %s in %s: %s", e.Command, e.Dir, e.msg)
	if e.Stderr != "" {
		s += "\n" + e.Stderr
	}
	return s
}

// Unwrap exposes the context error after a cancellation (so errors.Is works
// with context.Canceled and DeadlineExceeded) and *exec.ExitError otherwise.
func (e *Error) Unwrap() error { return e.cause }

// Init runs `terraform init -input=false`, which the deploy needs on every
// fresh checkout to install modules before it can plan. backendConfig items
// ("key=value") become -backend-config flags: every run has its own checkout,
// so state must live where the configuration says, not in the checkout.
func (r *Runner) Init(ctx context.Context, backendConfig ...string) error {
	return r.run(ctx, "init", nil, func(tf *tfexec.Terraform) error {
		var opts []tfexec.InitOption
		for _, b := range backendConfig {
			opts = append(opts, tfexec.BackendConfig(b))
		}
		return tf.Init(ctx, opts...)
	})
}

// Plan writes a plan to planFile, restricted to target when it is not empty,
// and reports whether it has changes. The plan file is what gets reviewed and
// later applied, so a stale one from an earlier run is removed first, and the
// file is removed again when planning fails: after an error there is never a
// plan file to be applied by mistake.
// A relative planFile is taken relative to the process, not to Dir.
func (r *Runner) Plan(ctx context.Context, planFile, target string) (hasChanges bool, err error) {
	if planFile == "" {
		return false, errors.New("terraform: plan needs a plan file: deploys only apply saved plans")
	}
	abs, err := filepath.Abs(planFile)
	if err != nil {
		return false, fmt.Errorf("terraform: plan file %s: %w", planFile, err)
	}
	if err := os.Remove(abs); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("terraform: remove stale plan file: %w", err)
	}
	opts := []tfexec.PlanOption{tfexec.Out(abs)}
	if target != "" {
		opts = append(opts, tfexec.Target(target))
	}
	err = r.run(ctx, "plan", nil, func(tf *tfexec.Terraform) error {
		var err error
		hasChanges, err = tf.Plan(ctx, opts...)
		return err
	})
	if err != nil {
		// Terraform 1.5 saves a plan even when planning fails (it refuses to
		// apply it); remove it so no later step mistakes it for a result.
		_ = os.Remove(abs)
		return false, err
	}
	// Terraform writes the plan with the umask (0644): it holds every
	// value of the configuration, sensitive ones included, in clear.
	if err := os.Chmod(abs, 0o600); err != nil {
		_ = os.Remove(abs)
		return false, fmt.Errorf("terraform: plan file %s: %w", abs, err)
	}
	return hasChanges, nil
}

// Apply applies the saved plan in planFile and nothing else: applying a
// directory would make Terraform plan afresh and auto-approve changes nobody
// reviewed. progress, when not nil, receives stdout line by line as Terraform
// prints it (escapes stripped), so chat can show the apply as it happens.
func (r *Runner) Apply(ctx context.Context, planFile string, progress io.Writer) error {
	abs, err := existingFile(planFile)
	if err != nil {
		return err
	}
	return r.run(ctx, "apply", progress, func(tf *tfexec.Terraform) error {
		return tf.Apply(ctx, tfexec.DirOrPlan(abs))
	})
}

// State returns the current state, for checking after an apply what is
// actually deployed rather than what was asked for.
func (r *Runner) State(ctx context.Context) (*tfjson.State, error) {
	var st *tfjson.State
	err := r.runQuiet(ctx, "show", func(tf *tfexec.Terraform) error {
		var err error
		st, err = tf.Show(ctx)
		return err
	})
	return st, err
}

// ResourceValues returns the attribute values in state of the resource
// instance at address (e.g. module.ingestion-server.terraform_data.task_definition).
func (r *Runner) ResourceValues(ctx context.Context, address string) (map[string]any, error) {
	st, err := r.State(ctx)
	if err != nil {
		return nil, err
	}
	res := FindResource(st, address)
	if res == nil {
		return nil, fmt.Errorf("terraform: no resource %s in the state of %s", address, r.Dir)
	}
	return res.AttributeValues, nil
}

// FindResource looks address up in st, descending into child modules.
func FindResource(st *tfjson.State, address string) *tfjson.StateResource {
	if st == nil || st.Values == nil {
		return nil
	}
	return findResource(st.Values.RootModule, address)
}

func findResource(m *tfjson.StateModule, address string) *tfjson.StateResource {
	if m == nil {
		return nil
	}
	for _, res := range m.Resources {
		if res.Address == address {
			return res
		}
	}
	for _, c := range m.ChildModules {
		if res := findResource(c, address); res != nil {
			return res
		}
	}
	return nil
}

// Version reports the Terraform version (e.g. "1.5.7"), so the bot can refuse
// to touch state written by another release than the repository pins.
func (r *Runner) Version(ctx context.Context) (string, error) {
	var v string
	err := r.runQuiet(ctx, "version", func(tf *tfexec.Terraform) error {
		tv, _, err := tf.Version(ctx, true)
		if err == nil {
			v = tv.String()
		}
		return err
	})
	return v, err
}

// FileSHA256 returns the hex SHA-256 of a file. The deploy records it for the
// saved plan when the plan is approved and checks it again just before apply,
// so the plan applied is byte for byte the plan reviewed.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("terraform: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("terraform: hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func existingFile(path string) (string, error) {
	if path == "" {
		return "", errors.New("terraform: no plan file given")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("terraform: plan file %s: %w", path, err)
	}
	info, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("terraform: plan file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("terraform: plan file %s is not a regular file", abs)
	}
	return abs, nil
}

// runQuiet runs a command whose stdout is data (JSON, the plan text), which
// would only flood Log.
func (r *Runner) runQuiet(ctx context.Context, cmd string, fn func(*tfexec.Terraform) error) error {
	return r.do(ctx, cmd, false, nil, fn)
}

func (r *Runner) run(ctx context.Context, cmd string, extra io.Writer, fn func(*tfexec.Terraform) error) error {
	return r.do(ctx, cmd, true, extra, fn)
}

func (r *Runner) do(ctx context.Context, cmd string, logStdout bool, extra io.Writer, fn func(*tfexec.Terraform) error) (err error) {
	if r.Observe != nil {
		defer func() { r.Observe(cmd, err) }()
	}
	fail := func(msg string, cause error) error {
		return &Error{Command: cmd, Dir: r.Dir, msg: msg, cause: cause}
	}
	bin, err := r.bin()
	if err != nil {
		return fail(err.Error(), err)
	}
	env, err := r.environ()
	if err != nil {
		return fail(err.Error(), err)
	}
	tf, err := tfexec.NewTerraform(r.Dir, bin)
	if err != nil {
		return fail(err.Error(), err)
	}
	if err := tf.SetEnv(env); err != nil {
		return fail(err.Error(), err)
	}
	delay := r.WaitDelay
	if delay <= 0 {
		delay = DefaultWaitDelay
	}
	tf.SetWaitDelay(delay)

	redact := r.redactor()
	tail := &tailBuffer{limit: 64 << 10}
	var stdout []io.Writer
	stderr := []io.Writer{lineWriter{mu: new(sync.Mutex), w: tail, redact: redact}}
	if r.Log != nil {
		// One lock for both streams: terraform-exec copies them concurrently.
		lw := lineWriter{mu: new(sync.Mutex), w: r.Log, redact: redact}
		stderr = append(stderr, lw)
		if logStdout {
			stdout = append(stdout, lw)
		}
	}
	if extra != nil {
		stdout = append(stdout, lineWriter{mu: new(sync.Mutex), w: extra, redact: redact})
	}
	if len(stdout) > 0 {
		tf.SetStdout(io.MultiWriter(stdout...))
	}
	tf.SetStderr(io.MultiWriter(stderr...))

	err = fn(tf)
	if err == nil {
		return nil
	}
	return r.commandError(ctx, cmd, tail, redact, err)
}

// commandError explains a failed command with the tail of its stderr.
func (r *Runner) commandError(ctx context.Context, cmd string, tail *tailBuffer, redact func(string) string, err error) error {
	e := &Error{Command: cmd, Dir: r.Dir, Stderr: tail.lastLines(40, 4000)}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		e.cause = ctx.Err()
		e.msg = "interrupted: " + ctx.Err().Error()
	case errors.As(err, &exitErr):
		e.cause = exitErr
		e.msg = exitErr.Error()
	default:
		e.cause = err
		// terraform-exec appends all of stderr after a newline; the tail
		// above is the bounded, sanitised copy of it.
		msg, _, _ := strings.Cut(err.Error(), "\n")
		e.msg = redact(StripANSI(msg))
	}
	return e
}

func (r *Runner) bin() (string, error) {
	if r.Bin == "" {
		return "", errors.New("no terraform binary configured")
	}
	if strings.ContainsRune(r.Bin, os.PathSeparator) {
		return r.Bin, nil
	}
	p, err := exec.LookPath(r.Bin)
	if err != nil {
		return "", fmt.Errorf("terraform binary %q: %w", r.Bin, err)
	}
	return p, nil
}

// environ is built from an allow list (baseline, InheritEnv) rather than
// from os.Environ() minus known secrets: Terraform runs providers and
// local-exec provisioners from the infrastructure repository, and any
// credential of the bot's that nobody thought to deny would reach them.
// Runner.Env is explicit, so it is added as given.
func (r *Runner) environ() (map[string]string, error) {
	if bad := tfexec.ProhibitedEnv(r.Env); len(bad) > 0 {
		sort.Strings(bad)
		return nil, fmt.Errorf("Runner.Env must not set %s: terraform-exec manages it", strings.Join(bad, ", "))
	}
	inherit := r.InheritEnv
	if inherit == nil {
		inherit = DefaultInheritEnv
	}
	env := tfexec.CleanEnv(childenv.Inherit(inherit))
	// No update checks: the bot runs offline-friendly and must not phone home
	// (Terraform's "version" command would otherwise contact checkpoint).
	env["CHECKPOINT_DISABLE"] = "1"
	for k, v := range r.Env {
		env[k] = v
	}
	return env, nil
}

func (r *Runner) redactor() func(string) string {
	var secrets []string
	for _, v := range r.Env {
		if len(v) >= minRedactLen {
			secrets = append(secrets, v)
		}
	}
	if len(secrets) == 0 {
		return func(s string) string { return s }
	}
	// Longest first, so a secret containing another is blanked whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	return func(s string) string {
		for _, v := range secrets {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
		return s
	}
}

// tailBuffer keeps the last limit bytes written to it.
type tailBuffer struct {
	mu    sync.Mutex
	buf   []byte
	limit int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.limit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// lastLines returns at most n trailing lines and at most limit bytes,
// starting on a line boundary where possible.
func (t *tailBuffer) lastLines(n, limit int) string {
	t.mu.Lock()
	s := string(t.buf)
	t.mu.Unlock()
	s = strings.TrimRight(s, " \t\r\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	s = strings.Join(lines, "\n")
	if len(s) > limit {
		s = s[len(s)-limit:]
		for len(s) > 0 && !utf8.RuneStart(s[0]) {
			s = s[1:]
		}
		if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
			s = s[i+1:]
		}
		s = "…\n" + s
	}
	return strings.TrimLeft(s, "\n")
}
