package github

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	gh "github.com/google/go-github/v57/github"
)

// Release is a GitHub release. PublishedAt is zero for a draft.
type Release struct {
	ID              int64
	Tag             string
	Name            string
	Body            string
	HTMLURL         string
	Draft           bool
	Prerelease      bool
	CreatedAt       time.Time
	PublishedAt     time.Time
	TargetCommitish string
}

func toRelease(r *gh.RepositoryRelease) *Release {
	return &Release{
		ID:              r.GetID(),
		Tag:             r.GetTagName(),
		Name:            r.GetName(),
		Body:            r.GetBody(),
		HTMLURL:         r.GetHTMLURL(),
		Draft:           r.GetDraft(),
		Prerelease:      r.GetPrerelease(),
		CreatedAt:       r.GetCreatedAt().Time,
		PublishedAt:     r.GetPublishedAt().Time,
		TargetCommitish: r.GetTargetCommitish(),
	}
}

// releases lists every release of repo, drafts included (GitHub shows drafts
// only to credentials with push access).
func (c *Client) releases(ctx context.Context, op, repo string) ([]*gh.RepositoryRelease, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	var all []*gh.RepositoryRelease
	opt := &gh.ListOptions{PerPage: 100}
	for {
		var page []*gh.RepositoryRelease
		var resp *gh.Response
		err := c.call(ctx, op, func() (err error) {
			page, resp, err = c.gh.Repositories.ListReleases(ctx, owner, name, opt)
			return err
		})
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if resp.NextPage == 0 {
			return all, nil
		}
		opt.Page = resp.NextPage
	}
}

// NewestDraft is the most recently created draft release whose tag starts
// with tagPrefix, or nil when there is none. Every page is read because
// GitHub orders drafts among published releases by creation time, and the
// monorepo keeps one draft per app.
func (c *Client) NewestDraft(ctx context.Context, repo, tagPrefix string) (*Release, error) {
	all, err := c.releases(ctx, fmt.Sprintf("looking for the draft %s* release of %s", tagPrefix, repo), repo)
	if err != nil {
		return nil, err
	}
	var best *Release
	for _, r := range all {
		if !r.GetDraft() || !strings.HasPrefix(r.GetTagName(), tagPrefix) {
			continue
		}
		if rel := toRelease(r); best == nil || newer(rel, best, rel.CreatedAt, best.CreatedAt) {
			best = rel
		}
	}
	return best, nil
}

// LatestPublished is the most recently published release (neither draft nor
// prerelease) whose tag starts with tagPrefix, or nil when there is none.
// It is the last good version to roll back to and the "from" of a compare.
func (c *Client) LatestPublished(ctx context.Context, repo, tagPrefix string) (*Release, error) {
	all, err := c.releases(ctx, fmt.Sprintf("looking for the latest published %s* release of %s", tagPrefix, repo), repo)
	if err != nil {
		return nil, err
	}
	var best *Release
	for _, r := range all {
		if r.GetDraft() || r.GetPrerelease() || !strings.HasPrefix(r.GetTagName(), tagPrefix) {
			continue
		}
		rel := toRelease(r)
		if best == nil || newer(rel, best, publishedOrCreated(rel), publishedOrCreated(best)) {
			best = rel
		}
	}
	return best, nil
}

func publishedOrCreated(r *Release) time.Time {
	if !r.PublishedAt.IsZero() {
		return r.PublishedAt
	}
	return r.CreatedAt
}

// newer orders by time, then by tag (Openverse tags embed a sortable UTC
// timestamp), then by id, so that equal timestamps still give one answer.
func newer(a, b *Release, at, bt time.Time) bool {
	if !at.Equal(bt) {
		return at.After(bt)
	}
	if a.Tag != b.Tag {
		return a.Tag > b.Tag
	}
	return a.ID > b.ID
}

// ReleaseByTag is the published release with that tag, or nil when there is
// none. GitHub does not find drafts by tag.
func (c *Client) ReleaseByTag(ctx context.Context, repo, tag string) (*Release, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	var r *gh.RepositoryRelease
	err = c.call(ctx, fmt.Sprintf("reading release %s of %s", tag, repo), func() (err error) {
		r, _, err = c.gh.Repositories.GetReleaseByTag(ctx, owner, name, pathEscape(tag))
		return err
	})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return toRelease(r), nil
}

// Publish turns draft release id into a published release, which starts the
// workflows listening for "release: released". Publishing an already
// published release changes nothing, so a retry after a lost answer is safe.
func (c *Client) Publish(ctx context.Context, repo string, id int64) (*Release, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	var r *gh.RepositoryRelease
	err = c.call(ctx, fmt.Sprintf("publishing release %d of %s", id, repo), func() (err error) {
		r, _, err = c.gh.Repositories.EditRelease(ctx, owner, name, id, &gh.RepositoryRelease{Draft: gh.Bool(false)})
		return err
	})
	if err != nil {
		return nil, err
	}
	return toRelease(r), nil
}

// CompareURL is the web page comparing two tags of repo, for people to
// preview what a release changes. web is the web base (Client.WebURL); empty
// means https://github.com.
func CompareURL(repo, fromTag, toTag string, web string) string {
	if web == "" {
		web = "https://github.com"
	}
	return strings.TrimSuffix(web, "/") + "/" + repo + "/compare/" + escapeRef(fromTag) + "..." + escapeRef(toTag)
}

// escapeRef escapes a ref for a URL path but keeps its slashes, which GitHub
// reads as part of the ref.
func escapeRef(ref string) string {
	return strings.ReplaceAll(url.PathEscape(ref), "%2F", "/")
}
