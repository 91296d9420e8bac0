package github

import (
	"context"

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
	return &steps.WorkflowRun{ID: r.ID, Event: r.Event, Status: r.Status, Conclusion: r.Conclusion, HTMLURL: r.HTMLURL, HeadBranch: r.HeadBranch, CreatedAt: r.CreatedAt}
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
	return &steps.PR{Number: p.Number, Title: p.Title, HTMLURL: p.HTMLURL, User: p.User}
}

func (s Steps) OpenPRByHead(ctx context.Context, repo, head string) (*steps.PR, error) {
	p, err := s.Client.OpenPRByHead(ctx, repo, head)
	return pr(p), err
}

func (s Steps) CreatePR(ctx context.Context, repo, head, base, title, body string) (*steps.PR, error) {
	p, err := s.Client.CreatePR(ctx, repo, head, base, title, body)
	return pr(p), err
}

func (s Steps) ImageTag(releaseTag, releasePrefix, imagePrefix string) (string, error) {
	return ImageTag(releaseTag, releasePrefix, imagePrefix)
}
