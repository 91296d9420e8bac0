// Package infra is the infrastructure repository as the deploy steps see
// it: a git checkout per run (integrations/git) in which Terraform
// (integrations/terraform) plans and applies. It implements steps.Infra.
package infra

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/zclconf/go-cty/cty"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/integrations/git"
	"github.com/deploybot/deploybot/integrations/terraform"
	"github.com/deploybot/deploybot/steps"
)

// Infra opens the shared clone lazily and hands each run its own tree.
type Infra struct {
	cfg   *config.Infra
	token func() string
	// Log receives Terraform's output for the bot's log.
	Log io.Writer
	// LogFor, when set, replaces Log with a writer for the work ctx is for
	// (steps.WhereOf names the run and step), so the output's log lines
	// say which run they are about.
	LogFor func(ctx context.Context) io.Writer
	// Observe, when set, hears of every Terraform command (metrics).
	Observe func(command string, err error)
	// Secrets are values never to appear in what is posted to Slack
	// (config.Secrets.Values). Terraform and git output
	// (errors, plan text, apply progress) is masked before it leaves this
	// package, as are absolute paths under infra.workdir.
	Secrets []string

	mu   sync.Mutex
	repo *git.Repo
	// planned remembers, per plan file, the hash and sensitive values of
	// the plan this process made there, so that Apply does not run
	// `terraform show -json` on a plan already decoded. A plan file that
	// changed since (or one planned before a restart) is decoded again.
	planned map[string]plannedFile

	ending sync.WaitGroup           // RunEnded calls in flight (Notifier)
	endMu  sync.Mutex               // one RunEnded at a time
	ended  map[string]chan struct{} // closed once a run's RunEnded is over; under mu
}

type plannedFile struct {
	sha256    string
	sensitive []string
}

// New makes the infrastructure adapter. token, when non-nil, authenticates
// pushes to an https remote (the GitHub integration supplies it).
func New(cfg *config.Infra, token func() string) *Infra {
	return &Infra{cfg: cfg, token: token}
}

// Close releases the clone's helpers.
func (in *Infra) Close() error {
	in.WaitEnded()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.repo != nil {
		return in.repo.Close()
	}
	return nil
}

func (in *Infra) open(ctx context.Context) (*git.Repo, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.repo != nil {
		return in.repo, nil
	}
	var tok func() string
	if in.token != nil && !local(in.cfg.CloneURL) {
		tok = in.token
	}
	r, err := git.Open(ctx, git.Options{CloneURL: in.cfg.CloneURL, BaseBranch: in.cfg.BaseBranch, Workdir: in.cfg.Workdir, Token: tok})
	if err != nil {
		return nil, err
	}
	in.repo = r
	return r, nil
}

// local reports whether the remote is a path or file:// URL, where pushing
// needs no credentials.
func local(u string) bool {
	if strings.HasPrefix(u, "file://") || strings.HasPrefix(u, "/") || strings.HasPrefix(u, ".") {
		return true
	}
	p, err := url.Parse(u)
	return err != nil || p.Scheme == ""
}

var unsafeRef = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Branch is the run's branch: deploybot/<service>-<image tag>-<run id>.
func Branch(r *steps.Run) string {
	v := r.Version
	if v == "" {
		v = "unversioned"
	}
	return "deploybot/" + unsafeRef.ReplaceAllString(r.Service+"-"+v+"-"+r.ID, "-")
}

// Tree implements steps.Infra.
func (in *Infra) Tree(ctx context.Context, r *steps.Run) (steps.Tree, error) {
	repo, err := in.open(ctx)
	if err != nil {
		return nil, in.masker().Err(err)
	}
	wt, err := repo.Worktree(ctx, r.ID, Branch(r))
	if err != nil {
		return nil, in.masker().Err(err)
	}
	return &tree{in: in, repo: repo, wt: wt, plans: filepath.Join(in.cfg.Workdir, "plans", r.ID)}, nil
}

type tree struct {
	in    *Infra
	repo  *git.Repo
	wt    *git.Worktree
	plans string
}

func (t *tree) Branch() string { return t.wt.Branch }

func (t *tree) BaseCommit(ctx context.Context) (string, error) {
	c, err := t.wt.Head(ctx)
	return c, t.in.masker().Err(err)
}

func (t *tree) RemoteBaseCommit(ctx context.Context) (string, error) {
	c, err := t.repo.RemoteBaseCommit(ctx)
	return c, t.in.masker().Err(err)
}

// path resolves a repository-relative path inside the run's tree, refusing
// anything that would leave it.
func (t *tree) path(rel string) (string, error) {
	p := filepath.Join(t.wt.Dir, filepath.FromSlash(rel))
	if !strings.HasPrefix(p, filepath.Clean(t.wt.Dir)+string(filepath.Separator)) {
		return "", fmt.Errorf("%s is outside the repository", rel)
	}
	return p, nil
}

func (t *tree) SetAttribute(file, module, attr string, value any) (string, bool, error) {
	p, err := t.path(file)
	if err != nil {
		return "", false, err
	}
	old, _ := t.Attribute(file, module, attr)
	var v cty.Value
	switch x := value.(type) {
	case string:
		v = cty.StringVal(x)
	case bool:
		v = cty.BoolVal(x)
	default:
		return "", false, fmt.Errorf("cannot set %s to a %T", attr, value)
	}
	changed, err := terraform.SetModuleAttribute(p, module, attr, v)
	return old, changed, t.in.masker().Err(err)
}

func (t *tree) Attribute(file, module, attr string) (string, error) {
	p, err := t.path(file)
	if err != nil {
		return "", err
	}
	v, err := attribute(p, module, attr)
	return v, t.in.masker().Err(err)
}

// attribute reads a literal string or bool attribute as text.
func attribute(p, module, attr string) (string, error) {
	v, err := terraform.ReadModuleAttribute(p, module, attr)
	if err != nil {
		return "", err
	}
	switch {
	case v.Type() == cty.String:
		return v.AsString(), nil
	case v.Type() == cty.Bool:
		if v.True() {
			return "true", nil
		}
		return "false", nil
	}
	return "", fmt.Errorf("%s in %s is not a string or bool", attr, filepath.Base(p))
}

func (t *tree) runner(ctx context.Context, env *config.Environment) (*terraform.Runner, error) {
	dir, err := t.path(env.Dir)
	if err != nil {
		return nil, err
	}
	// A nil TerraformEnv (a Config built by hand, not by config.Parse) gets
	// terraform.DefaultInheritEnv; config.Parse always fills it in.
	log := t.in.Log
	if t.in.LogFor != nil {
		log = t.in.LogFor(ctx)
	}
	return &terraform.Runner{Bin: t.in.cfg.TerraformBin, Dir: dir, Log: log, InheritEnv: t.in.cfg.TerraformEnv, Observe: t.in.Observe}, nil
}

func (t *tree) planFile(env *config.Environment) string {
	return filepath.Join(t.plans, env.Name+".tfplan")
}

func (t *tree) backendConfig(env *config.Environment) []string {
	var out []string
	for k, v := range env.BackendConfig {
		out = append(out, k+"="+strings.ReplaceAll(v, "{workdir}", t.in.cfg.Workdir))
	}
	return out
}

// Plan plans env. Everything it returns for the chat (errors, the
// rendered and full plan) is masked: host paths under the workdir and
// secret values, the plan's sensitive values included.
func (t *tree) Plan(ctx context.Context, env *config.Environment, maxChars int) (*steps.Plan, error) {
	var sensitive []string
	p, err := t.plan(ctx, env, maxChars, &sensitive)
	m := t.in.masker(sensitive...)
	if err != nil {
		return nil, m.Err(err)
	}
	p.Summary, p.Rendered, p.Full = m.String(p.Summary), m.String(p.Rendered), m.String(p.Full)
	return p, nil
}

func (t *tree) plan(ctx context.Context, env *config.Environment, maxChars int, sensitive *[]string) (*steps.Plan, error) {
	// Plan from the newest base: a plan made again because the base moved
	// must show what will really be applied. Edits are kept (autostash).
	if err := t.wt.Rebase(ctx); err != nil { // masked by Plan
		return nil, fmt.Errorf("updating the run branch to the newest %s: %w", t.in.cfg.BaseBranch, err)
	}
	commit, err := t.wt.Head(ctx)
	if err != nil {
		return nil, err
	}
	r, err := t.runner(ctx, env)
	if err != nil {
		return nil, err
	}
	for k, v := range env.BackendConfig {
		if k == "path" && strings.Contains(v, "{workdir}") {
			p := strings.ReplaceAll(v, "{workdir}", t.in.cfg.Workdir)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return nil, err
			}
		}
	}
	if err := r.Init(ctx, t.backendConfig(env)...); err != nil {
		return nil, err
	}
	t.privateState(env) // init may have created it
	if err := os.MkdirAll(t.plans, 0o700); err != nil {
		return nil, err
	}
	file := t.planFile(env)
	changes, err := r.Plan(ctx, file, env.Target)
	if err != nil {
		return nil, err
	}
	sum, err := terraform.FileSHA256(file)
	if err != nil {
		return nil, err
	}
	p := &steps.Plan{HasChanges: changes, SHA256: sum, Commit: commit}
	if *sensitive, err = t.in.describe(ctx, r, file, sum, maxChars, p); err != nil {
		return nil, err
	}
	return p, nil
}

// describe fills in what people read about the saved plan in file (whose
// hash is sum) and returns the plan's sensitive values, still unmasked.
// One `terraform show -json` per plan: the summary, the message and the
// attached file are all made from it; for a plan of thousands of changes,
// Terraform's show is most of the time from plan file to chat.
func (in *Infra) describe(ctx context.Context, r *terraform.Runner, file, sum string, maxChars int, p *steps.Plan) ([]string, error) {
	// Changes are summarized as they stream in: a plan's decoded changes
	// take several times the memory of what the chat shows of them.
	var s terraform.Summarizer
	var sensitive []string
	js, err := r.ShowPlan(ctx, file, func(rc *tfjson.ResourceChange) {
		s.Add(rc)
		changeSensitive(rc, &sensitive)
	})
	if err != nil {
		return nil, err
	}
	sensitive = append(sensitive, planSensitive(js)...)
	in.remember(file, plannedFile{sha256: sum, sensitive: sensitive})
	d := s.Diff(js)
	p.Summary = d.SummaryLine()
	p.Warning = d.Destroy > 0 || d.Replace > 0
	p.Rendered, p.Complete = d.Render(maxChars)
	// The full text is always kept: the chat may still have to cut the
	// rendered diff once outside text is escaped.
	p.Full = d.Text()
	return sensitive, nil
}

func (in *Infra) remember(file string, pf plannedFile) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.planned == nil {
		in.planned = map[string]plannedFile{}
	}
	in.planned[file] = pf
}

// sensitiveFor returns the sensitive values of the plan in file: remembered
// from planning when the file is unchanged, otherwise decoded again.
func (in *Infra) sensitiveFor(ctx context.Context, r *terraform.Runner, file string) []string {
	in.mu.Lock()
	pf, ok := in.planned[file]
	in.mu.Unlock()
	if ok {
		if sum, err := terraform.FileSHA256(file); err == nil && sum == pf.sha256 {
			return pf.sensitive
		}
	}
	js, err := r.ShowJSON(ctx, file)
	if err != nil {
		return nil // Apply itself reports the missing or unreadable plan
	}
	return sensitiveValues(js)
}

// privateState makes a local state file under the workdir owner-only:
// Terraform writes it with the umask (0644), and state holds every
// resource attribute, sensitive ones included, in clear.
func (t *tree) privateState(env *config.Environment) {
	if v, ok := env.BackendConfig["path"]; ok && strings.Contains(v, "{workdir}") {
		p := strings.ReplaceAll(v, "{workdir}", t.in.cfg.Workdir)
		for _, f := range []string{p, p + ".backup"} {
			_ = os.Chmod(f, 0o600) // absent before the first apply
		}
	}
}

func (t *tree) PlanSHA256(env *config.Environment) (string, error) {
	return terraform.FileSHA256(t.planFile(env))
}

// Apply applies the saved plan. Progress lines and errors are masked like
// the plan: Terraform hides sensitive attributes in its own output, but a
// provider's or provisioner's message may still carry one literally.
func (t *tree) Apply(ctx context.Context, env *config.Environment, progress io.Writer) error {
	r, err := t.runner(ctx, env)
	if err != nil {
		return t.in.masker().Err(err)
	}
	m := t.in.masker(t.in.sensitiveFor(ctx, r, t.planFile(env))...)
	var w *writer
	var notes *terraform.TargetFilter
	if progress != nil {
		if env.Target != "" {
			notes = terraform.TargetNotes(progress, env.Target)
			progress = notes
		}
		w = m.Writer(progress)
		progress = w
	}
	err = r.Apply(ctx, t.planFile(env), progress)
	t.in.mu.Lock()
	delete(t.in.planned, t.planFile(env)) // a plan is applied once; a retry plans again
	t.in.mu.Unlock()
	t.privateState(env)
	if w != nil {
		_ = w.Flush() // the last line; a chat write error is not the apply's
	}
	if notes != nil {
		_ = notes.Flush()
	}
	return m.Err(err)
}

func (t *tree) Commit(ctx context.Context, message string, files ...string) (string, error) {
	sha, err := t.wt.Commit(ctx, message, files...)
	return sha, t.in.masker().Err(err)
}

func (t *tree) Push(ctx context.Context) (bool, error) {
	if !local(t.in.cfg.CloneURL) && (t.in.token == nil || t.in.token() == "") {
		return false, steps.ErrNoPush
	}
	pushed, err := t.wt.Push(ctx)
	return pushed, t.in.masker().Err(err)
}

func (t *tree) StateLock(ctx context.Context, env *config.Environment) (*steps.StateLock, error) {
	r, err := t.runner(ctx, env)
	if err != nil {
		return nil, err
	}
	l, err := r.LockInfo()
	if err != nil || l == nil {
		return nil, t.in.masker().Err(err)
	}
	sl := stateLock(l)
	sl.Path = t.in.masker().String(sl.Path)
	return sl, nil
}

func (t *tree) ForceUnlock(ctx context.Context, env *config.Environment, lockID string) error {
	r, err := t.runner(ctx, env)
	if err != nil {
		return err
	}
	return t.in.masker().Err(r.ForceUnlock(ctx, lockID))
}

func (t *tree) ParseStateLock(err error) *steps.StateLock {
	if err == nil {
		return nil
	}
	if l := terraform.ParseLockError(err.Error()); l != nil {
		sl := stateLock(l)
		sl.Path = t.in.masker().String(sl.Path)
		return sl
	}
	return nil
}

func stateLock(l *terraform.Lock) *steps.StateLock {
	return &steps.StateLock{ID: l.ID, Path: l.Path, Operation: l.Operation, Who: l.Who, Version: l.Version, Created: l.Created, Stale: !l.Held}
}

func (t *tree) CommittedAttribute(ctx context.Context, file, module, attr string, pushed bool) (string, error) {
	rev := "HEAD"
	if pushed {
		rev = "origin/" + t.wt.Branch
	}
	b, err := t.wt.ShowFile(ctx, rev, file)
	if err != nil {
		return "", err
	}
	// Parse it as Terraform does, not by pattern: a blob in a private temp file.
	dir, err := os.MkdirTemp("", "deploybot-committed-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, filepath.Base(file))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return "", err
	}
	return attribute(p, module, attr)
}
