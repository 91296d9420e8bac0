package githubtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DefaultPRUser is the author AddPR gives a pull request that names none:
// Openverse's changelog pull requests are opened by its bot account.
const DefaultPRUser = "openverse-bot"

// PR is a pull request as the test sets it up and reads it back. Head and
// Base are branch names; the head branch is in HeadRepo, which defaults to
// the pull request's own repository (another "owner/name" is a fork).
type PR struct {
	Number    int
	Title     string
	Head      string
	HeadRepo  string
	HeadSHA   string // the head commit; defaults to a stable fake SHA, PushPR moves it
	Base      string
	Body      string
	User      string // author login
	State     string // "open" or "closed"
	Draft     bool
	CreatedAt time.Time
}

// Review is a pull request review. State is "APPROVED",
// "CHANGES_REQUESTED", "COMMENTED" or "PENDING".
type Review struct {
	ID          int64
	User        string
	State       string
	Body        string
	CommitID    string // the head commit the review was made on
	SubmittedAt time.Time
}

type pr struct {
	PR
	id        int64
	updatedAt time.Time
	closedAt  time.Time
	reviews   []Review
}

type publishPR struct {
	after time.Duration
	make  func(Release) PR
}

type pendingPR struct {
	at time.Time
	pr PR
}

// AddPR opens pr in repo and returns its number. User defaults to
// DefaultPRUser, Base to "main", State to "open"; the head and base branches
// are created.
func (s *Server) AddPR(repo string, p PR) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.Head == "" {
		panic("githubtest: AddPR needs a head branch")
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = s.now()
	}
	return s.openPR(s.repo(repo), p, p.CreatedAt).Number
}

// OnPublishPR makes publishing a release (as for OnPublish) open the pull
// request newPR returns, `after` later: the changelog pull request that
// Openverse's release workflow opens once the image is built.
func (s *Server) OnPublishPR(repo string, after time.Duration, newPR func(Release) PR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repo(repo)
	r.onPublishPR = append(r.onPublishPR, publishPR{after: after, make: newPR})
}

// PushPR pushes a new commit to pull request number's head branch and
// returns the new head SHA, as an author updating the pull request after
// someone looked at it.
func (s *Server) PushPR(repo string, number int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.lookup(repo).pr(number)
	if p == nil {
		panic(fmt.Sprintf("githubtest: PushPR: %s has no pull request #%d", repo, number))
	}
	p.HeadSHA = fakeSHA(p.HeadSHA, "pushed")
	p.updatedAt = s.now()
	return p.HeadSHA
}

// PRs returns repo's pull requests by number.
func (s *Server) PRs(repo string) []PR {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(s.now())
	var out []PR
	for _, p := range s.lookup(repo).prs {
		out = append(out, p.PR)
	}
	return out
}

// Reviews returns the reviews of pull request number, oldest first.
func (s *Server) Reviews(repo string, number int) []Review {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.lookup(repo).pr(number); p != nil {
		return append([]Review(nil), p.reviews...)
	}
	return nil
}

func (s *Server) openPR(r *repo, p PR, at time.Time) *pr {
	if p.User == "" {
		p.User = DefaultPRUser
	}
	if p.Base == "" {
		p.Base = r.defaultBranch
	}
	if p.State == "" {
		p.State = "open"
	}
	if p.HeadRepo == "" || strings.EqualFold(p.HeadRepo, r.fullName()) {
		p.HeadRepo = r.fullName()
		r.branches[p.Head] = true
	}
	if p.HeadSHA == "" {
		p.HeadSHA = fakeSHA(p.HeadRepo, p.Head)
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = at
	}
	p.Number = r.nextPR
	r.nextPR++
	r.branches[p.Base] = true
	np := &pr{PR: p, id: s.id(), updatedAt: p.CreatedAt}
	if p.State == "closed" {
		np.closedAt = p.CreatedAt
	}
	r.prs = append(r.prs, np)
	return np
}

func (r *repo) pr(number int) *pr {
	for _, p := range r.prs {
		if p.Number == number {
			return p
		}
	}
	return nil
}

// openPRFor is the open pull request from head in r itself (not a fork).
func (r *repo) openPRFor(head string) *pr {
	for _, p := range r.prs {
		if p.State == "open" && p.Head == head && strings.EqualFold(p.HeadRepo, r.fullName()) {
			return p
		}
	}
	return nil
}

func (s *Server) prJSON(r *repo, p *pr) map[string]any {
	api := fmt.Sprintf("%s/repos/%s/pulls/%d", s.srv.URL, r.fullName(), p.Number)
	branch := func(in *repo, ref, sha string) map[string]any {
		return map[string]any{
			"label": in.owner + ":" + ref,
			"ref":   ref,
			"sha":   sha,
			"user":  map[string]any{"login": in.owner, "id": userID(in.owner), "type": "Organization"},
			"repo":  s.repoJSON(in),
		}
	}
	headRepo := r
	if !strings.EqualFold(p.HeadRepo, r.fullName()) {
		owner, name, _ := strings.Cut(p.HeadRepo, "/")
		headRepo = &repo{owner: owner, name: name, defaultBranch: "main"}
	}
	var closed any
	if !p.closedAt.IsZero() {
		closed = ts(p.closedAt)
	}
	return map[string]any{
		"url":                api,
		"id":                 p.id,
		"node_id":            fmt.Sprintf("PR_fake%d", p.id),
		"html_url":           fmt.Sprintf("%s/%s/pull/%d", s.WebURL(), r.fullName(), p.Number),
		"number":             p.Number,
		"state":              p.State,
		"locked":             false,
		"title":              p.Title,
		"user":               s.userJSON(p.User),
		"body":               p.Body,
		"created_at":         ts(p.CreatedAt),
		"updated_at":         ts(p.updatedAt),
		"closed_at":          closed,
		"merged_at":          nil,
		"draft":              p.Draft,
		"head":               branch(headRepo, p.Head, p.HeadSHA),
		"base":               branch(r, p.Base, fakeSHA(r.fullName(), p.Base)),
		"author_association": "CONTRIBUTOR",
		"merged":             false,
		"review_comments":    0,
		"commits":            1,
	}
}

// listPRs filters by state (default open), head ("owner:branch") and base,
// newest first unless direction=asc.
func (s *Server) listPRs(w http.ResponseWriter, req *http.Request, r *repo) {
	q := req.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	var headOwner, headRef string
	if h := q.Get("head"); h != "" {
		var ok bool
		if headOwner, headRef, ok = strings.Cut(h, ":"); !ok {
			headOwner, headRef = r.owner, h
		}
	}
	var prs []*pr
	for _, p := range r.prs {
		switch {
		case state != "all" && p.State != state,
			headRef != "" && (!strings.EqualFold(headOwner, strings.Split(p.HeadRepo, "/")[0]) || p.Head != headRef),
			q.Get("base") != "" && p.Base != q.Get("base"):
			continue
		}
		prs = append(prs, p)
	}
	asc := q.Get("direction") == "asc"
	sort.SliceStable(prs, func(i, j int) bool {
		if asc {
			return prs[i].Number < prs[j].Number
		}
		return prs[i].Number > prs[j].Number
	})
	lo, hi := paginate(w, req, len(prs))
	out := []any{}
	for _, p := range prs[lo:hi] {
		out = append(out, s.prJSON(r, p))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getPR(w http.ResponseWriter, req *http.Request, r *repo) {
	n, _ := strconv.Atoi(req.PathValue("number"))
	p := r.pr(n)
	if p == nil {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, s.prJSON(r, p))
}

// createPR refuses what GitHub refuses: missing fields, a head or base that
// is not a branch, no difference, and a second open pull request from the
// same head.
func (s *Server) createPR(w http.ResponseWriter, req *http.Request, r *repo) {
	var in struct {
		Title string `json:"title"`
		Head  string `json:"head"`
		Base  string `json:"base"`
		Body  string `json:"body"`
		Draft bool   `json:"draft"`
	}
	if err := json.NewDecoder(req.Body).Decode(&in); err != nil {
		badJSON(w)
		return
	}
	for _, f := range [][2]string{{"title", in.Title}, {"head", in.Head}, {"base", in.Base}} {
		if f[1] == "" {
			validationFailed(w, map[string]any{"resource": "PullRequest", "code": "missing_field", "field": f[0]})
			return
		}
	}
	head := in.Head
	if owner, ref, ok := strings.Cut(in.Head, ":"); ok {
		if !strings.EqualFold(owner, r.owner) {
			validationFailed(w, map[string]any{"resource": "PullRequest", "field": "head", "code": "invalid"})
			return
		}
		head = ref
	}
	switch {
	case !r.branches[head]:
		validationFailed(w, map[string]any{"resource": "PullRequest", "field": "head", "code": "invalid"})
		return
	case !r.branches[in.Base]:
		validationFailed(w, map[string]any{"resource": "PullRequest", "field": "base", "code": "invalid"})
		return
	case head == in.Base:
		validationFailed(w, map[string]any{"resource": "PullRequest", "code": "custom",
			"message": fmt.Sprintf("No commits between %s and %s", in.Base, head)})
		return
	case r.openPRFor(head) != nil:
		validationFailed(w, map[string]any{"resource": "PullRequest", "code": "custom",
			"message": fmt.Sprintf("A pull request already exists for %s:%s.", r.owner, head)})
		return
	}
	p := s.openPR(r, PR{Title: in.Title, Head: head, Base: in.Base, Body: in.Body, Draft: in.Draft, User: s.user}, s.now())
	writeJSON(w, http.StatusCreated, s.prJSON(r, p))
}

func (s *Server) editPR(w http.ResponseWriter, req *http.Request, r *repo) {
	n, _ := strconv.Atoi(req.PathValue("number"))
	p := r.pr(n)
	if p == nil {
		notFound(w)
		return
	}
	var in struct {
		Title *string `json:"title"`
		Body  *string `json:"body"`
		State *string `json:"state"`
		Base  *string `json:"base"`
	}
	if err := json.NewDecoder(req.Body).Decode(&in); err != nil {
		badJSON(w)
		return
	}
	if in.State != nil && *in.State != "open" && *in.State != "closed" {
		validationFailed(w, map[string]any{"resource": "PullRequest", "field": "state", "code": "invalid"})
		return
	}
	if in.Base != nil && !r.branches[*in.Base] {
		validationFailed(w, map[string]any{"resource": "PullRequest", "field": "base", "code": "invalid"})
		return
	}
	if in.State != nil && *in.State == "open" && p.State == "closed" {
		if other := r.openPRFor(p.Head); other != nil {
			validationFailed(w, map[string]any{"resource": "PullRequest", "code": "custom",
				"message": fmt.Sprintf("A pull request already exists for %s:%s.", r.owner, p.Head)})
			return
		}
	}
	now := s.now()
	if in.Title != nil {
		p.Title = *in.Title
	}
	if in.Body != nil {
		p.Body = *in.Body
	}
	if in.Base != nil {
		p.Base = *in.Base
	}
	if in.State != nil && *in.State != p.State {
		p.State = *in.State
		p.closedAt = time.Time{}
		if p.State == "closed" {
			p.closedAt = now
		}
	}
	p.updatedAt = now
	writeJSON(w, http.StatusOK, s.prJSON(r, p))
}

func (s *Server) reviewJSON(r *repo, p *pr, rv Review) map[string]any {
	var submitted any
	if !rv.SubmittedAt.IsZero() {
		submitted = ts(rv.SubmittedAt)
	}
	return map[string]any{
		"id":                 rv.ID,
		"node_id":            fmt.Sprintf("PRR_fake%d", rv.ID),
		"user":               s.userJSON(rv.User),
		"body":               rv.Body,
		"state":              rv.State,
		"html_url":           fmt.Sprintf("%s/%s/pull/%d#pullrequestreview-%d", s.WebURL(), r.fullName(), p.Number, rv.ID),
		"pull_request_url":   fmt.Sprintf("%s/repos/%s/pulls/%d", s.srv.URL, r.fullName(), p.Number),
		"submitted_at":       submitted,
		"commit_id":          rv.CommitID,
		"author_association": "MEMBER",
	}
}

func (s *Server) listReviews(w http.ResponseWriter, req *http.Request, r *repo) {
	n, _ := strconv.Atoi(req.PathValue("number"))
	p := r.pr(n)
	if p == nil {
		notFound(w)
		return
	}
	lo, hi := paginate(w, req, len(p.reviews))
	out := []any{}
	for _, rv := range p.reviews[lo:hi] {
		out = append(out, s.reviewJSON(r, p, rv))
	}
	writeJSON(w, http.StatusOK, out)
}

// createReview refuses, as GitHub does, an author approving or requesting
// changes on their own pull request, a comment or change request without a
// body, and a commit_id that is not the pull request's head. Without
// commit_id the review is on the current head.
func (s *Server) createReview(w http.ResponseWriter, req *http.Request, r *repo) {
	n, _ := strconv.Atoi(req.PathValue("number"))
	p := r.pr(n)
	if p == nil {
		notFound(w)
		return
	}
	var in struct {
		Body     string `json:"body"`
		Event    string `json:"event"`
		CommitID string `json:"commit_id"`
	}
	if err := json.NewDecoder(req.Body).Decode(&in); err != nil {
		badJSON(w)
		return
	}
	states := map[string]string{"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED", "": "PENDING"}
	state, ok := states[in.Event]
	if !ok {
		validationFailed(w, map[string]any{"resource": "PullRequestReview", "field": "event", "code": "invalid"})
		return
	}
	own := strings.EqualFold(p.User, s.user)
	switch {
	case own && in.Event == "APPROVE":
		unprocessable(w, "Can not approve your own pull request")
		return
	case own && in.Event == "REQUEST_CHANGES":
		unprocessable(w, "Can not request changes on your own pull request")
		return
	case in.Body == "" && (in.Event == "REQUEST_CHANGES" || in.Event == "COMMENT"):
		unprocessable(w, "Body is required when using REQUEST_CHANGES or COMMENT events")
		return
	case in.CommitID != "" && in.CommitID != p.HeadSHA:
		unprocessable(w, "Commit "+in.CommitID+" is not the head of the pull request")
		return
	}
	rv := Review{ID: s.id(), User: s.user, State: state, Body: in.Body, CommitID: p.HeadSHA}
	if state != "PENDING" {
		rv.SubmittedAt = s.now()
	}
	p.reviews = append(p.reviews, rv)
	writeJSON(w, http.StatusOK, s.reviewJSON(r, p, rv))
}
