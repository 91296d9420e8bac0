package github

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	gh "github.com/google/go-github/v57/github"
)

// WorkflowRun is one run of a GitHub Actions workflow. Status is "queued",
// "in_progress" or "completed" (GitHub has a few rarer ones, such as
// "waiting"); Conclusion is empty until the run completes, then "success",
// "failure", "cancelled", …
type WorkflowRun struct {
	ID         int64
	Name       string
	Event      string
	Status     string
	Conclusion string
	HTMLURL    string
	HeadBranch string
	HeadSHA    string
	CreatedAt  time.Time
	// Actor is the login that triggered the run. DisplayTitle is what
	// GitHub shows for it: the workflow's run-name, which may carry the
	// dispatch's inputs, or else the workflow's name.
	Actor        string
	DisplayTitle string
}

// Completed reports whether the run has finished, whatever its conclusion.
func (r WorkflowRun) Completed() bool { return r.Status == "completed" }

func toRun(r *gh.WorkflowRun) WorkflowRun {
	return WorkflowRun{
		ID:         r.GetID(),
		Name:       r.GetName(),
		Event:      r.GetEvent(),
		Status:     r.GetStatus(),
		Conclusion: r.GetConclusion(),
		HTMLURL:    r.GetHTMLURL(),
		HeadBranch: r.GetHeadBranch(),
		HeadSHA:    r.GetHeadSHA(),
		CreatedAt:  r.GetCreatedAt().Time,

		Actor:        r.GetActor().GetLogin(),
		DisplayTitle: r.GetDisplayTitle(),
	}
}

// RunFilter narrows WorkflowRuns. Empty fields do not filter. Branch is the
// run's head branch, which for a release event is the release's tag.
type RunFilter struct {
	Event        string
	Branch       string
	Actor        string
	CreatedAfter time.Time
}

// maxRunPages bounds WorkflowRuns without CreatedAfter: a busy workflow has
// thousands of runs and only the recent ones matter to a deployment.
const maxRunPages = 3

// WorkflowRuns lists runs of workflowFile (its file name under
// .github/workflows) in repo, newest first. Runs created at or after
// CreatedAfter are all returned (GitHub compares whole seconds, so the
// filter is rounded down to the second); without it, at most the newest
// 300.
//
// It is how a run is found after Dispatch or Publish, neither of which
// returns one: filter by event and creation time, and allow for clock skew
// between this machine and GitHub when choosing CreatedAfter.
func (c *Client) WorkflowRuns(ctx context.Context, repo, workflowFile string, f RunFilter) ([]WorkflowRun, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	after := f.CreatedAfter.Truncate(time.Second)
	opt := &gh.ListWorkflowRunsOptions{
		Event:       f.Event,
		Branch:      f.Branch,
		Actor:       f.Actor,
		ListOptions: gh.ListOptions{PerPage: 100},
	}
	if !after.IsZero() {
		opt.Created = ">=" + after.UTC().Format(time.RFC3339)
	}
	op := fmt.Sprintf("listing runs of workflow %s in %s", workflowFile, repo)
	var runs []WorkflowRun
	for pages := 1; ; pages++ {
		var page *gh.WorkflowRuns
		var resp *gh.Response
		err := c.call(ctx, op, func() (err error) {
			page, resp, err = c.gh.Actions.ListWorkflowRunsByFileName(ctx, owner, name, pathEscape(workflowFile), opt)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, r := range page.WorkflowRuns {
			run := toRun(r)
			// GitHub applies these filters; checking again costs nothing and
			// keeps a lenient server (or an Enterprise version that ignores
			// "created") from handing back an older run as the new one.
			if (f.Event != "" && run.Event != f.Event) ||
				(f.Branch != "" && run.HeadBranch != f.Branch) ||
				(f.Actor != "" && !strings.EqualFold(run.Actor, f.Actor)) ||
				(!after.IsZero() && run.CreatedAt.Before(after)) {
				continue
			}
			runs = append(runs, run)
		}
		if resp.NextPage == 0 || (after.IsZero() && pages >= maxRunPages) {
			break
		}
		opt.Page = resp.NextPage
	}
	sort.SliceStable(runs, func(i, j int) bool {
		if !runs[i].CreatedAt.Equal(runs[j].CreatedAt) {
			return runs[i].CreatedAt.After(runs[j].CreatedAt)
		}
		return runs[i].ID > runs[j].ID
	})
	return runs, nil
}

// WorkflowRun reads one run, to follow it until it completes.
func (c *Client) WorkflowRun(ctx context.Context, repo string, id int64) (*WorkflowRun, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	var r *gh.WorkflowRun
	err = c.call(ctx, fmt.Sprintf("reading workflow run %d of %s", id, repo), func() (err error) {
		r, _, err = c.gh.Actions.GetWorkflowRunByID(ctx, owner, name, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	run := toRun(r)
	return &run, nil
}

// Dispatched is what GitHub said about a dispatch. RunID is 0 when GitHub
// did not name the run (an Enterprise Server without return_run_details):
// find it with DispatchedRuns.
type Dispatched struct {
	RunID   int64
	HTMLURL string
}

// Dispatch starts workflowFile on ref with inputs (a workflow_dispatch
// event) and asks GitHub for the run it started ("return_run_details").
// If GitHub refuses that key (400 or 422 naming it: an older Enterprise
// Server), it dispatches once more without it and remembers not to ask
// again; nothing was started by the refused request.
//
// A dispatch is never resent after a timeout, a lost connection or a 5xx
// (see retryTransport): it may have started the workflow. Such an error is
// Ambiguous; look for the run with DispatchedRuns before dispatching again.
func (c *Client) Dispatch(ctx context.Context, repo, workflowFile, ref string, inputs map[string]any) (Dispatched, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return Dispatched{}, err
	}
	op := fmt.Sprintf("starting workflow %s on %s in %s", workflowFile, ref, repo)
	u := fmt.Sprintf("repos/%s/%s/actions/workflows/%s/dispatches", owner, name, pathEscape(workflowFile))
	send := func(details bool) (Dispatched, error) {
		body := map[string]any{"ref": ref, "inputs": inputs}
		if details {
			body["return_run_details"] = true
		}
		var out struct {
			WorkflowRunID int64  `json:"workflow_run_id"`
			RunURL        string `json:"run_url"`
			HTMLURL       string `json:"html_url"`
		}
		err := c.call(ctx, op, func() error {
			req, err := c.gh.NewRequest("POST", u, body)
			if err != nil {
				return err
			}
			// A 204 has no body; go-github then leaves out untouched.
			_, err = c.gh.Do(ctx, req, &out)
			return err
		})
		return Dispatched{RunID: out.WorkflowRunID, HTMLURL: out.HTMLURL}, err
	}
	if !c.noRunDetails.Load() {
		d, err := send(true)
		if !refusesRunDetails(err) {
			return d, err
		}
		c.noRunDetails.Store(true)
	}
	return send(false)
}

// refusesRunDetails reports whether GitHub refused the dispatch because it
// does not know "return_run_details".
func refusesRunDetails(err error) bool {
	code := StatusCode(err)
	if code != 400 && code != 422 {
		return false
	}
	var er *gh.ErrorResponse
	return errors.As(err, &er) && strings.Contains(er.Message, "return_run_details")
}

// DispatchQuery describes the run a dispatch may have started, for finding
// it when the dispatch's answer was lost.
type DispatchQuery struct {
	// Since is when the dispatch was decided (recorded before sending).
	// Runs created earlier are not it; GitHub's clock may differ from
	// ours, which the caller allows for by moving Since back a little.
	Since time.Time
	// Actor is the login that dispatched; empty means Client.Actor.
	Actor string
	// Title is a text the run's display_title carries when the workflow's
	// run-name includes the inputs (for example the image tag). When any
	// candidate's title contains it, only those count; when none does, the
	// workflow has no such run-name and the title says nothing.
	Title string
}

// DispatchedRuns lists the runs of workflowFile that a dispatch matching q
// may have started: event workflow_dispatch, actor q.Actor, created at or
// after q.Since, and, when the run-name carries it, q.Title in the
// display_title. Newest first. One run is the dispatch's; several mean
// something else dispatched too and a person should choose.
func (c *Client) DispatchedRuns(ctx context.Context, repo, workflowFile string, q DispatchQuery) ([]WorkflowRun, error) {
	actor := q.Actor
	if actor == "" {
		var err error
		if actor, err = c.Actor(ctx); err != nil {
			return nil, err
		}
	}
	runs, err := c.WorkflowRuns(ctx, repo, workflowFile, RunFilter{Event: "workflow_dispatch", Actor: actor, CreatedAfter: q.Since})
	if err != nil {
		return nil, err
	}
	return matchTitle(runs, q.Title), nil
}

// matchTitle keeps the runs whose display_title contains title, if any
// does; otherwise all of them.
func matchTitle(runs []WorkflowRun, title string) []WorkflowRun {
	if title == "" {
		return runs
	}
	var titled []WorkflowRun
	for _, r := range runs {
		if strings.Contains(r.DisplayTitle, title) {
			titled = append(titled, r)
		}
	}
	if len(titled) > 0 {
		return titled
	}
	return runs
}
