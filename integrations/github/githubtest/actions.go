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

// Run is a workflow run. Runs created by the server (OnPublish, OnDispatch)
// and by AddRun move with the clock: queued for the first third of
// Duration, in_progress until Duration has passed, then completed with
// Conclusion. Reading a run back (Runs) gives its Status and Conclusion at
// that moment.
type Run struct {
	ID         int64
	Workflow   string // file name under .github/workflows
	Event      string
	HeadBranch string
	HeadSHA    string
	// Status is fixed when Conclusion is empty ("queued" if also empty);
	// otherwise it follows the clock.
	Status     string
	Conclusion string
	CreatedAt  time.Time
	Duration   time.Duration
	// Actor is the login that triggered the run; it defaults to the
	// server's user (SetUser).
	Actor string
	// DisplayTitle is what GitHub shows for the run: the workflow's
	// run-name (SetRunName) with the inputs filled in, or its name.
	DisplayTitle string
}

// Dispatch is one accepted workflow_dispatch request.
type Dispatch struct {
	Ref    string
	Inputs map[string]any
	At     time.Time
}

type workflow struct {
	id         int64
	file, name string
	inputs     map[string]bool // nil: inputs not declared, anything goes
	runName    string          // the workflow's run-name, "" for none
	onPublish  *trigger
	onDispatch *trigger
}

type trigger struct {
	conclusion string
	after      time.Duration
}

// workflow returns file's workflow in r, creating it. Callers hold s.mu.
func (s *Server) workflow(r *repo, file string) *workflow {
	if wf, ok := r.workflows[file]; ok {
		return wf
	}
	name := strings.TrimSuffix(strings.TrimSuffix(file, ".yml"), ".yaml")
	wf := &workflow{id: s.id(), file: file, name: name}
	r.workflows[file] = wf
	return wf
}

// AddWorkflow makes workflowFile exist in repo without any trigger, so it
// can be listed and (if it has no declared inputs) dispatched.
func (s *Server) AddWorkflow(repo, workflowFile string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.workflow(s.repo(repo), workflowFile)
}

// OnPublish makes publishing a draft release of repo (PATCH draft=false,
// not a prerelease) start a run of workflowFile with event "release" and
// head branch = the release's tag, completing with conclusion after
// `after`.
func (s *Server) OnPublish(repo, workflowFile, conclusion string, after time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.workflow(s.repo(repo), workflowFile).onPublish = &trigger{conclusion, after}
}

// OnDispatch makes each accepted dispatch of workflowFile start a run with
// event "workflow_dispatch" on the dispatched ref, completing with
// conclusion after `after`. Without it dispatches are recorded but start
// nothing.
func (s *Server) OnDispatch(repo, workflowFile, conclusion string, after time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.workflow(s.repo(repo), workflowFile).onDispatch = &trigger{conclusion, after}
}

// DeclareInputs declares workflowFile's workflow_dispatch inputs. Once
// declared, a dispatch with any other input is refused with 422, as GitHub
// refuses inputs the workflow file does not declare.
func (s *Server) DeclareInputs(repo, workflowFile string, names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wf := s.workflow(s.repo(repo), workflowFile)
	wf.inputs = map[string]bool{}
	for _, n := range names {
		wf.inputs[n] = true
	}
}

// SetRunName gives workflowFile a run-name, as the `run-name:` key of a
// workflow file does. "${{ inputs.NAME }}" is replaced by the dispatch's
// input, so a run can be recognised by its display_title.
func (s *Server) SetRunName(repo, workflowFile, runName string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.workflow(s.repo(repo), workflowFile).runName = runName
}

// RejectRunDetails makes dispatches answer like a GitHub Enterprise Server
// that predates "return_run_details": a body with that key is refused with
// 422 and changes nothing.
func (s *Server) RejectRunDetails() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noRunDetails = true
}

// displayTitle is what GitHub shows for a run of wf started with inputs.
func (wf *workflow) displayTitle(inputs map[string]any) string {
	if wf.runName == "" {
		return wf.name
	}
	t := wf.runName
	for k, v := range inputs {
		for _, form := range []string{"${{ inputs." + k + " }}", "${{inputs." + k + "}}"} {
			t = strings.ReplaceAll(t, form, fmt.Sprint(v))
		}
	}
	return t
}

// Dispatches returns the accepted dispatches of workflowFile, oldest first.
func (s *Server) Dispatches(repo, workflowFile string) []Dispatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Dispatch(nil), s.lookup(repo).dispatches[workflowFile]...)
}

// AddRun adds a run of workflowFile, for example an older one a filter must
// skip, and returns its id. CreatedAt defaults to now, Event to "push",
// HeadBranch to "main".
func (s *Server) AddRun(repo, workflowFile string, run Run) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repo(repo)
	wf := s.workflow(r, workflowFile)
	run.ID = s.id()
	run.Workflow = wf.file
	if run.CreatedAt.IsZero() {
		run.CreatedAt = s.now()
	}
	if run.Event == "" {
		run.Event = "push"
	}
	if run.HeadBranch == "" {
		run.HeadBranch = r.defaultBranch
	}
	if run.HeadSHA == "" {
		run.HeadSHA = fakeSHA(run.HeadBranch, strconv.FormatInt(run.ID, 10))
	}
	if run.Actor == "" {
		run.Actor = s.user
	}
	if run.DisplayTitle == "" {
		run.DisplayTitle = wf.name
	}
	r.runs = append(r.runs, &run)
	return run.ID
}

// Runs returns workflowFile's runs ("" for all workflows), oldest first,
// with Status and Conclusion as of now.
func (s *Server) Runs(repo, workflowFile string) []Run {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var out []Run
	for _, run := range s.lookup(repo).runs {
		if workflowFile != "" && run.Workflow != workflowFile {
			continue
		}
		c := *run
		c.Status, c.Conclusion = run.state(now)
		out = append(out, c)
	}
	return out
}

func (s *Server) startRun(r *repo, wf *workflow, event, branch string, now time.Time, t trigger) *Run {
	run := &Run{
		ID:         s.id(),
		Workflow:   wf.file,
		Event:      event,
		HeadBranch: branch,
		Conclusion: t.conclusion,
		CreatedAt:  now,
		Duration:   t.after,
		Actor:      s.user,
		// A release run's title is the workflow's name; dispatches set it.
		DisplayTitle: wf.name,
	}
	run.HeadSHA = fakeSHA(branch, strconv.FormatInt(run.ID, 10))
	if run.Conclusion == "" {
		run.Status = "queued"
	}
	r.runs = append(r.runs, run)
	return run
}

// state is the run's status and conclusion at now, and when it last
// changed.
func (run *Run) state(now time.Time) (status, conclusion string) {
	status, conclusion, _ = run.stateAt(now)
	return status, conclusion
}

func (run *Run) stateAt(now time.Time) (status, conclusion string, updated time.Time) {
	if run.Conclusion == "" {
		if run.Status == "" {
			return "queued", "", run.CreatedAt
		}
		return run.Status, "", run.CreatedAt
	}
	elapsed := now.Sub(run.CreatedAt)
	switch {
	case elapsed >= run.Duration:
		return "completed", run.Conclusion, run.CreatedAt.Add(run.Duration)
	case elapsed < run.Duration/3:
		return "queued", "", run.CreatedAt
	default:
		return "in_progress", "", run.CreatedAt.Add(run.Duration / 3)
	}
}

func (s *Server) runJSON(r *repo, run *Run, now time.Time) map[string]any {
	wf := r.workflows[run.Workflow]
	status, conclusion, updated := run.stateAt(now)
	api := fmt.Sprintf("%s/repos/%s/actions/runs/%d", s.srv.URL, r.fullName(), run.ID)
	var concl any
	if conclusion != "" {
		concl = conclusion
	}
	runNumber := 0
	for _, other := range r.runs {
		if other.Workflow == run.Workflow && other.ID <= run.ID {
			runNumber++
		}
	}
	return map[string]any{
		"id":               run.ID,
		"name":             wf.name,
		"node_id":          fmt.Sprintf("WFR_fake%d", run.ID),
		"head_branch":      run.HeadBranch,
		"head_sha":         run.HeadSHA,
		"path":             ".github/workflows/" + wf.file,
		"display_title":    run.DisplayTitle,
		"run_number":       runNumber,
		"event":            run.Event,
		"status":           status,
		"conclusion":       concl,
		"workflow_id":      wf.id,
		"check_suite_id":   run.ID + 1_000_000,
		"url":              api,
		"html_url":         fmt.Sprintf("%s/%s/actions/runs/%d", s.WebURL(), r.fullName(), run.ID),
		"pull_requests":    []any{},
		"created_at":       ts(run.CreatedAt),
		"updated_at":       ts(updated),
		"run_started_at":   ts(run.CreatedAt),
		"run_attempt":      1,
		"actor":            s.userJSON(run.Actor),
		"triggering_actor": s.userJSON(run.Actor),
		"jobs_url":         api + "/jobs",
		"logs_url":         api + "/logs",
		"workflow_url":     fmt.Sprintf("%s/repos/%s/actions/workflows/%d", s.srv.URL, r.fullName(), wf.id),
		"repository":       s.repoJSON(r),
	}
}

func (s *Server) repoJSON(r *repo) map[string]any {
	return map[string]any{
		"id":             userID(r.fullName()),
		"name":           r.name,
		"full_name":      r.fullName(),
		"owner":          map[string]any{"login": r.owner, "id": userID(r.owner), "type": "Organization"},
		"private":        false,
		"html_url":       s.WebURL() + "/" + r.fullName(),
		"default_branch": r.defaultBranch,
	}
}

// findWorkflow resolves {file}, a file name or a numeric workflow id.
func (r *repo) findWorkflow(file string) *workflow {
	if wf, ok := r.workflows[file]; ok {
		return wf
	}
	if id, err := strconv.ParseInt(file, 10, 64); err == nil {
		for _, wf := range r.workflows {
			if wf.id == id {
				return wf
			}
		}
	}
	return nil
}

// listRuns supports the filters deploybot uses: event, branch, status
// (a status or a conclusion), head_sha, actor and created (">=T", ">T",
// "<=T", "<T", "A..B" or a single date).
func (s *Server) listRuns(w http.ResponseWriter, req *http.Request, r *repo) {
	wf := r.findWorkflow(req.PathValue("file"))
	if wf == nil {
		notFound(w)
		return
	}
	q := req.URL.Query()
	created, ok := parseCreated(q.Get("created"))
	if !ok {
		validationFailed(w, map[string]any{"resource": "WorkflowRun", "field": "created", "code": "invalid"})
		return
	}
	now := s.now()
	var runs []*Run
	for _, run := range r.runs {
		status, conclusion := run.state(now)
		switch {
		case run.Workflow != wf.file,
			q.Get("event") != "" && run.Event != q.Get("event"),
			q.Get("branch") != "" && run.HeadBranch != q.Get("branch"),
			q.Get("head_sha") != "" && run.HeadSHA != q.Get("head_sha"),
			q.Get("actor") != "" && !strings.EqualFold(q.Get("actor"), run.Actor),
			q.Get("status") != "" && q.Get("status") != status && q.Get("status") != conclusion,
			!created(run.CreatedAt.Truncate(time.Second)):
			continue
		}
		runs = append(runs, run)
	}
	sort.SliceStable(runs, func(i, j int) bool {
		if !runs[i].CreatedAt.Equal(runs[j].CreatedAt) {
			return runs[i].CreatedAt.After(runs[j].CreatedAt)
		}
		return runs[i].ID > runs[j].ID
	})
	lo, hi := paginate(w, req, len(runs))
	page := []any{}
	for _, run := range runs[lo:hi] {
		page = append(page, s.runJSON(r, run, now))
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(runs), "workflow_runs": page})
}

// parseCreated turns GitHub's date-range syntax into a predicate.
func parseCreated(v string) (func(time.Time) bool, bool) {
	if v == "" {
		return func(time.Time) bool { return true }, true
	}
	if a, b, ok := strings.Cut(v, ".."); ok {
		from, _, ok1 := parseWhen(a)
		to, toDate, ok2 := parseWhen(b)
		if !ok1 || !ok2 {
			return nil, false
		}
		if toDate {
			to = to.Add(24*time.Hour - time.Second)
		}
		return func(t time.Time) bool { return !t.Before(from) && !t.After(to) }, true
	}
	for _, op := range []string{">=", "<=", ">", "<"} {
		rest, ok := strings.CutPrefix(v, op)
		if !ok {
			continue
		}
		at, isDate, ok := parseWhen(rest)
		if !ok {
			return nil, false
		}
		switch op {
		case ">=":
			return func(t time.Time) bool { return !t.Before(at) }, true
		case ">":
			if isDate {
				at = at.Add(24 * time.Hour)
				return func(t time.Time) bool { return !t.Before(at) }, true
			}
			return func(t time.Time) bool { return t.After(at) }, true
		case "<=":
			if isDate {
				at = at.Add(24 * time.Hour)
				return func(t time.Time) bool { return t.Before(at) }, true
			}
			return func(t time.Time) bool { return !t.After(at) }, true
		default:
			return func(t time.Time) bool { return t.Before(at) }, true
		}
	}
	at, isDate, ok := parseWhen(v)
	if !ok {
		return nil, false
	}
	if isDate {
		end := at.Add(24 * time.Hour)
		return func(t time.Time) bool { return !t.Before(at) && t.Before(end) }, true
	}
	return func(t time.Time) bool { return t.Equal(at) }, true
}

func parseWhen(v string) (t time.Time, isDate, ok bool) {
	v = strings.TrimSpace(v)
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, false, true
		}
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, true, true
	}
	return time.Time{}, false, false
}

func (s *Server) getRun(w http.ResponseWriter, req *http.Request, r *repo) {
	id, _ := strconv.ParseInt(req.PathValue("id"), 10, 64)
	for _, run := range r.runs {
		if run.ID == id {
			writeJSON(w, http.StatusOK, s.runJSON(r, run, s.now()))
			return
		}
	}
	notFound(w)
}

// dispatch checks what GitHub checks (the ref exists, every input is
// declared and a string), records the dispatch and answers 204, or, with
// "return_run_details": true, 200 with the run it started (GitHub since
// February 2026). After RejectRunDetails that key is refused with 422, as
// an older GitHub Enterprise Server refuses any key it does not know.
func (s *Server) dispatch(w http.ResponseWriter, req *http.Request, r *repo) {
	wf := r.findWorkflow(req.PathValue("file"))
	if wf == nil {
		notFound(w)
		return
	}
	var in struct {
		Ref              string         `json:"ref"`
		Inputs           map[string]any `json:"inputs"`
		ReturnRunDetails *bool          `json:"return_run_details"`
	}
	if err := json.NewDecoder(req.Body).Decode(&in); err != nil {
		badJSON(w)
		return
	}
	if in.ReturnRunDetails != nil && s.noRunDetails {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"message":           "Invalid request.\n\n\"return_run_details\" is not a permitted key.",
			"documentation_url": "https://docs.github.com/enterprise-server@3.14/rest/actions/workflows#create-a-workflow-dispatch-event",
		})
		return
	}
	if in.Ref == "" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"message":           "Invalid request.\n\n\"ref\" wasn't supplied.",
			"documentation_url": "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event",
		})
		return
	}
	if !r.hasRef(in.Ref) {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"message":           "No ref found for: " + in.Ref,
			"documentation_url": "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event",
		})
		return
	}
	var unexpected []string
	for _, name := range sortedKeys(in.Inputs) {
		if _, isString := in.Inputs[name].(string); !isString {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
				"message":           fmt.Sprintf("Invalid request.\n\nFor 'properties/%s', %v is not a string.", name, in.Inputs[name]),
				"documentation_url": "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event",
			})
			return
		}
		if wf.inputs != nil && !wf.inputs[name] {
			unexpected = append(unexpected, strconv.Quote(name))
		}
	}
	if len(unexpected) > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"message":           "Unexpected inputs provided: [" + strings.Join(unexpected, ", ") + "]",
			"documentation_url": "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event",
		})
		return
	}
	now := s.now()
	inputs := map[string]any{}
	for k, v := range in.Inputs {
		inputs[k] = v
	}
	r.dispatches[wf.file] = append(r.dispatches[wf.file], Dispatch{Ref: in.Ref, Inputs: inputs, At: now})
	details := in.ReturnRunDetails != nil && *in.ReturnRunDetails
	if wf.onDispatch == nil && !details {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	// GitHub always starts a run; without OnDispatch it stays queued, so
	// the run id asked for exists.
	t := trigger{}
	if wf.onDispatch != nil {
		t = *wf.onDispatch
	}
	branch := strings.TrimPrefix(strings.TrimPrefix(in.Ref, "refs/heads/"), "refs/tags/")
	run := s.startRun(r, wf, "workflow_dispatch", branch, now, t)
	run.DisplayTitle = wf.displayTitle(inputs)
	if !details {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"workflow_run_id": run.ID,
		"run_url":         fmt.Sprintf("%s/repos/%s/actions/runs/%d", s.srv.URL, r.fullName(), run.ID),
		"html_url":        fmt.Sprintf("%s/%s/actions/runs/%d", s.WebURL(), r.fullName(), run.ID),
	})
}
