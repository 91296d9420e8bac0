package steps

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/deploybot/deploybot/config"
)

// Airflow lists data refresh DAG runs that are running or queued.
type Airflow interface {
	ActiveRuns(ctx context.Context, dags []string) ([]DagRun, error)
}

// DagRun is one active Airflow DAG run.
type DagRun struct {
	DagID, RunID, State string
	StartDate           time.Time
	URL                 string
}

// AutomateAirflow makes the Airflow checks ask Airflow: before anything
// changes, and again just before production.
func (rb *Runbooks) AutomateAirflow(af Airflow, dags []string) {
	rb.Automate("airflow", func(spec Spec, svc *config.Service, m *Manual) Step {
		spec.Overridable = true
		return &airflowStep{S: spec, af: af, dags: dags}
	})
}

type airflowStep struct {
	S    Spec
	af   Airflow
	dags []string
}

func (s *airflowStep) Spec() Spec { return s.S }

func (s *airflowStep) Start(ctx context.Context, x *Exec) Result {
	runs, err := s.af.ActiveRuns(ctx, s.dags)
	if err != nil {
		return Failed(fmt.Errorf("could not check Airflow, so deploybot does not know whether a data refresh is running: %v", err))
	}
	if len(runs) == 0 {
		return Done(fmt.Sprintf("no data refresh running (%d DAGs checked at %s UTC)", len(s.dags), time.Now().UTC().Format("15:04")))
	}
	var lines []string
	for _, r := range runs {
		start := "not started"
		if !r.StartDate.IsZero() {
			start = "since " + r.StartDate.UTC().Format("2006-01-02 15:04") + " UTC"
		}
		lines = append(lines, fmt.Sprintf("• `%s` run `%s` (%s, %s) <%s|open in Airflow>", Escape(r.DagID), Escape(r.RunID), Escape(r.State), start, r.URL))
	}
	x.Say(":octagonal_sign: A data refresh is active, so the deploy waits:\n%s", strings.Join(lines, "\n"))
	return Wait(fmt.Sprintf("%d data refresh run(s) active (see the thread). Re-check when they have finished. An approver may Override, giving a reason (or type `/deploy override %s <reason>`).", len(runs), x.Run.ID),
		Button{Verb: VerbRecheck, Label: "Re-check", Style: "primary"}, Button{Verb: VerbConfirm, Label: "Override", Style: "danger"})
}

func (s *airflowStep) Act(ctx context.Context, x *Exec, a Action) Result {
	switch a.Verb {
	case VerbRecheck:
		return s.Start(ctx, x)
	case VerbConfirm:
		r := Done(fmt.Sprintf("block overridden by <@%s>: %s", a.User, Escape(a.Reason)))
		r.Say = fmt.Sprintf(":warning: <@%s> overrode the Airflow block: %s", a.User, Escape(a.Reason))
		return r
	}
	return unexpected(s.S, a)
}

// watchStepID is the "Check Sentry" step, which the Sentry watch runs as.
const watchStepID = "sentry"

// Sentry records deploys and finds issues in one Sentry project.
type Sentry interface {
	CreateDeploy(ctx context.Context, version, environment string, started, finished time.Time) error
	// HasDeploy reports whether the deploy is already recorded.
	HasDeploy(ctx context.Context, version, environment string) (bool, error)
	NewIssues(ctx context.Context, environment string, since time.Time) ([]SentryIssue, error)
}

// SentryIssue is an issue seen after a deploy.
type SentryIssue struct {
	ID, ShortID, Title, Culprit, Permalink, Level string
	Count                                         int64
	UserCount                                     int
	FirstSeen                                     time.Time
	Regressed                                     bool
}

// AutomateSentry records a deploy after each apply and turns "Check Sentry"
// into a watch of the project for cfg.Watch after each apply.
func (rb *Runbooks) AutomateSentry(sn Sentry, cfg *config.Sentry) {
	rb.sentry, rb.sentryCfg = sn, cfg
	rb.Automate(watchStepID, func(spec Spec, svc *config.Service, m *Manual) Step {
		return &watchStep{S: spec, sn: sn, cfg: cfg, svc: svc}
	})
	if rb.builders["apply"] == nil {
		// Applies are manual (no infra section): the deploy is recorded
		// when a person says the apply is done.
		rb.Automate("apply", func(spec Spec, svc *config.Service, m *Manual) Step {
			return &manualApply{Manual: m, sn: sn, cfg: cfg}
		})
	}
}

type manualApply struct {
	*Manual
	sn  Sentry
	cfg *config.Sentry
}

func (m *manualApply) Act(ctx context.Context, x *Exec, a Action) Result {
	res := m.Manual.Act(ctx, x, a)
	if res.Status == StepDone {
		env := envOf(m.S.ID)
		x.SetRunValue("applied_at:"+env, time.Now().UTC().Format(time.RFC3339Nano))
		recordDeploy(ctx, m.sn, m.cfg, x, env, x.Step.StartedAt)
	}
	return res
}

// recordDeploy marks the apply in Sentry; failing to is worth a warning,
// not a failed deploy.
func recordDeploy(ctx context.Context, sn Sentry, cfg *config.Sentry, x *Exec, env string, started time.Time) {
	if sn == nil {
		return
	}
	senv := cfg.Environment(env)
	if err := sn.CreateDeploy(ctx, x.Run.Version, senv, started, time.Now()); err != nil {
		x.Say(":warning: Could not record the deploy of `%s` to %s in Sentry: %s", Escape(x.Run.Version), senv, Escape(err.Error()))
		return
	}
	x.Say(":bookmark: Recorded the deploy of `%s` to Sentry environment `%s`.", Escape(x.Run.Version), senv)
}

type watchStep struct {
	S   Spec
	sn  Sentry
	cfg *config.Sentry
	svc *config.Service
}

func (s *watchStep) Spec() Spec { return s.S }

func (s *watchStep) Act(ctx context.Context, x *Exec, a Action) Result {
	if a.Verb == VerbSkip {
		r := Skipped(fmt.Sprintf("not checked; <@%s> accepted the risk", a.User))
		r.Say = fmt.Sprintf(":warning: <@%s> skipped the Sentry check that could not run, accepting the risk.", a.User)
		return r
	}
	return unexpected(s.S, a)
}

type window struct {
	env, senv  string
	start, end time.Time
}

// windows are the watch periods: from each environment's apply for
// cfg.Watch. They come from the run's record, so after a restart the watch
// ends when it would have.
func (s *watchStep) windows(x *Exec) []window {
	var ws []window
	var missing []string
	for _, e := range s.svc.Environments {
		at := x.RunValue("applied_at:" + e.Name)
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			missing = append(missing, e.Name)
			continue
		}
		ws = append(ws, window{env: e.Name, senv: s.cfg.Environment(e.Name), start: t, end: t.Add(s.cfg.Watch)})
	}
	if len(ws) > 0 {
		// An environment the run got past without a recorded apply time
		// (a crash between the apply and its record, or a plan with no
		// changes) is watched all the same, from the run's start: better a
		// pre-existing issue shown than a new one missed.
		end := ws[0].end
		for _, w := range ws {
			end = later(end, w.end)
		}
		for _, name := range missing {
			ws = append(ws, window{env: name, senv: s.cfg.Environment(name), start: x.Run.CreatedAt, end: end})
		}
	}
	if len(ws) == 0 {
		start := x.Step.StartedAt
		if v := x.Get("started"); v != "" {
			start, _ = time.Parse(time.RFC3339Nano, v)
		}
		env := ""
		if n := len(s.svc.Environments); n > 0 {
			env = s.svc.Environments[n-1].Name
		}
		ws = append(ws, window{env: env, senv: s.cfg.Environment(env), start: start, end: start.Add(s.cfg.Watch)})
	}
	return ws
}

func (s *watchStep) Start(ctx context.Context, x *Exec) Result {
	if x.Get("started") == "" {
		_ = x.Save("started", x.Step.StartedAt.UTC().Format(time.RFC3339Nano))
	}
	ws := s.windows(x)
	posted := map[string]bool{}
	for _, id := range strings.Fields(x.Get("posted")) {
		posted[id] = true
	}
	end := ws[0].end
	for _, w := range ws {
		if w.end.After(end) {
			end = w.end
		}
	}
	// Retry after a watch that could not check ("watch again"): a
	// person's retry, not a restart, watches for another full period.
	if x.Step.Attempt > 1 && x.Get(resumedKey) != fmt.Sprint(x.Step.Attempt) && x.Get("retried_attempt") != fmt.Sprint(x.Step.Attempt) {
		until := time.Now().Add(s.cfg.Watch).UTC()
		x.Set("retried_attempt", fmt.Sprint(x.Step.Attempt))
		x.Set("until", until.Format(time.RFC3339Nano))
		x.Say(":mag: Watching Sentry project `%s` again, until %s UTC.", s.cfg.Project, until.Format("15:04:05"))
	}
	if u, err := time.Parse(time.RFC3339Nano, x.Get("until")); err == nil && u.After(end) {
		end = u
		for i := range ws {
			ws[i].end = u
		}
	}
	if x.Get("announced") == "" {
		// Set, then Say: the line and the record commit together.
		x.Set("announced", "yes")
		x.Say(":mag: Watching Sentry project `%s` for new and regressed issues until %s UTC.", s.cfg.Project, end.UTC().Format("15:04:05"))
	}
	// A successful poll at time T has checked its window from the window's
	// start up to T (the query asks for everything since the start), so
	// what was checked is known from the last poll that answered. It is
	// not carried across a restart: the next answer covers the gap.
	checked := make([]time.Time, len(ws))
	for {
		now := time.Now()
		for i, w := range ws {
			issues, err := s.sn.NewIssues(ctx, w.senv, w.start)
			if err != nil {
				if ctx.Err() != nil {
					return Failed(ctx.Err())
				}
				// Said once when Sentry stops answering, and once when it
				// answers again; the record commits with each line, so a
				// restart does not repeat them.
				if x.Get("down") == "" {
					x.Set("down", now.UTC().Format(time.RFC3339Nano))
					x.Say(":warning: Sentry does not answer (%s); the watch keeps trying, and says so when it answers again.", Escape(err.Error()))
				}
				continue
			}
			if since := x.Get("down"); since != "" {
				x.Set("down", "")
				t, _ := time.Parse(time.RFC3339Nano, since)
				x.Say(":white_check_mark: Sentry answers again (it did not from %s UTC); issues since the apply are checked again, the gap included.", t.UTC().Format("15:04:05"))
			}
			checked[i] = now
			sort.Slice(issues, func(i, j int) bool { return issues[i].FirstSeen.Before(issues[j].FirstSeen) })
			for _, is := range issues {
				if posted[is.ID] || is.FirstSeen.After(w.end) && !is.Regressed {
					continue
				}
				posted[is.ID] = true
				// The record and the post are one commit (the post is an
				// outbox entry): after a crash an issue is either recorded
				// and owed to Slack, or neither, so it is posted exactly
				// once.
				x.Set("posted", strings.Join(keys(posted), " "))
				x.Set("issues", strings.TrimSpace(x.Get("issues")+"\n"+fmt.Sprintf("%s|%s|%s", is.ShortID, is.Title, is.Permalink)))
				s.post(x, w, is)
			}
		}
		if !now.Before(end) {
			break
		}
		wait := s.cfg.PollInterval
		if until := time.Until(end); until < wait {
			wait = until
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return Failed(ctx.Err())
		case <-t.C:
		}
	}
	return s.result(ws, checked, len(posted))
}

// result says what the watch found, and how much of the watch it could
// check: "no new issues" only for a window checked to its end.
func (s *watchStep) result(ws []window, checked []time.Time, n int) Result {
	watch := s.cfg.Watch
	var partial []string
	any := false
	var covered time.Duration
	for i, w := range ws {
		if checked[i].IsZero() {
			partial = append(partial, fmt.Sprintf("%s: nothing checked", w.senv))
			continue
		}
		any = true
		d := min(checked[i].Sub(w.start), w.end.Sub(w.start))
		if d < w.end.Sub(w.start) {
			partial = append(partial, fmt.Sprintf("%s: checked %s of %s", w.senv, minutes(d), minutes(w.end.Sub(w.start))))
		}
		covered = max(covered, d)
	}
	if !any {
		msg := fmt.Sprintf("Sentry did not answer during the whole watch, so nothing was checked: there may be new issues. Retry watches for another %s; Skip (an approver) accepts the risk.", minutes(watch))
		r := Wait(msg, Button{Verb: VerbRetry, Label: "Retry", Style: "primary"}, Button{Verb: VerbSkip, Label: "Skip (accept the risk)", Style: "danger"})
		r.Note = "not checked: Sentry did not answer"
		r.Say = ":x: The Sentry watch could not check anything: Sentry never answered."
		r.WaitingOn = GateApprover.String()
		return r
	}
	summary := fmt.Sprintf("no new issues in %s", minutes(watch))
	if n > 0 {
		summary = fmt.Sprintf("%s in %s", newIssues(n), minutes(watch))
	}
	if len(partial) > 0 {
		what := "no new issues"
		if n > 0 {
			what = newIssues(n)
		}
		summary = fmt.Sprintf("%s in the %s checked (%s)", what, minutes(covered), strings.Join(partial, "; "))
	}
	r := Done(summary)
	r.Say = ":checkered_flag: Sentry watch over: " + summary + "."
	if len(partial) > 0 {
		r.Say = ":warning: Sentry watch over, but not all of it was checked: " + summary + "."
	}
	return r
}

// minutes says a duration the way people read a watch: "15 minutes",
// "1 minute", "45s" under a minute.
func minutes(d time.Duration) string {
	switch m := int(d.Round(time.Second) / time.Minute); {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case m == 1:
		return "1 minute"
	default:
		return fmt.Sprintf("%d minutes", m)
	}
}

func (s *watchStep) post(x *Exec, w window, is SentryIssue) {
	kind := "New issue"
	if is.Regressed {
		kind = "Regressed issue"
	}
	text := fmt.Sprintf(":rotating_light: *%s in %s* (`%s`): <%s|%s>\n%s · level %s · %d events · %d users",
		kind, w.senv, Escape(is.ShortID), is.Permalink, Escape(oneLine(is.Title, 200)), Escape(oneLine(is.Culprit, 200)), Escape(is.Level), is.Count, is.UserCount)
	x.Offer(text,
		Button{Verb: VerbRollback, Label: "Roll back", Style: "danger"},
		Button{Verb: VerbIncident, Label: "Declare incident", Style: "danger"})
}

func keys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) > n {
		return string([]rune(s)[:n-1]) + "…"
	}
	return s
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// newIssues counts issues as a person would write it.
func newIssues(n int) string {
	if n == 1 {
		return "1 new issue"
	}
	return fmt.Sprintf("%d new issues", n)
}
