package git

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// Options configures Open. It mirrors the infra section of the config.
type Options struct {
	// CloneURL is an https URL, a local path or a file:// URL. It must not
	// embed a password: it is stored in the clone's config as is.
	CloneURL string
	// BaseBranch is the branch runs start from and whose movement is
	// checked before applying (e.g. "main").
	BaseBranch string
	// Workdir holds the clone (Workdir/repo) and the run worktrees
	// (Workdir/runs/<run id>). It survives restarts, which is what makes
	// Open and Worktree resumable.
	Workdir string
	// Token, if set, is called before each command that contacts an
	// https remote (or http on loopback, for tests), so a rotating
	// installation token is always fresh. Ignored for local remotes.
	Token func() string
	// AuthorName and AuthorEmail are the commit identity, passed through
	// the environment so that nothing in the clone's config can drift
	// from the bot's configuration. Defaults: "deploybot",
	// "deploybot@localhost".
	AuthorName, AuthorEmail string
	// Git is the git binary; empty means "git" from PATH.
	Git string
}

// Repo is the shared bare clone at Dir. Its methods are safe for concurrent
// use; operations that rewrite shared administrative state (fetch, adding or
// removing worktrees) are serialized, commits and pushes of different runs
// are not.
type Repo struct {
	// Dir is the bare clone, Workdir/repo.
	Dir string

	cloneURL    string
	base        string
	runsDir     string
	gitPath     string
	authorName  string
	authorEmail string
	token       func() string
	askpassDir  string
	askpass     string // "" when no token is ever sent

	mu sync.Mutex
}

// Open clones the remote into Workdir/repo if needed, or reuses the clone
// left by an earlier process, and fetches the base branch.
//
// It is built from idempotent steps (init, set remote, fetch) rather than
// "git clone", because a clone killed halfway leaves a directory clone will
// refuse to reuse, while each of these steps simply completes what a crashed
// predecessor started.
func Open(ctx context.Context, opts Options) (*Repo, error) {
	if opts.CloneURL == "" {
		return nil, errors.New("git: Options.CloneURL is empty")
	}
	if opts.Workdir == "" {
		return nil, errors.New("git: Options.Workdir is empty")
	}
	if err := checkBranchName(opts.BaseBranch); err != nil {
		return nil, fmt.Errorf("git: base branch: %w", err)
	}
	sendToken, err := tokenAllowed(opts.CloneURL, opts.Token != nil)
	if err != nil {
		return nil, err
	}
	gitPath := opts.Git
	if gitPath == "" {
		if gitPath, err = exec.LookPath("git"); err != nil {
			return nil, fmt.Errorf("git: %w", err)
		}
	}

	// Plan files may sit next to us in Workdir and can hold secrets:
	// keep it private when we are the ones creating it.
	wd, err := filepath.Abs(opts.Workdir)
	if err == nil {
		err = os.MkdirAll(filepath.Join(wd, "runs"), 0o700)
	}
	if err == nil {
		// Canonical, so our paths compare equal to those git records.
		wd, err = filepath.EvalSymlinks(wd)
	}
	// MkdirAll does not change directories that already exist (an
	// operator's mkdir, an older deploybot): make them private too. The
	// workdir holds plan files and local state, which carry secrets.
	for _, d := range []string{wd, filepath.Join(wd, "runs")} {
		if err == nil {
			err = os.Chmod(d, 0o700)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("git: workdir: %w", err)
	}

	r := &Repo{
		Dir:         filepath.Join(wd, "repo"),
		cloneURL:    opts.CloneURL,
		base:        opts.BaseBranch,
		runsDir:     filepath.Join(wd, "runs"),
		gitPath:     gitPath,
		authorName:  opts.AuthorName,
		authorEmail: opts.AuthorEmail,
		token:       opts.Token,
	}
	if r.authorName == "" {
		r.authorName = "deploybot"
	}
	if r.authorEmail == "" {
		r.authorEmail = "deploybot@localhost"
	}
	if sendToken {
		if r.askpassDir, r.askpass, err = writeAskpass(); err != nil {
			return nil, err
		}
	}
	if err := r.setup(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Close removes the askpass helper. The clone and worktrees stay: they are
// what a later Open resumes from.
func (r *Repo) Close() error {
	if r.askpassDir == "" {
		return nil
	}
	return os.RemoveAll(r.askpassDir)
}

func (r *Repo) setup(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := os.MkdirAll(r.Dir, 0o700); err != nil {
		return fmt.Errorf("git: %w", err)
	}
	// Safe on an existing repository: it only adds what is missing.
	if _, err := r.run(ctx, r.Dir, runOpts{}, "init", "-q", "--bare"); err != nil {
		return err
	}
	url, found, err := r.config(ctx, "remote.origin.url")
	if err != nil {
		return err
	}
	switch {
	case !found:
		if _, err := r.run(ctx, r.Dir, runOpts{}, "config", "remote.origin.url", r.cloneURL); err != nil {
			return err
		}
	case url != r.cloneURL:
		// The configured URL wins: the infra repo may have moved.
		if _, err := r.run(ctx, r.Dir, runOpts{}, "remote", "set-url", "origin", r.cloneURL); err != nil {
			return err
		}
	}
	// Push relies on this refspec to record what it pushed under
	// refs/remotes/origin/, which is the lease for the next push. Set
	// separately from the URL: a crash between the two would lose it.
	if _, found, err := r.config(ctx, "remote.origin.fetch"); err != nil {
		return err
	} else if !found {
		if _, err := r.run(ctx, r.Dir, runOpts{}, "config", "--add", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"); err != nil {
			return err
		}
	}
	return r.fetchLocked(ctx)
}

// config reads one value; found is false when the key is unset.
func (r *Repo) config(ctx context.Context, key string) (value string, found bool, err error) {
	out, err := r.run(ctx, r.Dir, runOpts{}, "config", "--get", key)
	if exitCode(err) == 1 {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return strings.TrimSpace(string(out)), true, nil
}

// Fetch updates origin/<base>, which BaseCommit reports and new worktrees
// start from. Tags are skipped: the bot never needs them and they are the
// bulk of a fetch in busy repositories.
func (r *Repo) Fetch(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetchLocked(ctx)
}

func (r *Repo) fetchLocked(ctx context.Context) error {
	_, err := r.run(ctx, r.Dir, runOpts{remote: true}, "fetch", "-q", "--no-tags", "origin",
		"+refs/heads/"+r.base+":"+r.baseRef())
	return err
}

func (r *Repo) baseRef() string { return "refs/remotes/origin/" + r.base }

// BaseCommit is where the base branch was at the last fetch: the commit new
// worktrees start from, and so the commit a plan was made against.
func (r *Repo) BaseCommit(ctx context.Context) (string, error) {
	return r.revParse(ctx, r.Dir, r.baseRef())
}

// RemoteBaseCommit asks the remote where the base branch is now, without
// fetching, so a plan made against an older base can be refused before it
// is applied.
func (r *Repo) RemoteBaseCommit(ctx context.Context) (string, error) {
	sha, err := r.remoteRef(ctx, "refs/heads/"+r.base)
	if err == nil && sha == "" {
		err = fmt.Errorf("git: branch %q not found on origin", r.base)
	}
	return sha, err
}

// remoteRef asks the remote where ref is now, without fetching ("" when it
// does not exist). ls-remote matches patterns by suffix; only the exact ref
// counts.
func (r *Repo) remoteRef(ctx context.Context, ref string) (string, error) {
	out, err := r.run(ctx, r.Dir, runOpts{remote: true}, "ls-remote", "origin", ref)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		sha, name, ok := strings.Cut(sc.Text(), "\t")
		if ok && name == ref {
			return sha, nil
		}
	}
	return "", nil
}

func (r *Repo) revParse(ctx context.Context, dir, rev string) (string, error) {
	out, err := r.run(ctx, dir, runOpts{}, "rev-parse", "--verify", "--end-of-options", rev+"^{commit}")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// refExists answers without treating "missing" as an error.
func (r *Repo) refExists(ctx context.Context, dir, ref string) (sha string, ok bool, err error) {
	out, err := r.run(ctx, dir, runOpts{}, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
	if exitCode(err) == 1 {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return strings.TrimSpace(string(out)), true, nil
}

// tokenAllowed decides whether the token may be sent to this remote, and
// rejects URLs that would put a secret into the clone's config.
func tokenAllowed(raw string, haveToken bool) (bool, error) {
	if !strings.Contains(raw, "://") {
		return false, nil // local path (or scp-like ssh): no token
	}
	u, err := url.Parse(raw)
	if err != nil {
		// The parse error quotes the URL, which may hold a secret.
		return false, errors.New("git: CloneURL is not a valid URL")
	}
	if _, hasPassword := u.User.Password(); hasPassword {
		return false, errors.New("git: CloneURL must not contain a password; pass it through Options.Token")
	}
	if !haveToken {
		return false, nil
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return true, nil
	case "http":
		// Plain http would expose the token on the wire; loopback
		// only, for test servers.
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
			return true, nil
		}
		return false, errors.New("git: refusing to send the token over plain http to a non-loopback host")
	}
	return false, nil
}

var runIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// checkRunID keeps the run id a single, harmless path element: it becomes a
// directory that RemoveWorktree deletes.
func checkRunID(id string) error {
	if !runIDRe.MatchString(id) || strings.Contains(id, "..") || strings.HasSuffix(id, ".lock") {
		return fmt.Errorf("invalid run id %q: want letters, digits, '.', '_', '-'", id)
	}
	return nil
}

// checkBranchName applies git's ref-name rules without running git, and
// rejects a leading '-' so the name can never be read as an option.
func checkBranchName(b string) error {
	bad := b == "" || b == "@" || strings.HasPrefix(b, "-") || strings.HasPrefix(b, "/") ||
		strings.HasSuffix(b, "/") || strings.HasSuffix(b, ".") || strings.HasSuffix(b, ".lock") ||
		strings.Contains(b, "..") || strings.Contains(b, "//") || strings.Contains(b, "@{") ||
		strings.ContainsAny(b, " ~^:?*[\\\x7f")
	for _, c := range b {
		if c < 0x20 {
			bad = true
		}
	}
	for _, part := range strings.Split(b, "/") {
		if strings.HasPrefix(part, ".") {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("invalid branch name %q", b)
	}
	return nil
}
