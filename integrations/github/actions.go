package github

import (
	"context"
	"fmt"
	"sort"
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
	}
}

// RunFilter narrows WorkflowRuns. Empty fields do not filter. Branch is the
// run's head branch, which for a release event is the release's tag.
type RunFilter struct {
	Event        string
	Branch       string
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

// Dispatch starts workflowFile on ref with inputs (a workflow_dispatch
// event). GitHub answers without the run; find it with WorkflowRuns (event
// "workflow_dispatch", created after the call). A dispatch is never resent
// after a 500, so an error may still mean the workflow started: look for
// the run before dispatching again.
func (c *Client) Dispatch(ctx context.Context, repo, workflowFile, ref string, inputs map[string]any) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	return c.call(ctx, fmt.Sprintf("starting workflow %s on %s in %s", workflowFile, ref, repo), func() error {
		_, err := c.gh.Actions.CreateWorkflowDispatchEventByFileName(ctx, owner, name, pathEscape(workflowFile),
			gh.CreateWorkflowDispatchEventRequest{Ref: ref, Inputs: inputs})
		return err
	})
}
