package github

import (
	"context"
	"fmt"
	"strings"

	gh "github.com/google/go-github/v57/github"
)

// PR is a pull request. Head and Base are branch names; HeadRepo is the
// "owner/name" the head branch lives in (another repository for a fork's
// pull request) and HeadSHA its commit; User is the author's login.
type PR struct {
	Number   int
	Title    string
	HTMLURL  string
	Head     string
	HeadRepo string
	HeadSHA  string
	Base     string
	State    string
	User     string
	Draft    bool
}

func toPR(p *gh.PullRequest) *PR {
	return &PR{
		Number:   p.GetNumber(),
		Title:    p.GetTitle(),
		HTMLURL:  p.GetHTMLURL(),
		Head:     p.GetHead().GetRef(),
		HeadRepo: p.GetHead().GetRepo().GetFullName(),
		HeadSHA:  p.GetHead().GetSHA(),
		Base:     p.GetBase().GetRef(),
		State:    p.GetState(),
		User:     p.GetUser().GetLogin(),
		Draft:    p.GetDraft(),
	}
}

// maxOpenPRPages bounds the fallback scan of open pull requests.
const maxOpenPRPages = 10

// openPRByHead is the open pull request in repo whose head branch is
// headBranch in repo itself, or nil when there is none. A fork's pull
// request from a branch of the same name is never it. It asks GitHub with
// the "owner:branch" filter first; when that finds nothing it scans the
// open pull requests, because the filter silently returns nothing for
// malformed input.
func (c *Client) openPRByHead(ctx context.Context, op, repo, headBranch string) (*PR, error) {
	owner, _, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	var found *PR
	own := func(p *gh.PullRequest) bool {
		if p.GetHead().GetRef() == headBranch && strings.EqualFold(p.GetHead().GetRepo().GetFullName(), repo) {
			found = toPR(p)
		}
		return found != nil
	}
	if err := c.eachOpenPR(ctx, op, repo, owner+":"+headBranch, 1, own); err != nil || found != nil {
		return found, err
	}
	return found, c.eachOpenPR(ctx, op, repo, "", maxOpenPRPages, own)
}

// OpenPRsByHead lists every open pull request of repo whose head branch is
// named headBranch, in whatever repository: the pull request of repo's own
// branch and any fork's pull request from a branch of the same name. The
// caller decides which to trust (see HeadRepo and User).
func (c *Client) OpenPRsByHead(ctx context.Context, repo, headBranch string) ([]PR, error) {
	var out []PR
	err := c.eachOpenPR(ctx, fmt.Sprintf("looking for open pull requests from %s in %s", headBranch, repo), repo, "", maxOpenPRPages,
		func(p *gh.PullRequest) bool {
			if p.GetHead().GetRef() == headBranch {
				out = append(out, *toPR(p))
			}
			return false
		})
	return out, err
}

// eachOpenPR pages through the open pull requests of repo (those from head,
// "owner:branch", when set), at most maxPages pages, until visit says stop.
func (c *Client) eachOpenPR(ctx context.Context, op, repo, head string, maxPages int, visit func(*gh.PullRequest) (stop bool)) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	opt := &gh.PullRequestListOptions{State: "open", Head: head, ListOptions: gh.ListOptions{PerPage: 100}}
	for pages := 1; ; pages++ {
		var prs []*gh.PullRequest
		var resp *gh.Response
		err := c.call(ctx, op, func() (err error) {
			prs, resp, err = c.gh.PullRequests.List(ctx, owner, name, opt)
			return err
		})
		if err != nil {
			return err
		}
		for _, p := range prs {
			if p.GetState() == "open" && visit(p) {
				return nil
			}
		}
		if resp.NextPage == 0 || pages >= maxPages {
			return nil
		}
		opt.Page = resp.NextPage
	}
}

// Ignored is an open pull request from the expected branch that is not
// trusted, and why.
type Ignored struct {
	PR  PR
	Why string
}

// PRFrom is the open pull request of repo from its own branch headBranch
// opened by author (a login, compared without regard to case), or nil.
// Open pull requests from a branch of that name that fail either test, a
// fork's or another author's, are returned as ignored, so people can be
// told why they are not used: anyone can open a pull request from a fork
// with any branch name, and approving it would approve their changes.
func (c *Client) PRFrom(ctx context.Context, repo, headBranch, author string) (*PR, []Ignored, error) {
	prs, err := c.OpenPRsByHead(ctx, repo, headBranch)
	if err != nil {
		return nil, nil, err
	}
	var found *PR
	var ignored []Ignored
	for i := range prs {
		p := prs[i]
		switch {
		case !strings.EqualFold(p.HeadRepo, repo):
			ignored = append(ignored, Ignored{p, fmt.Sprintf("its branch is in %s, not in %s", p.HeadRepo, repo)})
		case !strings.EqualFold(p.User, author):
			ignored = append(ignored, Ignored{p, fmt.Sprintf("it was opened by %s, not by %s", p.User, author)})
		case found == nil:
			found = &p
		}
	}
	return found, ignored, nil
}

// PR reads pull request number of repo.
func (c *Client) PR(ctx context.Context, repo string, number int) (*PR, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	var p *gh.PullRequest
	err = c.call(ctx, fmt.Sprintf("reading pull request #%d of %s", number, repo), func() (err error) {
		p, _, err = c.gh.PullRequests.Get(ctx, owner, name, number)
		return err
	})
	if err != nil {
		return nil, err
	}
	return toPR(p), nil
}

// Approval is what Approve did.
type Approval struct {
	// Already: our approval of that commit was there before this call
	// (an earlier attempt whose answer was lost, or a restart).
	Already bool
	// MovedTo is the pull request's new head when it is no longer the
	// commit that was to be approved; nothing was approved then.
	MovedTo string
}

// effectAttempts bounds how many times a non-idempotent effect (a review,
// a pull request) is attempted when its answers are lost; each attempt
// after the first is made only after looking and not finding the effect.
const effectAttempts = 3

// Approve approves pull request number with an APPROVE review pinned to
// headSHA (the commit that was shown to the approver), unless that is no
// longer its head (MovedTo) or our approval of headSHA is already there
// (Already). Looking first makes a retry after a crash or a lost answer
// never approve twice; an ambiguous failure (a 5xx, a dropped connection)
// is followed by another look before another try.
func (c *Client) Approve(ctx context.Context, repo string, number int, headSHA, body string) (Approval, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return Approval{}, err
	}
	if headSHA == "" {
		return Approval{}, fmt.Errorf("github: approving pull request #%d of %s: no head commit to pin the approval to", number, repo)
	}
	actor, err := c.Actor(ctx)
	if err != nil {
		return Approval{}, err
	}
	op := fmt.Sprintf("approving pull request #%d of %s", number, repo)
	for attempt := 1; ; attempt++ {
		p, err := c.PR(ctx, repo, number)
		if err != nil {
			return Approval{}, err
		}
		if p.HeadSHA != headSHA {
			return Approval{MovedTo: p.HeadSHA}, nil
		}
		found, err := c.approvedBy(ctx, owner, name, number, actor, headSHA)
		if err != nil {
			return Approval{}, err
		}
		if found {
			return Approval{Already: attempt == 1}, nil
		}
		err = c.call(ctx, op, func() error {
			_, _, err := c.gh.PullRequests.CreateReview(ctx, owner, name, number, &gh.PullRequestReviewRequest{
				CommitID: gh.String(headSHA),
				Event:    gh.String("APPROVE"),
				Body:     gh.String(body),
			})
			return err
		})
		if err == nil {
			return Approval{}, nil
		}
		if !Ambiguous(err) || attempt >= effectAttempts || ctx.Err() != nil {
			return Approval{}, err
		}
		if serr := c.clock.Sleep(ctx, c.backoff); serr != nil {
			return Approval{}, err
		}
	}
}

// approvedBy reports whether actor's APPROVE review of commit sha is on the
// pull request.
func (c *Client) approvedBy(ctx context.Context, owner, name string, number int, actor, sha string) (bool, error) {
	opt := &gh.ListOptions{PerPage: 100}
	for {
		var rs []*gh.PullRequestReview
		var resp *gh.Response
		err := c.call(ctx, fmt.Sprintf("reading the reviews of pull request #%d of %s/%s", number, owner, name), func() (err error) {
			rs, resp, err = c.gh.PullRequests.ListReviews(ctx, owner, name, number, opt)
			return err
		})
		if err != nil {
			return false, err
		}
		for _, r := range rs {
			if r.GetState() == "APPROVED" && r.GetCommitID() == sha && strings.EqualFold(r.GetUser().GetLogin(), actor) {
				return true, nil
			}
		}
		if resp.NextPage == 0 {
			return false, nil
		}
		opt.Page = resp.NextPage
	}
}

// CreatePR opens a pull request from head, a branch of repo itself, into
// base. If one is already open from that branch (a retry after a crash, or
// a POST whose answer was lost), that one gets this title, body and base
// and is returned instead, so calling CreatePR again is always safe. A
// fork's pull request from a branch of the same name is never reused. After
// an ambiguous failure it looks again before trying again.
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
	for attempt := 1; existing == nil; attempt++ {
		var p *gh.PullRequest
		err = c.call(ctx, op, func() (err error) {
			p, _, err = c.gh.PullRequests.Create(ctx, owner, name, &gh.NewPullRequest{
				Title: gh.String(title),
				// "owner:branch" names the branch in repo itself, never a
				// fork's branch of the same name.
				Head: gh.String(owner + ":" + head),
				Base: gh.String(base),
				Body: gh.String(body),
			})
			return err
		})
		if err == nil {
			return toPR(p), nil
		}
		if Ambiguous(err) && attempt < effectAttempts && ctx.Err() == nil {
			// The pull request may exist now: look before trying again.
			if serr := c.clock.Sleep(ctx, c.backoff); serr != nil {
				return nil, err
			}
			if existing, err = c.openPRByHead(ctx, op, repo, head); err != nil {
				return nil, err
			}
			continue
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
