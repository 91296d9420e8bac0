package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	_ "modernc.org/sqlite"

	"github.com/deploybot/deploybot/bot/slacktest"
)

// The invariants the matrix checks after each crash point. Each finding
// names the invariant and what was seen; the counts feed the summary line.

type finding struct {
	invariant string
	detail    string
}

type verdict struct {
	effects    int // outside effects and must-once messages counted
	duplicates int // one of them seen more than once
	losses     int // one of them missing from a run that succeeded
	// unanswered counts start commands acked and then lost because the
	// crash came before deploybot recorded them: acks never wait on the
	// disk (Slack's 3-second rule), so this window cannot close. Nothing
	// was done and nothing was said; the person types the command again.
	// It is counted and reported, not an exactly-once violation.
	unanswered int
	findings   []finding
}

func (v *verdict) add(invariant, format string, args ...any) {
	v.findings = append(v.findings, finding{invariant, fmt.Sprintf(format, args...)})
}

// once counts an effect that must happen at most once, and exactly once
// when required.
func (v *verdict) once(invariant, what string, n int, required bool) {
	v.effects += n
	switch {
	case n > 1:
		v.duplicates += n - 1
		v.add(invariant, "%s happened %d times", what, n)
	case n == 0 && required:
		v.losses++
		v.add(invariant, "%s never happened", what)
	}
}

// restartNotice is legitimately new after every restart.
var restartNotice = regexp.MustCompile(`restarted and picked this run up again`)

// perAttempt messages report one attempt of a step (a plan shown for
// approval, a refusal, a failure, a stream of Terraform output): a retry
// or a resumed step repeats them by design, so they are not counted as
// duplicates. Every other thread message must appear once.
var perAttempt = []*regexp.Regexp{
	restartNotice,
	regexp.MustCompile(`^:rocket: Applying plan `),
	regexp.MustCompile(`^\*terraform (plan|apply) \(`),
	regexp.MustCompile(`^:hourglass_flowing_sand: Build `),
	// The flag goes back to false each time a plan or apply of its
	// environment stops being in flight: after a Re-plan that fails
	// again, that is twice, and each line is a real restore.
	regexp.MustCompile("restored to `false` in `[^`]+` \\(the [a-z]+ plan or apply is no longer in flight\\)"),
	// A plan is shown again whenever a person asks for a new one (Re-plan
	// after an interrupted apply): it is the plan they must approve.
	regexp.MustCompile(`^(:warning: \*This plan destroys or replaces resources\.\* )?\*Plan for `),
}

// mustOnce are thread messages a run that reached its scenario's end has
// (exactly once: a second copy is a duplicate above), by scenario.
var mustOnce = map[string][]string{
	// "A || B": either says it. After a crash that lost an apply's record
	// the re-plan finds nothing to change and says the environment already
	// has the version.
	"deploy": {"Release preview", "dev applied: `image_tag` is now || dev already has `image_tag`", "prod applied: `image_tag` is now || prod already has `image_tag`",
		"to Sentry environment `staging`", "to Sentry environment `production`",
		"Watching Sentry project", "Sentry watch over", "Changelog PR:", "and pushed it || so it was not pushed again", "Opened the infrastructure PR"},
	"rollback": {"Dispatched deploy-production-ingestion-server.yml || A dispatch of deploy-production-ingestion-server.yml on `main` of WordPress/openverse-infrastructure with tag `rel-2023.07.03.17.52.00` was being sent", "Following <", "Rollback to `rel-2023.07.03.17.52.00` succeeded"},
	// GitHub answers the dispatch 504: deploybot says it got no clear
	// answer and looks for the run instead of dispatching again.
	"rollback-504": {"No clear answer to the dispatch of deploy-production-ingestion-server.yml", "Following <", "Rollback to `rel-2023.07.03.17.52.00` succeeded"},
	"apply-failure": {"Release preview", "dev applied: `image_tag` is now || dev already has `image_tag`", "to Sentry environment `staging`",
		"“Production (prod): apply” failed", "cancelled the run", "`data_refresh_cleared` restored to `false`"},
}

func (cw *crashWorld) check(res driveResult) verdict {
	var v verdict
	// reached: the run came to the end its scenario aims at; only then
	// must every effect and message of the way there be present.
	reached := res.state == cw.sc.want
	succeeded := reached && res.state == "succeeded"
	if res.unplanned != "" {
		v.add("process", "%s", res.unplanned)
	}
	if res.stuck != "" {
		v.add("progress", "%s", res.stuck)
	} else if res.state != cw.sc.want {
		v.add("outcome", "the run ended %q, want %q", res.state, cw.sc.want)
	}
	if res.starts > 1 {
		v.unanswered += res.starts - 1
	}

	// Outside effects, counted where they landed.
	switch cw.sc.kind {
	case "deploy":
		publishes := 0
		for _, r := range cw.gh.Runs(monorepo, buildWF) {
			if r.Event == "release" {
				publishes++
			}
		}
		v.once("effect:publish", "publishing the release (build runs started)", publishes, reached)
		v.once("effect:review", "approving the changelog PR", changelogReviews(cw.gh), succeeded)
		pushes := 0
		for _, l := range readLines(cw.pushLog) {
			if strings.HasPrefix(l, "refs/heads/deploybot/") {
				pushes++
			}
		}
		v.once("effect:push", "pushing the run branch", pushes, succeeded)
		prs := 0
		for _, p := range cw.gh.PRs(infraRepo) {
			if strings.HasPrefix(p.Head, "deploybot/") {
				prs++
			}
		}
		v.once("effect:pr", "opening the infrastructure PR", prs, succeeded)
		if n := len(cw.gh.Dispatches(infraRepo, rollbackWF)); n > 0 {
			v.duplicates += n
			v.add("effect:dispatch", "a deploy dispatched the rollback workflow %d times", n)
		}
		deps := map[string]int{}
		for _, d := range cw.sn.Deploys(tag) {
			deps[d.Environment]++
		}
		v.once("effect:sentry-deploy", "the staging deploy marker", deps["staging"], reached)
		v.once("effect:sentry-deploy", "the production deploy marker", deps["production"], succeeded)
		cw.checkApplies(&v, res, reached, succeeded)
		cw.checkIssues(&v, succeeded)
		cw.checkFlag(&v)
	case "rollback":
		v.once("effect:dispatch", "dispatching the rollback workflow", len(cw.gh.Dispatches(infraRepo, rollbackWF)), succeeded)
	}
	if n := len(cw.srv.Messages(deploys)); n > 1 {
		v.duplicates += n - 1
		v.add("slack:duplicate", "the run message was posted %d times in the channel", n)
	}
	cw.checkThread(&v, reached)
	cw.checkAudit(&v)
	for _, r := range cw.srv.Rejected() {
		v.add("slack", "Slack rejected %s: %s %s", r.Method, r.Error, r.Detail)
	}
	return v
}

// checkApplies: each environment's apply took effect once, and Terraform
// applied no more often than people approved a plan (or retried an apply).
func (cw *crashWorld) checkApplies(v *verdict, res driveResult, reached, succeeded bool) {
	applied := map[string]int{}
	for _, l := range readLines(cw.applyLog) {
		applied[strings.Fields(l)[0]]++
	}
	v.once("apply:effect", "the staging apply", applied["staging"], reached)
	v.once("apply:effect", "the production apply", applied["production"], succeeded)

	// Terraform's own record: the state of an environment the run got
	// through holds the new image.
	for env, must := range map[string]bool{"dev": reached, "prod": succeeded} {
		b, err := os.ReadFile(filepath.Join(cw.work, "state", env+".tfstate"))
		if must && (err != nil || !strings.Contains(string(b), "openverse-ingestion_server:"+tag)) {
			v.losses++
			v.add("apply:state", "the %s state does not hold image %s (%v)", env, tag, err)
		}
	}

	invoked := map[string]int{}
	for _, l := range readLines(cw.tfLog) {
		f := strings.Fields(l)
		if len(f) >= 2 && f[1] == "apply" {
			invoked[filepath.Base(f[0])]++
		}
	}
	approvals, fourEyes, err := cw.approvals()
	if err != nil {
		v.add("store", "reading approvals: %v", err)
	}
	for _, env := range []string{"dev", "prod"} {
		retries := 0
		for _, c := range res.clicks {
			if c.verb == "retry" && strings.Contains(c.title, "("+env+"): apply") {
				retries++
			}
		}
		if invoked[env] > approvals[env]+retries {
			v.duplicates += invoked[env] - approvals[env] - retries
			v.add("apply:count", "terraform apply ran %d times in %s for %d approvals and %d retries", invoked[env], env, approvals[env], retries)
		}
	}
	for _, f := range fourEyes {
		v.add("four-eyes", "%s", f)
	}
}

// approvals counts plan approvals per environment in the store, and lists
// any prod approval given by the requester.
func (cw *crashWorld) approvals() (map[string]int, []string, error) {
	n := map[string]int{}
	var bad []string
	db, err := cw.openState()
	if err != nil {
		return n, nil, err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT a.step_id, a.approver, a.decision, r.requester FROM approvals a JOIN runs r ON r.id = a.run_id`)
	if err != nil {
		return n, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var step, approver, decision, requester string
		if err := rows.Scan(&step, &approver, &decision, &requester); err != nil {
			return n, bad, err
		}
		if decision != "approve" || !strings.HasPrefix(step, "plan:") {
			continue
		}
		env := strings.TrimPrefix(step, "plan:")
		n[env]++
		if env == "prod" && approver == requester {
			bad = append(bad, fmt.Sprintf("prod plan approved by its requester %s", approver))
		}
	}
	return n, bad, rows.Err()
}

// checkIssues: every Sentry issue appears in exactly one thread message.
func (cw *crashWorld) checkIssues(v *verdict, succeeded bool) {
	for _, id := range crashIssues {
		n := 0
		for _, m := range cw.thread() {
			if strings.Contains(m.Text, "INGESTION-"+id) {
				n++
			}
		}
		v.once("sentry:issue", "the thread message for Sentry issue INGESTION-"+id, n, succeeded)
	}
}

// checkThread: no thread message twice, restart notices and per-attempt
// messages aside; the must-once messages of a successful run present.
func (cw *crashWorld) checkThread(v *verdict, reached bool) {
	// Keyed by text, the part every client shows and notifies with (Slack
	// gives each message its own block ids, so blocks never repeat).
	seen := map[string]int{}
	keys := map[string]map[string]bool{} // text → the outbox keys it was posted under
	for _, m := range cw.thread() {
		seen[m.Text]++
		if keys[m.Text] == nil {
			keys[m.Text] = map[string]bool{}
		}
		keys[m.Text][outboxKeyOf(m)] = true
	}
	for text, n := range seen {
		if n < 2 {
			continue
		}
		legit := false
		for _, re := range perAttempt {
			legit = legit || re.MatchString(text)
		}
		// Two clicks within the same second read the same ("<@U…> clicked
		// *Approve* … at 20:58:29 UTC") yet are two events: told apart by
		// their outbox keys. One click's line posted twice has one key.
		if clickLine.MatchString(text) && len(keys[text]) == n {
			legit = true
		}
		if !legit {
			v.duplicates += n - 1
			v.add("slack:duplicate", "thread message posted %d times: %q", n, oneLineForReport(text))
		}
	}
	want, ok := mustOnce[cw.sc.name]
	if !ok {
		want = mustOnce[cw.sc.kind]
	}
	for _, want := range want {
		n := 0
		for _, m := range cw.thread() {
			for _, alt := range strings.Split(want, " || ") {
				if strings.Contains(m.Text, alt) {
					n++
					break
				}
			}
		}
		if !reached {
			n = min(n, 1) // only a run that got there must have it; duplicates are counted above
			if n == 0 {
				continue
			}
		}
		v.effects += min(n, 1)
		if n == 0 {
			v.losses++
			v.add("slack:lost", "no thread message says %q", want)
		}
	}
}

// thread is every reply in the threads of the deploy channel's messages
// (one run message, unless a restart posted it again).
func (cw *crashWorld) thread() []slacktest.Message {
	var out []slacktest.Message
	for _, m := range cw.srv.Messages(deploys) {
		out = append(out, cw.srv.Thread(deploys, m.TS)...)
	}
	return out
}

// clickLine is the thread line a click makes.
var clickLine = regexp.MustCompile(`^<@U[A-Z0-9]+> clicked \*`)

// outboxKeyOf is the idempotency key a message carries in its metadata.
func outboxKeyOf(m slacktest.Message) string {
	var md struct {
		EventPayload map[string]any `json:"event_payload"`
	}
	if json.Unmarshal(m.Metadata, &md) != nil {
		return ""
	}
	return fmt.Sprint(md.EventPayload["key"])
}

func oneLineForReport(s string) string {
	s = strings.ReplaceAll(s, "\n", " ⏎ ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// The flag's attribute (not the comments that mention it).
var (
	flagTrue  = regexp.MustCompile(`(?m)^\s*data_refresh_cleared\s*=\s*true`)
	flagFalse = regexp.MustCompile(`(?m)^\s*data_refresh_cleared\s*=\s*false`)
)

// checkFlag: data_refresh_cleared is false in every commit of the bare
// repository (reachable or not: a force-pushed commit was pushed too) and
// of the run's working copies, and in the working copy once the run ended.
func (cw *crashWorld) checkFlag(v *verdict) {
	repos := []string{cw.remote}
	runs, _ := filepath.Glob(filepath.Join(cw.work, "runs", "*"))
	repos = append(repos, runs...)
	for _, repo := range repos {
		out, err := exec.Command("git", "-C", repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype)").Output()
		if err != nil {
			continue // not a repository (yet)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(l)
			if len(f) != 2 || f[1] != "commit" {
				continue
			}
			body, err := exec.Command("git", "-C", repo, "show", f[0]+":environments/prod/ingestion-server.tf").Output()
			if err == nil && flagTrue.Match(body) {
				v.add("flag:committed", "commit %s in %s has data_refresh_cleared = true", f[0][:12], filepath.Base(repo))
			}
		}
	}
	for _, run := range runs {
		b, err := os.ReadFile(filepath.Join(run, "environments", "prod", "ingestion-server.tf"))
		if err == nil && !flagFalse.Match(b) {
			v.add("flag:working-copy", "%s/environments/prod/ingestion-server.tf does not say data_refresh_cleared = false after the run", filepath.Base(run))
		}
	}
}

// checkAudit: the audit log has no gap. Its rows commit in the same
// transaction as the state they describe, so a gap is a state with no
// event: every run's events go from run.started to the event of the state
// it is in, every step done or skipped has its step.done/step.skipped
// event, and every approval its approver's click.
func (cw *crashWorld) checkAudit(v *verdict) {
	db, err := cw.openState()
	if err != nil {
		v.add("audit", "opening the store: %v", err)
		return
	}
	defer db.Close()
	rows, err := db.Query(`SELECT run_id, action, step_id, actor FROM audit ORDER BY seq`)
	if err != nil {
		v.add("audit", "reading the audit log: %v", err)
		return
	}
	events := map[string][]string{}
	stepEvents := map[string]bool{} // "run step action actor"
	for rows.Next() {
		var run, action, step, actor string
		if err := rows.Scan(&run, &action, &step, &actor); err != nil {
			v.add("audit", "%v", err)
			break
		}
		events[run] = append(events[run], action)
		stepEvents[run+" "+step+" "+action+" "] = true
		stepEvents[run+" "+step+" "+action+" "+actor] = true
	}
	rows.Close()
	cw.checkStepEvents(v, db, stepEvents)
	rs, err := db.Query(`SELECT id, state FROM runs ORDER BY id`)
	if err != nil {
		v.add("audit", "reading runs: %v", err)
		return
	}
	defer rs.Close()
	for rs.Next() {
		var id int
		var state string
		if err := rs.Scan(&id, &state); err != nil {
			v.add("audit", "%v", err)
			return
		}
		run := fmt.Sprintf("run-%d", id)
		evs := events[run]
		if len(evs) == 0 || evs[0] != "run.started" {
			v.add("audit:run", "%s's first event is not run.started: %v", run, firstN(evs, 3))
		}
		if strings.Count(strings.Join(evs, " ")+" ", "run.started ") > 1 {
			v.add("audit:run", "%s started more than once", run)
		}
		switch state {
		case "succeeded", "failed", "cancelled":
			if !contains(evs, "run."+state) {
				v.add("audit:run", "%s is %s but its audit log has no run.%s (last events %v)", run, state, state, lastN(evs, 4))
			}
		default:
			v.add("audit:run", "%s is still %s at the end of the point", run, state)
		}
	}
}

// checkStepEvents: each finished step and each approval in the store has
// its audit event.
func (cw *crashWorld) checkStepEvents(v *verdict, db *sql.DB, seen map[string]bool) {
	rows, err := db.Query(`SELECT run_id, id, status FROM steps WHERE status IN ('done', 'skipped')`)
	if err != nil {
		v.add("audit", "reading steps: %v", err)
		return
	}
	for rows.Next() {
		var id int
		var step, status string
		if err := rows.Scan(&id, &step, &status); err != nil {
			v.add("audit", "%v", err)
			break
		}
		if run := fmt.Sprintf("run-%d", id); !seen[run+" "+step+" step."+status+" "] {
			v.add("audit:gap", "%s step %s is %s with no step.%s event", run, step, status, status)
		}
	}
	rows.Close()
	apps, err := db.Query(`SELECT run_id, step_id, approver, decision FROM approvals`)
	if err != nil {
		v.add("audit", "reading approvals: %v", err)
		return
	}
	defer apps.Close()
	for apps.Next() {
		var id int
		var step, who, decision string
		if err := apps.Scan(&id, &step, &who, &decision); err != nil {
			v.add("audit", "%v", err)
			return
		}
		if run := fmt.Sprintf("run-%d", id); !seen[run+" "+step+" click."+decision+" "+who] {
			v.add("audit:gap", "%s: %s's %s of %s has no click.%s event", run, who, decision, step, decision)
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func firstN(ss []string, n int) []string { return ss[:min(n, len(ss))] }
func lastN(ss []string, n int) []string  { return ss[max(0, len(ss)-n):] }
