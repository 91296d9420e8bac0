// Package demo is the world `deploybot demo` deploys into: the GitHub,
// Airflow and Sentry test servers, in-process and seeded like Openverse; a
// scratch infrastructure repository made from examples/infrastructure; and
// a configuration pointing deploybot at them and at real Terraform.
//
// Only the demo command (and tests and benchmarks) import it: the test
// servers must never be linked into the production path.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/examples"
	"github.com/deploybot/deploybot/integrations/airflow/airflowtest"
	"github.com/deploybot/deploybot/integrations/github/githubtest"
	"github.com/deploybot/deploybot/integrations/sentry/sentrytest"
)

// The demo's people, places and names. Alice deploys and approves; Bob
// approves. Four-eyes holds for production: Alice, who starts the run,
// cannot approve its plan.
const (
	Alice    = "U0ALICE"
	Bob      = "U0BOB"
	Channel  = "C0DEPLOYS"
	Service  = "ingestion-server"
	Monorepo = "WordPress/openverse"
	InfraRep = "WordPress/openverse-infrastructure"

	BuildWorkflow    = "tag_docker_image_and_trigger_deployment.yml"
	RollbackWorkflow = "deploy-production-ingestion-server.yml"
	// PreviousVersion is what examples/infrastructure runs: the last
	// published release.
	PreviousVersion = "rel-2023.07.03.17.52.00"
	previousRelease = "ingestion_server-2023.07.03.17.52.00"
	// ChangelogAuthor is the bot account that opens changelog PRs.
	ChangelogAuthor = githubtest.DefaultPRUser

	githubToken    = "demo-github-token" // a stand-in: the demo's GitHub is a test server
	sentryToken    = "sntrys_demo_token"
	airflowUser    = "deploybot"
	airflowPass    = "demo-airflow-password"
	sentryProject  = "ingestion-server"
	sentryIssueID  = "4521"
	sentryIssueSID = "INGESTION-SERVER-4F"
)

// Scenario is what the demo shows.
type Scenario string

const (
	// Happy: the whole runbook succeeds; Sentry raises one new issue
	// during the watch.
	Happy Scenario = "happy"
	// FailedApply: production's apply fails for real (a provisioner in a
	// demo-only file of the scratch repository), the run is cancelled and
	// /rollback dispatches the rollback workflow.
	FailedApply Scenario = "failed-apply"
)

// ParseScenario reads a --scenario value.
func ParseScenario(s string) (Scenario, error) {
	switch Scenario(s) {
	case Happy, FailedApply:
		return Scenario(s), nil
	}
	return "", fmt.Errorf("unknown scenario %q: use happy or failed-apply", s)
}

// Options shape the world.
type Options struct {
	Scenario Scenario
	// Terraform is the Terraform 1.5.7 binary (FindTerraform).
	Terraform string
	// Infrastructure is the infrastructure repository's content; nil means
	// examples/infrastructure as built into the binary.
	Infrastructure fs.FS
	// Watch is sentry.watch (default 10s); Poll is how often deploybot
	// asks GitHub and Sentry (default 250ms); Delay is how long GitHub's
	// workflows take: the build, the changelog PR after it, the rollback
	// (default 3s; a benchmark may want them nearly instant).
	Watch, Poll, Delay time.Duration
	// LogLevel is the config's log.level (default "error": the console
	// is the demo's output).
	LogLevel string
}

// World is a running demo world.
type World struct {
	Scenario Scenario
	// Dir holds everything: the config, the state database, the
	// infrastructure repository and deploybot's workdir.
	Dir        string
	ConfigPath string
	// Env holds the credentials the config's integrations read from the
	// environment; hand it to deploybot's Getenv.
	Env map[string]string
	// Remote is the infrastructure repository (bare), Workdir infra.workdir.
	Remote, Workdir string
	// Release is the drafted release's tag; Version the image tag it
	// becomes.
	Release, Version string

	GitHub  *githubtest.Server
	Airflow *airflowtest.Server
	Sentry  *sentrytest.Server

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// Start builds the world in dir (which must exist and be empty, or not
// exist) and starts its servers. Close stops them; dir is left for the
// person to look at.
func Start(ctx context.Context, dir string, opts Options) (*World, error) {
	if opts.Scenario == "" {
		opts.Scenario = Happy
	}
	if _, err := ParseScenario(string(opts.Scenario)); err != nil {
		return nil, err
	}
	if opts.Terraform == "" {
		return nil, errors.New("demo: Options.Terraform is empty (see FindTerraform)")
	}
	if opts.Infrastructure == nil {
		opts.Infrastructure = examples.Infrastructure()
	}
	if opts.Watch == 0 {
		opts.Watch = 10 * time.Second
	}
	if opts.Poll == 0 {
		opts.Poll = 250 * time.Millisecond
	}
	if opts.Delay == 0 {
		opts.Delay = 3 * time.Second
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "error"
	}
	if err := emptyDir(dir); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	// release-drafter's tag is the time the draft was made, in UTC.
	drafted := time.Now().UTC().Add(-90 * time.Minute).Truncate(time.Second)
	stamp := drafted.Format("2006.01.02.15.04.05")
	w := &World{Scenario: opts.Scenario, Dir: dir, ConfigPath: filepath.Join(dir, "deploybot.yaml"),
		Remote: filepath.Join(dir, "infrastructure.git"), Workdir: filepath.Join(dir, "work"),
		Release: "ingestion_server-" + stamp, Version: "rel-" + stamp, stop: make(chan struct{}),
		Env: map[string]string{"GITHUB_TOKEN": githubToken, "SENTRY_AUTH_TOKEN": sentryToken, "AIRFLOW_USERNAME": airflowUser, "AIRFLOW_PASSWORD": airflowPass}}
	w.seedGitHub(drafted, opts.Delay)
	w.seedAirflow()
	w.seedSentry(min(2*time.Second, opts.Watch/4))
	if err := w.makeRemote(ctx, opts); err != nil {
		w.Close()
		return nil, err
	}
	if err := w.writeConfig(opts); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// Close stops the servers.
func (w *World) Close() {
	w.once.Do(func() {
		close(w.stop)
		w.wg.Wait()
		for _, c := range []interface{ Close() }{w.GitHub, w.Airflow, w.Sentry} {
			if c != nil {
				c.Close()
			}
		}
	})
}

func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty: the demo builds a fresh world in it. Name an empty or new folder with --dir, or leave --dir out for a temporary one", dir)
	}
	return nil
}

// releaseBody is what release-drafter writes: one line per merged PR,
// under its category.
func releaseBody() string {
	pr := func(n int, title, who string) string {
		return fmt.Sprintf("- [%s (#%d)](https://github.com/WordPress/openverse/pull/%d) by @%s", title, n, n, who)
	}
	return strings.Join([]string{
		"## New Features", "",
		pr(4821, "Add a filtered-index step to the audio data refresh", "demo-dev-1"), "",
		"## Improvements", "",
		pr(4830, "Write Elasticsearch reindex batches in parallel", "demo-dev-2"),
		pr(4833, "Log the row count of each copied table", "demo-dev-3"), "",
		"## Internal Improvements", "",
		pr(4812, "Bump elasticsearch from 8.14.0 to 8.15.0 in /ingestion_server", "dependabot"), "",
		"## Bug Fixes", "",
		pr(4826, "Retry the alias swap when Elasticsearch times out", "demo-dev-1"),
	}, "\n")
}

func (w *World) seedGitHub(drafted time.Time, delay time.Duration) {
	gh := githubtest.NewServer()
	w.GitHub = gh
	gh.SetToken(githubToken)
	gh.AddRepo(Monorepo)
	gh.AddRepo(InfraRep)
	gh.AddWorkflow(Monorepo, BuildWorkflow)
	gh.AddWorkflow(InfraRep, RollbackWorkflow)
	gh.DeclareInputs(InfraRep, RollbackWorkflow, "tag", "actor")
	gh.AddRelease(Monorepo, githubtest.Release{Tag: previousRelease, Name: previousRelease, CreatedAt: time.Date(2023, 7, 3, 17, 52, 0, 0, time.UTC),
		PublishedAt: time.Date(2023, 7, 3, 18, 5, 0, 0, time.UTC), Body: "## Bug Fixes\n\n- [Keep the old index until the new one is healthy (#2570)](https://github.com/WordPress/openverse/pull/2570) by @demo-dev-2"})
	gh.AddRelease(Monorepo, githubtest.Release{Tag: w.Release, Name: w.Release, Draft: true, CreatedAt: drafted, Body: releaseBody()})
	// Publishing runs the build workflow, which tags the image and opens
	// the changelog PR from the bot account.
	gh.OnPublish(Monorepo, BuildWorkflow, "success", delay)
	gh.OnPublishPR(Monorepo, delay+delay/3, func(r githubtest.Release) githubtest.PR {
		return githubtest.PR{Title: "Publish changelog for " + r.Tag, Head: "changelog/" + r.Tag, Base: "main", User: ChangelogAuthor,
			Body: "This PR was created automatically by the `" + BuildWorkflow + "` workflow for the release " + r.Tag + "."}
	})
	gh.OnDispatch(InfraRep, RollbackWorkflow, "success", delay)
	// GitHub's copy of the infrastructure repository is, in the demo, the
	// local bare repository: the server must know the run branches the
	// infrastructure PRs are opened from. A fresh world numbers its runs
	// from 1.
	for i := 1; i <= 20; i++ {
		gh.AddRef(InfraRep, fmt.Sprintf("deploybot/%s-%s-run-%d", Service, w.Version, i))
	}
}

func (w *World) seedAirflow() {
	af := airflowtest.NewServer(2, airflowUser, airflowPass)
	w.Airflow = af
	af.AddDAG("image_data_refresh", "audio_data_refresh", "create_filtered_image_index", "create_filtered_audio_index")
	// Last week's refreshes finished; none is running now.
	week := time.Now().UTC().Add(-7 * 24 * time.Hour).Truncate(time.Hour)
	af.AddRun("image_data_refresh", airflowtest.DagRun{RunID: "scheduled__" + week.Format("2006-01-02T15:04:05+00:00"), State: "success", StartDate: week, QueuedAt: week})
	af.AddRun("audio_data_refresh", airflowtest.DagRun{RunID: "scheduled__" + week.Format("2006-01-02T15:04:05+00:00"), State: "success", StartDate: week, QueuedAt: week})
}

// seedSentry raises the issue after into the production watch.
func (w *World) seedSentry(after time.Duration) {
	sn := sentrytest.NewServer(sentryToken)
	w.Sentry = sn
	sn.AddProject(sentryProject, 42)
	// One new issue in production, shortly after the production deploy
	// marker: what a deploy that breaks something small looks like.
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			for _, d := range sn.Deploys(w.Version) {
				if d.Environment != "production" {
					continue
				}
				select {
				case <-w.stop:
					return
				case <-time.After(after):
				}
				now := time.Now()
				sn.AddIssue(sentryProject, "production", sentrytest.Issue{ID: sentryIssueID, ShortID: sentryIssueSID,
					Title: "ConnectionTimeout: Elasticsearch did not answer within 10s", Culprit: "ingestion_server.indexer in refresh",
					Permalink: "https://openverse.sentry.io/issues/" + sentryIssueID + "/", Level: "error",
					Count: 7, UserCount: 1, FirstSeen: now, LastSeen: now, Substatus: "new"})
				return
			}
		}
	}()
}

// failApplyTF makes production's apply fail after the plan was approved:
// a provisioner runs only at apply time. It lives in a file of its own in
// the scratch repository only, so examples/infrastructure stays valid for
// the console.
const failApplyTF = `# Demo scenario failed-apply: production's apply fails (a stand-in for a
# health check that fails after the new task definition is registered).
resource "terraform_data" "demo_health_check" {
  count            = var.environment == "production" ? 1 : 0
  triggers_replace = [var.image_tag]

  provisioner "local-exec" {
    command = "echo 'health check: ingestion-server answered 503 on /healthcheck' >&2; exit 1"
  }

  depends_on = [terraform_data.service]
}
`

func (w *World) makeRemote(ctx context.Context, opts Options) error {
	src := filepath.Join(w.Dir, "infrastructure-src")
	if err := os.CopyFS(src, opts.Infrastructure); err != nil {
		return fmt.Errorf("copying the example infrastructure: %w", err)
	}
	if opts.Scenario == FailedApply {
		if err := os.WriteFile(filepath.Join(src, "modules", "ingestion-server", "demo_failure.tf"), []byte(failApplyTF), 0o644); err != nil {
			return err
		}
	}
	git := func(dir string, args ...string) error {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=deploybot demo", "GIT_AUTHOR_EMAIL=demo@localhost",
			"GIT_COMMITTER_NAME=deploybot demo", "GIT_COMMITTER_EMAIL=demo@localhost", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "Example infrastructure"}} {
		if err := git(src, args...); err != nil {
			return err
		}
	}
	if err := git(w.Dir, "clone", "-q", "--bare", src, w.Remote); err != nil {
		return err
	}
	return os.RemoveAll(src)
}

func (w *World) writeConfig(opts Options) error {
	cfg := fmt.Sprintf(`# Written by deploybot demo: every URL is a test server inside the demo
# process; the infrastructure repository is %[1]s.
state_path: ./deploybot.db
http_addr: 127.0.0.1:0
log: {level: %[2]s, format: console}

slack:
  deploy_channels: [%[3]s]
  alerts_channel: C0ALERTS
  team_group: S0MAINTAINERS
  deployers: [%[4]s]
  approvers: [%[4]s, %[5]s]

github:
  api_url: %[6]s
  monorepo: %[7]s
  infra_repo: %[8]s
  poll_interval: %[9]s

infra:
  clone_url: ./infrastructure.git
  base_branch: main
  workdir: ./work
  terraform_bin: %[10]s
  merge_on_success: true
  keep_runs: 10

airflow:
  url: %[11]s
  api_version: 2

sentry:
  url: %[12]s
  org: %[13]s
  project: %[14]s
  environments: { dev: staging, prod: production }
  watch: %[15]s
  poll_interval: %[9]s

incident:
  create_channel: false

services:
  ingestion-server:
    release_tag_prefix: ingestion_server-
    image_tag_prefix: rel-
    build_workflow: %[16]s
    changelog_branch_prefix: changelog/
    environments:
      - name: dev
        dir: environments/dev
        file: environments/dev/ingestion-server.tf
        module: ingestion-server
        version_attribute: image_tag
        target: module.ingestion-server
        four_eyes: false
        backend_config: { path: "{workdir}/state/dev.tfstate" }
      - name: prod
        dir: environments/prod
        file: environments/prod/ingestion-server.tf
        module: ingestion-server
        version_attribute: image_tag
        target: module.ingestion-server
        clear_flag: data_refresh_cleared
        four_eyes: true
        backend_config: { path: "{workdir}/state/prod.tfstate" }
    rollback:
      workflow: %[17]s
      ref: main
`, w.Remote, opts.LogLevel, Channel, Alice, Bob, w.GitHub.URL(), Monorepo, InfraRep, opts.Poll, opts.Terraform,
		w.Airflow.URL(), w.Sentry.URL(), w.Sentry.Org(), sentryProject, opts.Watch, BuildWorkflow, RollbackWorkflow)
	return os.WriteFile(w.ConfigPath, []byte(cfg), 0o600)
}
