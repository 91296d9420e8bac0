package githubtest

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"
)

// Release is a release as the test sets it up and reads it back.
// PublishedAt is zero while Draft.
type Release struct {
	ID              int64
	Tag             string
	Name            string
	Body            string
	Draft           bool
	Prerelease      bool
	TargetCommitish string
	CreatedAt       time.Time
	PublishedAt     time.Time
}

// AddRelease adds r to repo and returns its id. CreatedAt defaults to the
// server's now, TargetCommitish to "main", and a release that is not a
// draft gets PublishedAt = CreatedAt unless set.
func (s *Server) AddRelease(repo string, r Release) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp := s.repo(repo)
	r.ID = s.id()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.now()
	}
	if r.TargetCommitish == "" {
		r.TargetCommitish = rp.defaultBranch
	}
	if r.Draft {
		r.PublishedAt = time.Time{}
	} else if r.PublishedAt.IsZero() {
		r.PublishedAt = r.CreatedAt
	}
	rp.releases = append(rp.releases, &r)
	return r.ID
}

// Release returns release id of repo as it is now (zero Release if none).
func (s *Server) Release(repo string, id int64) Release {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rel := s.lookup(repo).release(id); rel != nil {
		return *rel
	}
	return Release{}
}

// Releases returns repo's releases in the order they were added.
func (s *Server) Releases(repo string) []Release {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Release
	for _, rel := range s.lookup(repo).releases {
		out = append(out, *rel)
	}
	return out
}

func (r *repo) release(id int64) *Release {
	for _, rel := range r.releases {
		if rel.ID == id {
			return rel
		}
	}
	return nil
}

func fakeSHA(parts ...string) string {
	h := sha1.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Server) releaseJSON(r *repo, rel *Release) map[string]any {
	api := fmt.Sprintf("%s/repos/%s/releases/%d", s.srv.URL, r.fullName(), rel.ID)
	web := s.WebURL() + "/" + r.fullName()
	m := map[string]any{
		"url":              api,
		"assets_url":       api + "/assets",
		"upload_url":       api + "/assets{?name,label}",
		"id":               rel.ID,
		"node_id":          fmt.Sprintf("RE_fake%d", rel.ID),
		"tag_name":         rel.Tag,
		"target_commitish": rel.TargetCommitish,
		"name":             rel.Name,
		"body":             rel.Body,
		"draft":            rel.Draft,
		"prerelease":       rel.Prerelease,
		"created_at":       ts(rel.CreatedAt),
		"published_at":     ts(rel.PublishedAt),
		"author":           s.userJSON("github-actions[bot]"),
		"assets":           []any{},
	}
	if rel.Draft {
		// GitHub hides a draft's tag from its web address.
		m["html_url"] = web + "/releases/tag/untagged-" + fakeSHA(strconv.FormatInt(rel.ID, 10))[:20]
		m["tarball_url"], m["zipball_url"] = nil, nil
	} else {
		tag := url.PathEscape(rel.Tag)
		m["html_url"] = web + "/releases/tag/" + tag
		m["tarball_url"] = s.srv.URL + "/repos/" + r.fullName() + "/tarball/" + tag
		m["zipball_url"] = s.srv.URL + "/repos/" + r.fullName() + "/zipball/" + tag
	}
	return m
}

// listReleases lists drafts first, then the rest newest first, as GitHub's
// releases page does.
func (s *Server) listReleases(w http.ResponseWriter, req *http.Request, r *repo) {
	rels := append([]*Release(nil), r.releases...)
	sort.SliceStable(rels, func(i, j int) bool {
		a, b := rels[i], rels[j]
		if a.Draft != b.Draft {
			return a.Draft
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.ID > b.ID
	})
	lo, hi := paginate(w, req, len(rels))
	out := []any{}
	for _, rel := range rels[lo:hi] {
		out = append(out, s.releaseJSON(r, rel))
	}
	writeJSON(w, http.StatusOK, out)
}

// releaseByTag finds published releases only: GitHub answers 404 for a
// draft's tag, which does not exist as a git tag yet.
func (s *Server) releaseByTag(w http.ResponseWriter, req *http.Request, r *repo) {
	tag := req.PathValue("tag")
	for _, rel := range r.releases {
		if !rel.Draft && rel.Tag == tag {
			writeJSON(w, http.StatusOK, s.releaseJSON(r, rel))
			return
		}
	}
	notFound(w)
}

func (s *Server) getRelease(w http.ResponseWriter, req *http.Request, r *repo) {
	id, _ := strconv.ParseInt(req.PathValue("id"), 10, 64)
	rel := r.release(id)
	if rel == nil {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, s.releaseJSON(r, rel))
}

// editRelease applies the fields present in the body. Turning a draft into
// a published, non-prerelease release is the "release: released" event:
// it starts the workflows registered with OnPublish.
func (s *Server) editRelease(w http.ResponseWriter, req *http.Request, r *repo) {
	id, _ := strconv.ParseInt(req.PathValue("id"), 10, 64)
	rel := r.release(id)
	if rel == nil {
		notFound(w)
		return
	}
	var in struct {
		TagName         *string `json:"tag_name"`
		TargetCommitish *string `json:"target_commitish"`
		Name            *string `json:"name"`
		Body            *string `json:"body"`
		Draft           *bool   `json:"draft"`
		Prerelease      *bool   `json:"prerelease"`
		MakeLatest      *string `json:"make_latest"`
	}
	if err := json.NewDecoder(req.Body).Decode(&in); err != nil {
		badJSON(w)
		return
	}
	tag := rel.Tag
	if in.TagName != nil {
		tag = *in.TagName
	}
	draft := rel.Draft
	if in.Draft != nil {
		draft = *in.Draft
	}
	if tag == "" {
		validationFailed(w, map[string]any{"resource": "Release", "code": "missing_field", "field": "tag_name"})
		return
	}
	if !draft {
		for _, other := range r.releases {
			if other != rel && !other.Draft && other.Tag == tag {
				validationFailed(w, map[string]any{"resource": "Release", "code": "already_exists", "field": "tag_name"})
				return
			}
		}
	}
	wasDraft := rel.Draft
	rel.Tag = tag
	rel.Draft = draft
	if in.TargetCommitish != nil {
		rel.TargetCommitish = *in.TargetCommitish
	}
	if in.Name != nil {
		rel.Name = *in.Name
	}
	if in.Body != nil {
		rel.Body = *in.Body
	}
	if in.Prerelease != nil {
		rel.Prerelease = *in.Prerelease
	}
	now := s.now()
	switch {
	case wasDraft && !rel.Draft:
		rel.PublishedAt = now
		if !rel.Prerelease {
			s.released(r, rel, now)
		}
	case rel.Draft:
		rel.PublishedAt = time.Time{}
	}
	writeJSON(w, http.StatusOK, s.releaseJSON(r, rel))
}

// released starts what GitHub's "release: released" event starts.
func (s *Server) released(r *repo, rel *Release, now time.Time) {
	for _, file := range sortedKeys(r.workflows) {
		wf := r.workflows[file]
		if wf.onPublish == nil {
			continue
		}
		s.startRun(r, wf, "release", rel.Tag, now, *wf.onPublish)
	}
	for _, p := range r.onPublishPR {
		pr := p.make(*rel)
		r.pendingPRs = append(r.pendingPRs, pendingPR{at: now.Add(p.after), pr: pr})
	}
	s.advance(now)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
