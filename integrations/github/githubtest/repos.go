package githubtest

import (
	"net/http"
	"strings"
	"time"
)

// repo is one repository's state.
type repo struct {
	owner, name   string
	defaultBranch string
	branches      map[string]bool
	releases      []*Release
	workflows     map[string]*workflow // by file name
	runs          []*Run
	dispatches    map[string][]Dispatch // by workflow file
	prs           []*pr
	nextPR        int
	onPublishPR   []publishPR
	pendingPRs    []pendingPR
}

func (r *repo) fullName() string { return r.owner + "/" + r.name }

// AddRepo makes repo ("owner/name") exist with a default branch "main".
// Every other setup method does this implicitly; requests for a repository
// that was never set up answer 404 like a private repository you cannot
// see.
func (s *Server) AddRepo(repo string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repo(repo)
}

// AddRef creates branch in repo, so that pull requests can be opened from
// it and workflows dispatched on it.
func (s *Server) AddRef(repo, branch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repo(repo).branches[strings.TrimPrefix(branch, "refs/heads/")] = true
}

// repo returns the state of full name repo, creating it. Callers hold s.mu.
func (s *Server) repo(full string) *repo {
	key := strings.ToLower(full)
	if r, ok := s.repos[key]; ok {
		return r
	}
	owner, name, ok := strings.Cut(full, "/")
	if !ok || owner == "" || name == "" {
		panic("githubtest: repository " + full + " is not owner/name")
	}
	r := &repo{
		owner: owner, name: name,
		defaultBranch: "main",
		branches:      map[string]bool{"main": true},
		workflows:     map[string]*workflow{},
		dispatches:    map[string][]Dispatch{},
		nextPR:        1,
	}
	s.repos[key] = r
	return r
}

// lookup returns the state of full name repo, or an empty stand-in when the
// repository was never set up, so that reading state never creates it.
// Callers hold s.mu.
func (s *Server) lookup(full string) *repo {
	if r, ok := s.repos[strings.ToLower(full)]; ok {
		return r
	}
	return &repo{workflows: map[string]*workflow{}, dispatches: map[string][]Dispatch{}, branches: map[string]bool{}}
}

// withRepo resolves {owner}/{repo} (case-insensitively, like GitHub) or
// answers 404.
func (s *Server) withRepo(h func(http.ResponseWriter, *http.Request, *repo)) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		r, ok := s.repos[strings.ToLower(req.PathValue("owner")+"/"+req.PathValue("repo"))]
		if !ok {
			notFound(w)
			return
		}
		h(w, req, r)
	}
}

// advance brings time-triggered state up to now: pull requests that a
// published release's workflow opens. Runs need nothing here; their status
// is computed when read.
func (s *Server) advance(now time.Time) {
	for _, r := range s.repos {
		keep := r.pendingPRs[:0]
		for _, p := range r.pendingPRs {
			if now.Before(p.at) {
				keep = append(keep, p)
				continue
			}
			s.openPR(r, p.pr, p.at)
		}
		r.pendingPRs = keep
	}
}

// hasRef reports whether ref names a branch or a published release's tag.
func (r *repo) hasRef(ref string) bool {
	if b, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		return r.branches[b]
	}
	if t, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
		return r.hasTag(t)
	}
	return r.branches[ref] || r.hasTag(ref)
}

func (r *repo) hasTag(tag string) bool {
	for _, rel := range r.releases {
		if !rel.Draft && rel.Tag == tag {
			return true
		}
	}
	return false
}

// getRepo answers GET /repos/{owner}/{repo}. A user's token sees its
// permissions on the repository; an installation token gets none, as on
// GitHub.
func (s *Server) getRepo(w http.ResponseWriter, req *http.Request, r *repo) {
	out := map[string]any{
		"id": userID(r.fullName()), "name": r.name, "full_name": r.fullName(), "private": true,
		"owner": map[string]any{"login": r.owner}, "default_branch": r.defaultBranch,
	}
	if _, installation := s.issued[credential(req)]; !installation {
		out["permissions"] = map[string]any{"admin": false, "maintain": false, "push": !s.readOnly, "triage": true, "pull": true}
	}
	writeJSON(w, http.StatusOK, out)
}

// SetReadOnly makes the token's permissions on every repository read-only
// (GET /repos/{owner}/{repo} says push: false), as a token without write
// access would see; its writes are still served.
func (s *Server) SetReadOnly(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readOnly = v
}
