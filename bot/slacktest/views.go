package slacktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits Slack enforces on views (App Home tabs and modals). A view that
// breaks one is refused with invalid_arguments and a "[json-pointer:…]"
// detail per problem, as views.publish, views.open and views.update do.
const (
	maxViewBlocks     = 100
	maxViewTitle      = 24 // modal title, submit and close texts
	maxPrivateMeta    = 3000
	maxCallbackID     = 255
	maxExternalID     = 255
	defaultTriggerTTL = 3 * time.Second
)

// View is a published App Home tab or a modal, as Slack keeps it.
type View struct {
	ID, Type, User, Hash string
	CallbackID           string
	PrivateMetadata      string
	ExternalID           string
	Title                string // modals: the title's text
	// Blocks are the view's blocks with the ids Slack fills in.
	Blocks json.RawMessage
	// Errors are the per-block errors of the last response_action
	// "errors" (modals), shown under their input blocks.
	Errors map[string]string
	// Closed is set once a modal is submitted (and not kept open by
	// "errors", "update" or "push") or closed.
	Closed bool
	// Versions counts how often the view was set (publishes, updates).
	Versions int
	raw      map[string]any
}

type trigger struct {
	user    string
	issued  time.Time
	used    bool
	expired bool
}

type viewState struct {
	triggers map[string]*trigger
	homes    map[string]*View // by user
	byID     map[string]*View
	stacks   map[string][]*View // open modals per user, top last
}

func newViewState() viewState {
	return viewState{triggers: map[string]*trigger{}, homes: map[string]*View{}, byID: map[string]*View{}, stacks: map[string][]*View{}}
}

func (v *View) copy() View {
	out := *v
	out.Blocks = slices.Clone(v.Blocks)
	if v.Errors != nil {
		out.Errors = map[string]string{}
		for k, e := range v.Errors {
			out.Errors[k] = e
		}
	}
	out.raw = nil
	return out
}

// triggerIDLocked issues a trigger_id for an interaction by user; it opens
// one modal within Options.TriggerTTL (3 s, as in Slack).
func (s *Server) triggerIDLocked(user string) string {
	id := fmt.Sprintf("%d.%d.%s", time.Now().Unix(), s.seq+1, secret()[:16])
	s.views.triggers[id] = &trigger{user: user, issued: time.Now()}
	return id
}

// ExpireTriggers makes every trigger_id issued so far too old to use, as
// if more than 3 seconds had passed since its click.
func (s *Server) ExpireTriggers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.views.triggers {
		t.expired = true
	}
	s.notifyLocked()
}

// Home returns the App Home tab last published for a user.
func (s *Server) Home(userID string) (View, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.views.homes[userID]
	if !ok {
		return View{}, false
	}
	return v.copy(), true
}

// Modal returns the user's open modal (the top of the stack).
func (s *Server) Modal(userID string) (View, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.views.stacks[userID]
	if len(st) == 0 {
		return View{}, false
	}
	return st[len(st)-1].copy(), true
}

// ViewByID returns any view, open or closed.
func (s *Server) ViewByID(id string) (View, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.views.byID[id]
	if !ok {
		return View{}, false
	}
	return v.copy(), true
}

// OpenHome sends the app_home_opened event of a user looking at the
// app's Home tab.
func (s *Server) OpenHome(userID string) *Envelope {
	s.mu.Lock()
	u := s.userLocked(userID)
	ev := map[string]any{"type": "app_home_opened", "user": u.id, "channel": "D" + strings.TrimPrefix(u.id, "U"),
		"tab": "home", "event_ts": s.nextTSLocked()}
	if v := s.views.homes[u.id]; v != nil {
		ev["view"] = s.viewJSONLocked(v)
	}
	e := s.eventEnvelopeLocked(ev)
	s.mu.Unlock()
	s.deliver(e)
	return e
}

// ClickView sends the block_actions envelope of a button in a view: the
// user's Home tab when viewID is "home", else the view with that id. The
// button is found as Click finds it. Such payloads have no response_url
// and no channel: the app answers by updating views.
func (s *Server) ClickView(userID, viewID, actionID, value string) *Envelope {
	s.mu.Lock()
	u := s.userLocked(userID)
	v := s.views.byID[viewID]
	if viewID == "home" {
		v = s.views.homes[u.id]
	}
	if v == nil || v.User != u.id || v.Closed {
		err := fmt.Errorf("slacktest: click: %s sees no view %s", userID, viewID)
		s.rejectLocked("click", "view_not_found", err.Error())
		s.mu.Unlock()
		return &Envelope{ID: "unsent", Type: "interactive", err: err}
	}
	btn, seen := pickButton(findButtons(v.Blocks), actionID, value)
	if btn == nil {
		err := fmt.Errorf("slacktest: click: view %s has no button %s=%s (buttons: %s)", v.ID, actionID, value, strings.Join(seen, ", "))
		s.rejectLocked("click", "button_not_found", err.Error())
		s.mu.Unlock()
		return &Envelope{ID: "unsent", Type: "interactive", err: err}
	}
	action := map[string]any{"action_id": btn.actionID, "block_id": btn.blockID, "text": btn.text, "value": btn.value,
		"type": "button", "action_ts": s.nextTSLocked()}
	if btn.style != "" {
		action["style"] = btn.style
	}
	payload := map[string]any{
		"type":       "block_actions",
		"user":       map[string]any{"id": u.id, "username": u.name, "name": u.name, "team_id": s.opts.TeamID},
		"api_app_id": s.opts.AppID,
		"token":      "verification-token",
		"container":  map[string]any{"type": "view", "view_id": v.ID},
		"trigger_id": s.triggerIDLocked(u.id),
		"team":       map[string]any{"id": s.opts.TeamID, "domain": DefaultTeamName},
		"view":       s.viewJSONLocked(v),
		"actions":    []any{action},
	}
	e := s.newEnvelopeLocked("interactive", payload, false, "")
	s.mu.Unlock()
	s.deliver(e)
	return e
}

// Submit sends the view_submission of the user's open modal with these
// inputs, keyed by the input block's block_id: the text typed into a
// plain_text_input, or the value of the option chosen in a static_select
// (which must be one the select offers). Inputs that are not optional
// must be given, as Slack's client insists before sending anything.
func (s *Server) Submit(userID string, inputs map[string]string) *Envelope {
	s.mu.Lock()
	st := s.views.stacks[userID]
	if len(st) == 0 {
		err := fmt.Errorf("slacktest: submit: %s has no open modal", userID)
		s.rejectLocked("submit", "no_modal", err.Error())
		s.mu.Unlock()
		return &Envelope{ID: "unsent", Type: "interactive", err: err}
	}
	v := st[len(st)-1]
	values, err := stateValues(v.raw, inputs)
	if err != nil {
		s.rejectLocked("submit", "invalid_input", err.Error())
		s.mu.Unlock()
		return &Envelope{ID: "unsent", Type: "interactive", err: err}
	}
	u := s.userLocked(userID)
	vj := s.viewJSONLocked(v)
	vj["state"] = map[string]any{"values": values}
	payload := map[string]any{
		"type":       "view_submission",
		"user":       map[string]any{"id": u.id, "username": u.name, "name": u.name, "team_id": s.opts.TeamID},
		"api_app_id": s.opts.AppID,
		"token":      "verification-token",
		"trigger_id": s.triggerIDLocked(u.id),
		"team":       map[string]any{"id": s.opts.TeamID, "domain": DefaultTeamName},
		"view":       vj,
	}
	e := s.newEnvelopeLocked("interactive", payload, true, "")
	s.mu.Unlock()
	s.deliver(e)
	return e
}

// stateValues builds a view_submission's state.values from typed inputs.
func stateValues(raw map[string]any, inputs map[string]string) (map[string]any, error) {
	out := map[string]any{}
	blocks, _ := raw["blocks"].([]any)
	used := map[string]bool{}
	for _, b := range blocks {
		bm, _ := b.(map[string]any)
		if bm["type"] != "input" {
			continue
		}
		id, _ := bm["block_id"].(string)
		el, _ := bm["element"].(map[string]any)
		aid, _ := el["action_id"].(string)
		typ, _ := el["type"].(string)
		in, given := inputs[id]
		used[id] = given
		optional, _ := bm["optional"].(bool)
		if (!given || in == "") && !optional {
			return nil, fmt.Errorf("input %s is required", id)
		}
		switch typ {
		case "plain_text_input":
			if n, ok := el["max_length"].(json.Number); ok {
				if max, _ := n.Int64(); int64(utf8.RuneCountInString(in)) > max {
					return nil, fmt.Errorf("input %s takes at most %d characters", id, max)
				}
			}
			val := map[string]any{"type": typ, "value": nil}
			if in != "" {
				val["value"] = in
			}
			out[id] = map[string]any{aid: val}
		case "static_select":
			val := map[string]any{"type": typ, "selected_option": nil}
			if in != "" {
				opt := findOption(el, in)
				if opt == nil {
					return nil, fmt.Errorf("select %s offers no option %q", id, in)
				}
				val["selected_option"] = opt
			}
			out[id] = map[string]any{aid: val}
		default:
			if given {
				return nil, fmt.Errorf("input %s is a %s, which the test server cannot fill", id, typ)
			}
		}
	}
	for id := range inputs {
		if _, ok := used[id]; !ok {
			return nil, fmt.Errorf("the modal has no input block %s", id)
		}
	}
	return out, nil
}

func findOption(el map[string]any, value string) any {
	var opts []any
	if o, ok := el["options"].([]any); ok {
		opts = append(opts, o...)
	}
	if gs, ok := el["option_groups"].([]any); ok {
		for _, g := range gs {
			if gm, ok := g.(map[string]any); ok {
				if o, ok := gm["options"].([]any); ok {
					opts = append(opts, o...)
				}
			}
		}
	}
	for _, o := range opts {
		if om, ok := o.(map[string]any); ok && om["value"] == value {
			return om
		}
	}
	return nil
}

// viewJSONLocked renders a view as the Web API and payloads show it.
func (s *Server) viewJSONLocked(v *View) map[string]any {
	out := map[string]any{}
	for k, x := range v.raw {
		out[k] = x
	}
	out["id"], out["team_id"], out["type"], out["hash"] = v.ID, s.opts.TeamID, v.Type, v.Hash
	out["app_id"], out["bot_id"], out["app_installed_team_id"] = s.opts.AppID, s.opts.BotID, s.opts.TeamID
	out["root_view_id"], out["previous_view_id"] = v.ID, nil
	for _, k := range []string{"private_metadata", "callback_id", "external_id"} {
		if _, ok := out[k]; !ok {
			out[k] = ""
		}
	}
	if _, ok := out["state"]; !ok {
		out["state"] = map[string]any{"values": map[string]any{}}
	}
	return out
}

// checkView validates a view argument; problems are Slack's
// "[ERROR] … [json-pointer:/view/…]" messages.
func checkView(raw, kind string) (map[string]any, []string) {
	if strings.TrimSpace(raw) == "" {
		return nil, []string{"missing required field: view"}
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return nil, []string{"view must be a JSON object: " + err.Error()}
	}
	c := &blockCheck{blockIDs: map[string]bool{}}
	if t, _ := v["type"].(string); t != kind {
		c.addf("/view/type", "must be %q here, got %q", kind, t)
	}
	blocks, ok := v["blocks"].([]any)
	switch {
	case !ok:
		c.addf("/view", "missing required field: blocks")
	case len(blocks) > maxViewBlocks:
		c.addf("/view/blocks", "no more than %d items allowed, got %d", maxViewBlocks, len(blocks))
	default:
		hasInput := false
		for i, b := range blocks {
			c.block(b, fmt.Sprintf("/view/blocks/%d", i))
			if bm, ok := b.(map[string]any); ok && bm["type"] == "input" {
				hasInput = true
			}
		}
		if kind == "modal" && hasInput {
			if _, ok := v["submit"]; !ok {
				c.addf("/view", "missing required field: submit (a modal with input blocks needs one)")
			}
		}
	}
	if kind == "modal" {
		if t, ok := v["title"]; ok {
			c.text(t, "/view/title", true, maxViewTitle)
		} else {
			c.addf("/view", "missing required field: title")
		}
		for _, f := range []string{"submit", "close"} {
			if t, ok := v[f]; ok {
				c.text(t, "/view/"+f, true, maxViewTitle)
			}
		}
	}
	c.str(v, "private_metadata", "/view", false, maxPrivateMeta)
	c.str(v, "callback_id", "/view", false, maxCallbackID)
	c.str(v, "external_id", "/view", false, maxExternalID)
	if len(c.problems) > 0 {
		return nil, c.problems
	}
	if blocks != nil {
		for _, b := range blocks {
			fillIDs(b.(map[string]any))
		}
	}
	return v, nil
}

func (s *Server) failArgs(w http.ResponseWriter, method string, problems []string) {
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = "[ERROR] " + p
	}
	s.fail(w, method, "invalid_arguments", strings.Join(problems, "\n"), map[string]any{"response_metadata": map[string]any{"messages": msgs}})
}

func (s *Server) setViewLocked(v *View, raw map[string]any) {
	v.raw = raw
	v.Blocks, _ = json.Marshal(raw["blocks"])
	v.CallbackID, _ = raw["callback_id"].(string)
	v.PrivateMetadata, _ = raw["private_metadata"].(string)
	v.ExternalID, _ = raw["external_id"].(string)
	if t, ok := raw["title"].(map[string]any); ok {
		v.Title, _ = t["text"].(string)
	}
	v.Hash = fmt.Sprintf("%d.%s", time.Now().Unix(), shortID())
	v.Errors = nil
	v.Versions++
	s.notifyLocked()
}

func (s *Server) viewsPublish(w http.ResponseWriter, req *apiRequest) {
	const method = "views.publish"
	user := req.get("user_id")
	if user == "" {
		s.failArgs(w, method, []string{"missing required field: user_id"})
		return
	}
	raw, problems := checkView(req.get("view"), "home")
	if problems != nil {
		s.failArgs(w, method, problems)
		return
	}
	s.mu.Lock()
	if _, ok := s.users[user]; !ok {
		s.mu.Unlock()
		s.fail(w, method, "user_not_found", user, nil)
		return
	}
	v := s.views.homes[user]
	if v != nil && req.get("hash") != "" && req.get("hash") != v.Hash {
		s.mu.Unlock()
		s.fail(w, method, "hash_conflict", "", nil)
		return
	}
	if v == nil {
		v = &View{ID: s.nextIDLocked("V"), Type: "home", User: user}
		s.views.homes[user] = v
		s.views.byID[v.ID] = v
	}
	s.setViewLocked(v, raw)
	out := s.viewJSONLocked(v)
	s.mu.Unlock()
	s.ok(w, map[string]any{"view": out})
}

func (s *Server) viewsOpen(w http.ResponseWriter, req *apiRequest) {
	const method = "views.open"
	tid := req.get("trigger_id")
	if tid == "" {
		s.failArgs(w, method, []string{"missing required field: trigger_id"})
		return
	}
	raw, problems := checkView(req.get("view"), "modal")
	s.mu.Lock()
	t := s.views.triggers[tid]
	var code string
	switch {
	case t == nil:
		code = "invalid_trigger_id"
	case t.used:
		code = "exchanged_trigger_id"
	case t.expired || time.Since(t.issued) > s.opts.TriggerTTL:
		code = "expired_trigger_id"
	}
	if code != "" {
		s.mu.Unlock()
		s.fail(w, method, code, tid, nil)
		return
	}
	if problems != nil {
		s.mu.Unlock()
		s.failArgs(w, method, problems)
		return
	}
	t.used = true
	v := &View{ID: s.nextIDLocked("V"), Type: "modal", User: t.user}
	s.views.byID[v.ID] = v
	for _, old := range s.views.stacks[t.user] {
		old.Closed = true // a new root modal replaces the open stack
	}
	s.views.stacks[t.user] = []*View{v}
	s.setViewLocked(v, raw)
	out := s.viewJSONLocked(v)
	s.mu.Unlock()
	s.ok(w, map[string]any{"view": out})
}

func (s *Server) viewsUpdate(w http.ResponseWriter, req *apiRequest) {
	const method = "views.update"
	raw, problems := checkView(req.get("view"), "modal")
	s.mu.Lock()
	var v *View
	if id := req.get("view_id"); id != "" {
		v = s.views.byID[id]
	} else if ext := req.get("external_id"); ext != "" {
		for _, x := range s.views.byID {
			if x.ExternalID == ext {
				v = x
			}
		}
	} else {
		s.mu.Unlock()
		s.failArgs(w, method, []string{"missing required field: view_id or external_id"})
		return
	}
	switch {
	case v == nil || v.Closed || v.Type != "modal":
		s.mu.Unlock()
		s.fail(w, method, "not_found", req.get("view_id"), nil)
		return
	case req.get("hash") != "" && req.get("hash") != v.Hash:
		s.mu.Unlock()
		s.fail(w, method, "hash_conflict", "", nil)
		return
	case problems != nil:
		s.mu.Unlock()
		s.failArgs(w, method, problems)
		return
	}
	s.setViewLocked(v, raw)
	out := s.viewJSONLocked(v)
	s.mu.Unlock()
	s.ok(w, map[string]any{"view": out})
}

// submissionAckLocked applies a view_submission's ack as Slack does: no
// payload (or "clear") closes the modal; "errors" keeps it open with the
// messages under the named input blocks; "update" replaces it; "push"
// stacks a new one. Anything Slack would refuse is recorded in Rejected.
func (s *Server) submissionAckLocked(e *Envelope, payload json.RawMessage) {
	var p struct {
		View struct {
			ID string `json:"id"`
		} `json:"view"`
	}
	_ = json.Unmarshal(e.Payload, &p)
	v := s.views.byID[p.View.ID]
	if v == nil {
		return
	}
	closeStack := func() {
		for _, x := range s.views.stacks[v.User] {
			x.Closed = true
		}
		delete(s.views.stacks, v.User)
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		closeStack()
		return
	}
	var r struct {
		ResponseAction string            `json:"response_action"`
		Errors         map[string]string `json:"errors"`
		View           json.RawMessage   `json:"view"`
	}
	if err := json.Unmarshal(payload, &r); err != nil {
		s.rejectLocked("ack", "invalid_payload", err.Error())
		return
	}
	switch r.ResponseAction {
	case "", "clear":
		closeStack()
	case "errors":
		inputs := map[string]bool{}
		blocks, _ := v.raw["blocks"].([]any)
		for _, b := range blocks {
			if bm, ok := b.(map[string]any); ok && bm["type"] == "input" {
				id, _ := bm["block_id"].(string)
				inputs[id] = true
			}
		}
		if len(r.Errors) == 0 {
			s.rejectLocked("ack", "invalid_errors", "response_action errors with no errors")
			return
		}
		for id, msg := range r.Errors {
			if !inputs[id] {
				s.rejectLocked("ack", "invalid_errors", fmt.Sprintf("errors names %q, which is not an input block of view %s", id, v.ID))
				return
			}
			if msg == "" || utf8.RuneCountInString(msg) > 3000 {
				s.rejectLocked("ack", "invalid_errors", fmt.Sprintf("error for %q must have 1 to 3000 characters", id))
				return
			}
		}
		v.Errors = r.Errors
		s.notifyLocked()
	case "update", "push":
		raw, problems := checkView(string(r.View), "modal")
		if problems != nil {
			s.rejectLocked("ack", "invalid_arguments", strings.Join(problems, "\n"))
			return
		}
		if r.ResponseAction == "update" {
			s.setViewLocked(v, raw)
			return
		}
		nv := &View{ID: s.nextIDLocked("V"), Type: "modal", User: v.User}
		s.views.byID[nv.ID] = nv
		s.views.stacks[v.User] = append(s.views.stacks[v.User], nv)
		s.setViewLocked(nv, raw)
	default:
		s.rejectLocked("ack", "invalid_response_action", r.ResponseAction)
	}
}
