package github

import (
	"context"
	"time"

	"github.com/deploybot/deploybot/steps"
)

// Steps adapts the client to what the deploy steps ask of GitHub.
type Steps struct{ *Client }

var _ steps.GitHub = Steps{}

func release(r *Release) *steps.Release {
	if r == nil {
		return nil
	}
	return &steps.Release{ID: r.ID, Tag: r.Tag, Name: r.Name, Body: r.Body, HTMLURL: r.HTMLURL, Draft: r.Draft, PublishedAt: r.PublishedAt}
}

func (s Steps) NewestDraft(ctx context.Context, repo, prefix string) (*steps.Release, error) {
	r, err := s.Client.NewestDraft(ctx, repo, prefix)
	return release(r), err
}

func (s Steps) LatestPublished(ctx context.Context, repo, prefix string) (*steps.Release, error) {
	r, err := s.Client.LatestPublished(ctx, repo, prefix)
	return release(r), err
}

func (s Steps) ReleaseByTag(ctx context.Context, repo, tag string) (*steps.Release, error) {
	r, err := s.Client.ReleaseByTag(ctx, repo, tag)
	return release(r), err
}

func (s Steps) Publish(ctx context.Context, repo string, id int64) (*steps.Release, error) {
	r, err := s.Client.Publish(ctx, repo, id)
	return release(r), err
}

func (s Steps) CompareURL(repo, from, to string) string {
	return CompareURL(repo, from, to, s.Client.WebURL())
}

func run(r *WorkflowRun) *steps.WorkflowRun {
	if r == nil {
		return nil
	}
	return &steps.WorkflowRun{ID: r.ID, Event: r.Event, Status: r.Status, Conclusion: r.Conclusion, HTMLURL: r.HTMLURL, HeadBranch: r.HeadBranch, CreatedAt: r.CreatedAt,
		Actor: r.Actor, DisplayTitle: r.DisplayTitle}
}

func (s Steps) WorkflowRuns(ctx context.Context, repo, file string, f steps.RunFilter) ([]steps.WorkflowRun, error) {
	rs, err := s.Client.WorkflowRuns(ctx, repo, file, RunFilter{Event: f.Event, Branch: f.Branch, CreatedAfter: f.CreatedAfter})
	out := make([]steps.WorkflowRun, len(rs))
	for i := range rs {
		out[i] = *run(&rs[i])
	}
	return out, err
}

func (s Steps) WorkflowRun(ctx context.Context, repo string, id int64) (*steps.WorkflowRun, error) {
	r, err := s.Client.WorkflowRun(ctx, repo, id)
	return run(r), err
}

func pr(p *PR) *steps.PR {
	if p == nil {
		return nil
	}
	return &steps.PR{Number: p.Number, Title: p.Title, HTMLURL: p.HTMLURL, User: p.User, HeadRepo: p.HeadRepo, HeadSHA: p.HeadSHA}
}

func (s Steps) PRFrom(ctx context.Context, repo, head, author string) (*steps.PR, []steps.IgnoredPR, error) {
	p, ignored, err := s.Client.PRFrom(ctx, repo, head, author)
	out := make([]steps.IgnoredPR, len(ignored))
	for i := range ignored {
		out[i] = steps.IgnoredPR{PR: *pr(&ignored[i].PR), Why: ignored[i].Why}
	}
	return pr(p), out, err
}

func (s Steps) Approve(ctx context.Context, repo string, number int, headSHA, body string) (steps.ReviewResult, error) {
	a, err := s.Client.Approve(ctx, repo, number, headSHA, body)
	return steps.ReviewResult{Already: a.Already, MovedTo: a.MovedTo}, err
}

func (s Steps) Dispatch(ctx context.Context, repo, file, ref string, inputs map[string]any) (int64, error) {
	d, err := s.Client.Dispatch(ctx, repo, file, ref, inputs)
	return d.RunID, err
}

func (s Steps) DispatchedRuns(ctx context.Context, repo, file string, since time.Time, title string) ([]steps.WorkflowRun, error) {
	rs, err := s.Client.DispatchedRuns(ctx, repo, file, DispatchQuery{Since: since, Title: title})
	out := make([]steps.WorkflowRun, len(rs))
	for i := range rs {
		out[i] = *run(&rs[i])
	}
	return out, err
}

func (s Steps) CreatePR(ctx context.Context, repo, head, base, title, body string) (*steps.PR, error) {
	p, err := s.Client.CreatePR(ctx, repo, head, base, title, body)
	return pr(p), err
}

func (s Steps) ImageTag(releaseTag, releasePrefix, imagePrefix string) (string, error) {
	return ImageTag(releaseTag, releasePrefix, imagePrefix)
}
