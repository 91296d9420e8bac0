package github

import (
	"context"
	"fmt"
	"strings"

	gh "github.com/google/go-github/v57/github"
)

// PR is a pull request. Head and Base are branch names; User is the
// author's login.
type PR struct {
	Number  int
	Title   string
	HTMLURL string
	Head    string
	Base    string
	State   string
	User    string
	Draft   bool
}

func toPR(p *gh.PullRequest) *PR {
	return &PR{
		Number:  p.GetNumber(),
		Title:   p.GetTitle(),
		HTMLURL: p.GetHTMLURL(),
		Head:    p.GetHead().GetRef(),
		Base:    p.GetBase().GetRef(),
		State:   p.GetState(),
		User:    p.GetUser().GetLogin(),
		Draft:   p.GetDraft(),
	}
}

// maxOpenPRPages bounds the fallback scan of open pull requests.
const maxOpenPRPages = 10

// OpenPRByHead is the open pull request in repo whose head branch is
// headBranch, or nil when there is none. It asks GitHub with the
// "owner:branch" filter first; when that finds nothing it scans the open
// pull requests, because the filter only matches heads in the owner's
// repository and silently returns nothing for malformed input.
func (c *Client) OpenPRByHead(ctx context.Context, repo, headBranch string) (*PR, error) {
	return c.openPRByHead(ctx, fmt.Sprintf("looking for the open pull request from %s in %s", headBranch, repo), repo, headBranch)
}

func (c *Client) openPRByHead(ctx context.Context, op, repo, headBranch string) (*PR, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	find := func(opt *gh.PullRequestListOptions, maxPages int) (*PR, error) {
		for pages := 1; ; pages++ {
			var prs []*gh.PullRequest
			var resp *gh.Response
			err := c.call(ctx, op, func() (err error) {
				prs, resp, err = c.gh.PullRequests.List(ctx, owner, name, opt)
				return err
			})
			if err != nil {
				return nil, err
			}
			for _, p := range prs {
				if p.GetState() == "open" && p.GetHead().GetRef() == headBranch {
					return toPR(p), nil
				}
			}
			if resp.NextPage == 0 || pages >= maxPages {
				return nil, nil
			}
			opt.Page = resp.NextPage
		}
	}
	pr, err := find(&gh.PullRequestListOptions{State: "open", Head: owner + ":" + headBranch, ListOptions: gh.ListOptions{PerPage: 100}}, 1)
	if pr != nil || err != nil {
		return pr, err
	}
	return find(&gh.PullRequestListOptions{State: "open", ListOptions: gh.ListOptions{PerPage: 100}}, maxOpenPRPages)
}

// Approve approves pull request number with an APPROVE review. A review is
// a POST that is not resent after a 500 (see retryTransport); a duplicate
// approval would be harmless, but a missing one is visible on the PR.
func (c *Client) Approve(ctx context.Context, repo string, number int, body string) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	return c.call(ctx, fmt.Sprintf("approving pull request #%d of %s", number, repo), func() error {
		_, _, err := c.gh.PullRequests.CreateReview(ctx, owner, name, number, &gh.PullRequestReviewRequest{
			Event: gh.String("APPROVE"),
			Body:  gh.String(body),
		})
		return err
	})
}

// CreatePR opens a pull request from head into base. If one is already open
// from head (a retry after a crash, or a POST whose answer was lost), that
// one gets this title, body and base and is returned instead, so calling
// CreatePR again is always safe.
func (c *Client) CreatePR(ctx context.Context, repo, head, base, title, body string) (*PR, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	op := fmt.Sprintf("opening a pull request from %s into %s in %s", head, base, repo)
	existing, err := c.openPRByHead(ctx, op, repo, head)
	if err != nil {
		return nil, err
	}
	if existing == nil {
		var p *gh.PullRequest
		err = c.call(ctx, op, func() (err error) {
			p, _, err = c.gh.PullRequests.Create(ctx, owner, name, &gh.NewPullRequest{
				Title: gh.String(title),
				Head:  gh.String(head),
				Base:  gh.String(base),
				Body:  gh.String(body),
			})
			return err
		})
		if err == nil {
			return toPR(p), nil
		}
		if StatusCode(err) != 422 || !strings.Contains(err.Error(), "already exists") {
			return nil, err
		}
		// Someone (or our own earlier attempt) opened it meanwhile.
		if existing, err = c.openPRByHead(ctx, op, repo, head); err != nil {
			return nil, err
		}
		if existing == nil {
			return nil, c.wrap(op, fmt.Errorf("GitHub says a pull request from %s already exists but none is open", head))
		}
	}
	edit := &gh.PullRequest{Title: gh.String(title), Body: gh.String(body)}
	if existing.Base != base {
		edit.Base = &gh.PullRequestBranch{Ref: gh.String(base)}
	}
	var p *gh.PullRequest
	err = c.call(ctx, fmt.Sprintf("updating pull request #%d of %s", existing.Number, repo), func() (err error) {
		p, _, err = c.gh.PullRequests.Edit(ctx, owner, name, existing.Number, edit)
		return err
	})
	if err != nil {
		return nil, err
	}
	return toPR(p), nil
}
