package sentry

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Issue is a Sentry issue (a group of similar events) as listed for a time
// window and environment.
type Issue struct {
	ID        string
	ShortID   string // e.g. INGESTION-SERVER-1A
	Title     string // from outside: escape before showing in Slack
	Culprit   string
	Permalink string
	Level     string // error, warning, fatal, …
	Status    string // unresolved, resolved, ignored
	Substatus string // new, ongoing, escalating, regressed, archived_…; empty on old Sentry
	Count     int64  // events; Sentry sends it as a string
	UserCount int
	FirstSeen time.Time
	LastSeen  time.Time
	// Regressed: Sentry considers the issue a regression, i.e. it was
	// resolved and has happened again.
	Regressed bool
}

// maxPages bounds cursor paging (100 issues a page) against a server whose
// cursor never ends; hitting it is an error, never a silent partial list.
const maxPages = 100

// endSlack extends the query window past our clock, so events stamped by a
// server whose clock runs a little ahead are not cut off.
const endSlack = 5 * time.Minute

// Issues lists the issues of project (slug or numeric id) with events in
// environment (all environments when empty) since the given time, in every
// status, most recently seen first.
func (c *Client) Issues(ctx context.Context, project, environment string, since time.Time) ([]Issue, error) {
	if since.IsZero() {
		return nil, &Error{msg: "sentry issues: a start time is required"}
	}
	pid, err := c.projectID(ctx, project)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Set("project", pid)
	if environment != "" {
		q.Set("environment", environment)
	}
	end := c.now().Add(endSlack)
	if !end.After(since) {
		end = since.Add(endSlack)
	}
	q.Set("start", formatTime(since))
	q.Set("end", formatTime(end))
	// Sentry applies is:unresolved when query is absent; an issue that
	// was resolved or archived and then seen again after a deploy matters.
	q.Set("query", "")
	q.Set("sort", "date")
	q.Set("limit", "100")

	var out []Issue
	seen := map[string]bool{}
	err = c.paginate(ctx, c.orgPath("issues/"), q, func(r *response) error {
		var page []issueJSON
		if err := c.decode(r, "the issue list", &page); err != nil {
			return err
		}
		for _, j := range page {
			if seen[j.ID] {
				continue
			}
			seen[j.ID] = true
			out = append(out, j.issue())
		}
		return nil
	}, func(r *response) error {
		if r.status == http.StatusNotFound {
			return &Error{Kind: ErrNotFound, Status: r.status, msg: fmt.Sprintf(
				"sentry organisation %q or project %s not found (404)%s", c.org, project, c.detailSuffix(r.body))}
		}
		return c.statusError(r, "list issues")
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// NewIssues is what a deploy may have caused: issues first seen since the
// given time, and regressions seen since then. Regressions that happened
// earlier but are seen again are included too, because the list API does
// not say when an issue regressed and a recurring regression after a
// deploy deserves a look anyway.
func (c *Client) NewIssues(ctx context.Context, project, environment string, since time.Time) ([]Issue, error) {
	all, err := c.Issues(ctx, project, environment, since)
	if err != nil {
		return nil, err
	}
	var out []Issue
	for _, is := range all {
		if !is.FirstSeen.Before(since) || is.Regressed {
			out = append(out, is)
		}
	}
	return out, nil
}

// paginate GETs path and each following page while the Link header's next
// relation says results="true". The cursor is sent on our own URL rather
// than following the Link URL, which a proxy in front of Sentry may have
// rewritten to an address we cannot reach.
func (c *Client) paginate(ctx context.Context, path string, q url.Values, page func(*response) error, fail func(*response) error) error {
	for n := 0; ; n++ {
		if n == maxPages {
			return &Error{msg: fmt.Sprintf("sentry kept paging /api/0/%s past %d pages", path, maxPages)}
		}
		r, err := c.do(ctx, http.MethodGet, path, q, nil)
		if err != nil {
			return err
		}
		if r.status != http.StatusOK {
			return fail(r)
		}
		if err := page(r); err != nil {
			return err
		}
		next, ok := nextCursor(r.header.Values("Link"))
		if !ok {
			return nil
		}
		if q.Get("cursor") == next {
			return &Error{msg: fmt.Sprintf("sentry returned the same cursor twice for /api/0/%s", path)}
		}
		q.Set("cursor", next)
	}
}

type issueJSON struct {
	ID           string    `json:"id"`
	ShortID      string    `json:"shortId"`
	Title        string    `json:"title"`
	Culprit      string    `json:"culprit"`
	Permalink    string    `json:"permalink"`
	Level        string    `json:"level"`
	Status       string    `json:"status"`
	Substatus    string    `json:"substatus"`
	Count        flexInt   `json:"count"`
	UserCount    flexInt   `json:"userCount"`
	FirstSeen    time.Time `json:"firstSeen"`
	LastSeen     time.Time `json:"lastSeen"`
	IsRegression bool      `json:"isRegression"`
}

func (j issueJSON) issue() Issue {
	return Issue{
		ID: j.ID, ShortID: j.ShortID, Title: j.Title, Culprit: j.Culprit, Permalink: j.Permalink,
		Level: j.Level, Status: j.Status, Substatus: j.Substatus,
		Count: int64(j.Count), UserCount: int(j.UserCount),
		FirstSeen: j.FirstSeen.UTC(), LastSeen: j.LastSeen.UTC(),
		// Sentry marks a regression with substatus "regressed" on an
		// unresolved issue; some payloads (webhooks, older servers) carry
		// isRegression instead.
		Regressed: (j.Status == "unresolved" && j.Substatus == "regressed") || j.IsRegression,
	}
}

// flexInt accepts a number or a numeric string, because Sentry sends
// "count" as a string (it can exceed JavaScript's safe integers) and
// "userCount" as a number.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	s := strings.Trim(string(b), `"`)
	if s == "" {
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %s", truncate(string(b), 40))
	}
	*f = flexInt(n)
	return nil
}

// formatTime writes a UTC ISO 8601 time with microseconds, which every
// Sentry version parses (old ones ignore the zone and assume UTC).
func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
}

// projectID returns the numeric id the issues endpoint filters on.
func (c *Client) projectID(ctx context.Context, ref string) (string, error) {
	if isNumeric(ref) {
		return ref, nil
	}
	p, err := c.lookupProject(ctx, ref)
	return p.ID, err
}

// projectSlug returns the slug that release creation takes.
func (c *Client) projectSlug(ctx context.Context, ref string) (string, error) {
	if !isNumeric(ref) {
		return ref, nil
	}
	p, err := c.lookupProject(ctx, ref)
	return p.Slug, err
}

func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// lookupProject finds a project by slug or id in the organisation's project
// list, which is cached: project ids never change, and a miss re-reads the
// list in case the project was created since.
func (c *Client) lookupProject(ctx context.Context, ref string) (project, error) {
	if ref == "" {
		return project{}, &Error{msg: "sentry project is empty"}
	}
	c.mu.Lock()
	p, ok := c.projects[ref]
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	found := map[string]project{}
	q := url.Values{}
	q.Set("per_page", "100")
	err := c.paginate(ctx, c.orgPath("projects/"), q, func(r *response) error {
		var page []struct {
			ID   flexInt `json:"id"`
			Slug string  `json:"slug"`
		}
		if err := c.decode(r, "the project list", &page); err != nil {
			return err
		}
		for _, j := range page {
			p := project{ID: strconv.FormatInt(int64(j.ID), 10), Slug: j.Slug}
			found[p.ID], found[p.Slug] = p, p
		}
		return nil
	}, func(r *response) error {
		if r.status == http.StatusNotFound {
			return &Error{Kind: ErrNotFound, Status: r.status,
				msg: fmt.Sprintf("sentry organisation %q not found (404)%s", c.org, c.detailSuffix(r.body))}
		}
		return c.statusError(r, "list the organisation's projects")
	})
	if err != nil {
		return project{}, err
	}
	c.mu.Lock()
	for k, v := range found {
		c.projects[k] = v
	}
	c.mu.Unlock()
	if p, ok := found[ref]; ok {
		return p, nil
	}
	return project{}, &Error{Kind: ErrNotFound, msg: fmt.Sprintf("sentry project %s not found in organisation %q", ref, c.org)}
}

// link is one entry of a Link header as Sentry writes it:
// <url>; rel="next"; results="true"; cursor="0:100:0".
type link struct {
	url    string
	params map[string]string
}

// nextCursor returns the cursor of the next page, if Sentry says there is
// one with results.
func nextCursor(headers []string) (string, bool) {
	for _, l := range parseLinks(strings.Join(headers, ", ")) {
		if l.params["rel"] != "next" {
			continue
		}
		if l.params["results"] != "true" {
			return "", false
		}
		if cur := l.params["cursor"]; cur != "" {
			return cur, true
		}
		if u, err := url.Parse(l.url); err == nil {
			if cur := u.Query().Get("cursor"); cur != "" {
				return cur, true
			}
		}
		return "", false
	}
	return "", false
}

// parseLinks reads an RFC 8288 Link header, keeping quoted parameter values
// intact even if they hold commas or semicolons.
func parseLinks(h string) []link {
	var out []link
	for {
		i := strings.IndexByte(h, '<')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(h[i:], '>')
		if j < 0 {
			return out
		}
		l := link{url: h[i+1 : i+j], params: map[string]string{}}
		h = h[i+j+1:]
		for {
			h = strings.TrimLeft(h, " \t")
			if !strings.HasPrefix(h, ";") {
				break
			}
			h = strings.TrimLeft(h[1:], " \t")
			k := 0
			for k < len(h) && h[k] != '=' && h[k] != ';' && h[k] != ',' {
				k++
			}
			name := strings.ToLower(strings.TrimSpace(h[:k]))
			h = h[k:]
			val := ""
			if strings.HasPrefix(h, "=") {
				h = strings.TrimLeft(h[1:], " \t")
				if strings.HasPrefix(h, `"`) {
					end := strings.IndexByte(h[1:], '"')
					if end < 0 {
						val, h = h[1:], ""
					} else {
						val, h = h[1:end+1], h[end+2:]
					}
				} else {
					k := 0
					for k < len(h) && h[k] != ';' && h[k] != ',' {
						k++
					}
					val, h = strings.TrimSpace(h[:k]), h[k:]
				}
			}
			if name != "" {
				l.params[name] = val
			}
		}
		out = append(out, l)
	}
}
