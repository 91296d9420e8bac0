package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/integrations/airflow/airflowtest"
	"github.com/deploybot/deploybot/integrations/github/githubtest"
	"github.com/deploybot/deploybot/integrations/sentry/sentrytest"
	"github.com/deploybot/deploybot/internal/testtool"
)

const (
	monorepo     = "WordPress/openverse"
	infraRepo    = "WordPress/openverse-infrastructure"
	buildWF      = "tag_docker_image_and_trigger_deployment.yml"
	rollbackWF   = "deploy-production-ingestion-server.yml"
	draftTag     = "ingestion_server-2024.09.09.05.40.20"
	previousTag  = "ingestion_server-2023.07.03.17.52.00"
	ghToken      = "ghp_testtoken000000000000000000000000"
	sentryToken  = "sntrys_test_token"
	runBranch    = "deploybot/ingestion-server-" + tag + "-run-1"
	changelogPR  = "changelog/" + draftTag
	airflowUser  = "deploybot"
	airflowPass  = "airflow-secret"
	sentryBotID  = "B0SENTRY"
	sentryUserID = "U0SENTRYAPP"
)

// world is deploybot with every integration configured, each outside system
// a test server speaking its protocol over loopback, the infrastructure
// repository a local bare repository and Terraform the real one.
type world struct {
	*harness
	gh     *githubtest.Server
	af     *airflowtest.Server
	sn     *sentrytest.Server
	remote string
	work   string
	msgTS  string
	watch  string // sentry.watch; set it before writeConfig
	// via replaces a system's URL in the config ("github", "airflow",
	// "sentry"): a fault proxy in front of its test server. top is added
	// to the config's top level.
	via map[string]string
	top string
}

// url is where the config sends deploybot for a system.
func (w *world) url(system, real string) string {
	if u := w.via[system]; u != "" {
		return u
	}
	return real
}

// sections lists which optional sections the config has.
type sections struct{ github, airflow, sentry, infra bool }

var all = sections{github: true, airflow: true, sentry: true, infra: true}

func newWorld(t testing.TB, with sections) *world {
	t.Helper()
	w := &world{harness: newHarness(t), watch: "2s"}
	w.srv.AddUser(sentryUserID, "sentry")

	w.gh = githubtest.NewServer()
	t.Cleanup(w.gh.Close)
	w.gh.SetToken(ghToken)
	w.gh.AddRepo(monorepo)
	w.gh.AddRepo(infraRepo)
	w.gh.AddWorkflow(monorepo, buildWF)
	w.gh.AddWorkflow(infraRepo, rollbackWF)
	w.gh.DeclareInputs(infraRepo, rollbackWF, "tag", "actor")
	w.gh.AddRelease(monorepo, githubtest.Release{Tag: previousTag, Name: previousTag, Body: "old", PublishedAt: time.Now().Add(-48 * time.Hour), CreatedAt: time.Now().Add(-49 * time.Hour)})
	w.gh.AddRelease(monorepo, githubtest.Release{Tag: draftTag, Name: draftTag, Draft: true, CreatedAt: time.Now().Add(-time.Hour),
		Body: "## New Features\n- [Faster refresh (#123)](https://github.com/WordPress/openverse/pull/123) by @dev <!channel>\n## Bug Fixes\n- Fix <@U0ALICE> ping (#124)"})
	w.gh.OnPublish(monorepo, buildWF, "success", 300*time.Millisecond)
	w.gh.OnPublishPR(monorepo, 300*time.Millisecond, func(r githubtest.Release) githubtest.PR {
		return githubtest.PR{Title: "Publish changelog for " + r.Tag, Head: "changelog/" + r.Tag, Base: "main", User: githubtest.DefaultPRUser}
	})
	w.gh.OnDispatch(infraRepo, rollbackWF, "success", 300*time.Millisecond)
	w.gh.AddRef(infraRepo, runBranch)

	w.af = airflowtest.NewServer(2, airflowUser, airflowPass)
	t.Cleanup(w.af.Close)
	w.af.AddDAG("image_data_refresh", "audio_data_refresh", "create_filtered_image_index", "create_filtered_audio_index")

	w.sn = sentrytest.NewServer(sentryToken)
	t.Cleanup(w.sn.Close)
	w.sn.AddProject("ingestion-server", 42)

	w.env["GITHUB_TOKEN"] = ghToken
	w.env["AIRFLOW_USERNAME"] = airflowUser
	w.env["AIRFLOW_PASSWORD"] = airflowPass
	w.env["SENTRY_AUTH_TOKEN"] = sentryToken

	w.remote = infraRemote(t, nil)
	w.work = filepath.Join(w.dir, "work")
	w.writeConfig(with)
	return w
}

func (w *world) writeConfig(with sections) {
	t := w.t
	var b strings.Builder
	fmt.Fprintf(&b, baseConfig+"incident:\n  create_channel: true\n", w.srv.APIURL())
	b.WriteString(w.top)
	if with.github {
		fmt.Fprintf(&b, "github:\n  api_url: %s\n  monorepo: %s\n  infra_repo: %s\n  poll_interval: 50ms\n", w.url("github", w.gh.URL()), monorepo, infraRepo)
	}
	if with.infra {
		b.WriteString(infraConfig(w.remote, w.work, testtool.Terraform(t)))
	}
	if with.airflow {
		fmt.Fprintf(&b, "airflow:\n  url: %s\n  api_version: 2\n", w.url("airflow", w.af.URL()))
	}
	if with.sentry {
		fmt.Fprintf(&b, "sentry:\n  url: %s\n  org: %s\n  project: ingestion-server\n  environments: {dev: staging, prod: production}\n  watch: %s\n  poll_interval: 50ms\n", w.url("sentry", w.sn.URL()), w.sn.Org(), w.watch)
	}
	b.WriteString(`services:
  ingestion-server:
    release_tag_prefix: ingestion_server-
    image_tag_prefix: rel-
    build_workflow: tag_docker_image_and_trigger_deployment.yml
    changelog_branch_prefix: changelog/
    environments:
      - {name: dev, dir: environments/dev, file: environments/dev/ingestion-server.tf, module: ingestion-server, version_attribute: image_tag,
         backend_config: {path: "{workdir}/state/dev.tfstate"}}
      - {name: prod, dir: environments/prod, file: environments/prod/ingestion-server.tf, module: ingestion-server, version_attribute: image_tag,
         clear_flag: data_refresh_cleared, four_eyes: true, backend_config: {path: "{workdir}/state/prod.tfstate"}}
    rollback: {workflow: deploy-production-ingestion-server.yml, ref: main}
`)
	if err := os.WriteFile(w.cfgPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// deploy starts `/deploy ingestion-server` with no tag and returns the run
// message's ts.
func (w *world) deploy() string {
	w.t.Helper()
	r := w.reply(w.command(alice, deploys, "/deploy", "ingestion-server"))
	if !strings.Contains(r, "Started run-1") {
		w.t.Fatalf("/deploy answered %q", r)
	}
	w.msgTS = w.runMessage(0).TS
	return w.msgTS
}

// thread reports whether the run's thread has a message containing text.
func (w *world) thread(text string) bool { return threadHas(w.harness, w.msgTS, text) }

func (w *world) waitThread(text string) {
	w.t.Helper()
	w.srv.WaitFor(w.t, wait, fmt.Sprintf("the thread to say %q", text), func() bool { return w.thread(text) })
}

// countThread counts thread messages containing text.
func (w *world) countThread(text string) int {
	n := 0
	for _, m := range w.srv.Thread(deploys, w.msgTS) {
		if strings.Contains(m.Text, text) {
			n++
		}
	}
	return n
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

// noDraft publishes the drafted release behind deploybot's back (through
// the REST API, as a person would), so that nothing is unreleased.
func (w *world) noDraft() {
	w.t.Helper()
	for _, r := range w.gh.Releases(monorepo) {
		if !r.Draft {
			continue
		}
		req, _ := http.NewRequest("PATCH", fmt.Sprintf("%srepos/%s/releases/%d", w.gh.URL(), monorepo, r.ID), strings.NewReader(`{"draft":false}`))
		req.Header.Set("Authorization", "Bearer "+ghToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			w.t.Fatalf("publishing the draft: %v %v", err, resp)
		}
		resp.Body.Close()
	}
}

// deployToWatch deploys with every integration up to the running Sentry
// watch, and returns the run message's ts.
func (w *world) deployToWatch() string {
	w.t.Helper()
	ts := w.deploy()
	w.step(ts, "Publish the release", "publish", alice)
	w.step(ts, "Staging (dev): verify the plan", "approve", alice)
	w.step(ts, "Production (prod): verify the plan", "approve", bob)
	w.waitThread("Watching Sentry project `ingestion-server`")
	return ts
}

// sentryIssue is a new issue seen now.
func sentryIssue(id, title, level string, count int64, users int) sentrytest.Issue {
	return sentrytest.Issue{ID: id, ShortID: "INGESTION-" + id, Title: title, Culprit: "ingestion_server.api", Level: level,
		Permalink: "https://sentry.example.com/issues/" + id + "/", Count: count, UserCount: users,
		FirstSeen: time.Now(), LastSeen: time.Now(), Status: "unresolved", Substatus: "new"}
}
