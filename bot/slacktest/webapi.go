package slacktest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// apiRequest is a Web API call with its parameters flattened the way Slack
// reads them, whatever the encoding.
type apiRequest struct {
	method string
	params url.Values
	token  string
}

func (r *apiRequest) has(name string) bool   { _, ok := r.params[name]; return ok }
func (r *apiRequest) get(name string) string { return r.params.Get(name) }

type apiHandler func(w http.ResponseWriter, req *apiRequest)

func (s *Server) apiHandlers() map[string]apiHandler {
	return map[string]apiHandler{
		"auth.test":                    s.authTest,
		"apps.connections.open":        s.appsConnectionsOpen,
		"chat.postMessage":             s.chatPostMessage,
		"chat.update":                  s.chatUpdate,
		"chat.postEphemeral":           s.chatPostEphemeral,
		"chat.getPermalink":            s.chatGetPermalink,
		"usergroups.users.list":        s.usergroupsUsersList,
		"users.info":                   s.usersInfo,
		"conversations.info":           s.conversationsInfo,
		"conversations.create":         s.conversationsCreate,
		"conversations.invite":         s.conversationsInvite,
		"conversations.history":        s.conversationsHistory,
		"conversations.replies":        s.conversationsReplies,
		"files.getUploadURLExternal":   s.filesGetUploadURLExternal,
		"files.completeUploadExternal": s.filesCompleteUploadExternal,
		"views.publish":                s.viewsPublish,
		"views.open":                   s.viewsOpen,
		"views.update":                 s.viewsUpdate,
	}
}

func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	s.mu.Lock()
	s.calls[method]++
	s.notifyLocked()
	hold := s.holds[method]
	s.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	if f, ok := s.takeFault(method); ok {
		s.injectFault(w, r, method, f)
		return
	}
	s.serveAPI(w, r, method)
}

// serveAPI performs one Web API call and answers it.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, method string) {
	req, err := parseAPIRequest(method, r)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		// The client hung up mid-body (a killed process): the request was
		// never made, and Slack, like any server, has no one to answer.
		s.mu.Lock()
		s.incomplete++
		s.mu.Unlock()
		return
	}
	if err != nil {
		s.fail(w, method, "invalid_form_data", err.Error(), nil)
		return
	}
	h, ok := s.apiHandlers()[method]
	if !ok {
		s.fail(w, method, "unknown_method", "", map[string]any{"req_method": method})
		return
	}
	want, other := s.opts.BotToken, s.opts.AppToken
	if method == "apps.connections.open" {
		want, other = other, want
	}
	switch req.token {
	case want:
		h(w, req)
	case "":
		s.fail(w, method, "not_authed", "no token", nil)
	case other:
		s.fail(w, method, "not_allowed_token_type", "", nil)
	default:
		s.fail(w, method, "invalid_auth", "", nil)
	}
}

// parseAPIRequest accepts what Slack accepts: query parameters, form bodies,
// multipart bodies and JSON bodies (token then only in the header).
func parseAPIRequest(method string, r *http.Request) (*apiRequest, error) {
	req := &apiRequest{method: method, params: url.Values{}}
	for k, v := range r.URL.Query() {
		req.params[k] = v
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	tokenParam := req.params.Get("token")
	switch {
	case r.Method == http.MethodGet:
	case ct == "application/json":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(body)) > 0 && !bytes.Equal(bytes.TrimSpace(body), []byte("null")) {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(body, &m); err != nil {
				return nil, fmt.Errorf("invalid JSON body: %w", err)
			}
			for k, raw := range m {
				var s string
				switch {
				case json.Unmarshal(raw, &s) == nil:
					req.params.Set(k, s)
				case bytes.Equal(raw, []byte("null")):
				default:
					var buf bytes.Buffer
					_ = json.Compact(&buf, raw)
					req.params.Set(k, buf.String())
				}
			}
		}
	case ct == "multipart/form-data":
		if err := r.ParseMultipartForm(32 << 20); err != nil {
			return nil, err
		}
		for k, v := range r.MultipartForm.Value {
			req.params[k] = v
		}
	default:
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
		for k, v := range r.PostForm {
			req.params[k] = v
		}
	}
	if ct != "application/json" {
		tokenParam = req.params.Get("token")
	}
	// Slack ignores a token inside a JSON body: it must come as a header.
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
		req.token = strings.TrimPrefix(a, "Bearer ")
	} else {
		req.token = tokenParam
	}
	return req, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) ok(w http.ResponseWriter, fields map[string]any) {
	out := map[string]any{"ok": true}
	for k, v := range fields {
		out[k] = v
	}
	writeJSON(w, http.StatusOK, out)
}

// fail answers ok:false the way Slack does (HTTP 200) and records it.
func (s *Server) fail(w http.ResponseWriter, method, code, detail string, extra map[string]any) {
	s.mu.Lock()
	s.rejectLocked(method, code, detail)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, failBody(code, detail, extra))
}

func failBody(code, detail string, extra map[string]any) map[string]any {
	out := map[string]any{"ok": false, "error": code}
	if detail != "" && (code == "invalid_blocks" || code == "invalid_blocks_format") {
		problems := strings.Split(detail, "\n")
		msgs := make([]string, len(problems))
		for i, p := range problems {
			msgs[i] = "[ERROR] " + p
		}
		out["errors"] = problems
		out["response_metadata"] = map[string]any{"messages": msgs}
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// content is a validated message body.
type content struct {
	text        string
	hasText     bool
	blocks      json.RawMessage
	hasBlocks   bool
	attachments bool
}

// checkContent applies Slack's limits on a message body; code is "" when
// acceptable. Whether an empty body is acceptable depends on the method, so
// callers check that with empty.
func checkContent(text string, hasText bool, blocks string, hasBlocks bool, attachments string) (c content, code, detail string) {
	c.text, c.hasText, c.hasBlocks, c.attachments = text, hasText, hasBlocks, attachments != "" && attachments != "[]"
	if n := utf8.RuneCountInString(text); n > maxMessageText {
		return c, "msg_too_long", fmt.Sprintf("text has %d characters, more than %d", n, maxMessageText)
	}
	if hasBlocks && strings.TrimSpace(blocks) != "" {
		norm, code, problems := checkBlocks(blocks)
		if code != "" {
			return c, code, strings.Join(problems, "\n")
		}
		c.blocks = norm
	}
	return c, "", ""
}

// empty reports a body Slack refuses with no_text.
func (c content) empty() bool { return c.text == "" && len(c.blocks) == 0 && !c.attachments }

func (s *Server) contentOf(req *apiRequest) (content, string, string) {
	return checkContent(req.get("text"), req.has("text"), req.get("blocks"), req.has("blocks"), req.get("attachments"))
}

func (s *Server) channelLocked(idOrName string) *channel {
	if c, ok := s.channels[idOrName]; ok {
		return c
	}
	name := strings.TrimPrefix(idOrName, "#")
	for _, c := range s.channels {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (s *Server) authTest(w http.ResponseWriter, _ *apiRequest) {
	s.ok(w, map[string]any{
		"url":                   "https://" + DefaultTeamName + ".slack.com/",
		"team":                  "Example",
		"user":                  "deploybot",
		"team_id":               s.opts.TeamID,
		"user_id":               s.opts.BotUserID,
		"bot_id":                s.opts.BotID,
		"app_id":                s.opts.AppID,
		"is_enterprise_install": false,
	})
}

func (s *Server) appsConnectionsOpen(w http.ResponseWriter, _ *apiRequest) {
	s.mu.Lock()
	ticket := secret()
	s.sock.tickets[ticket] = true
	s.sock.opened++
	s.notifyLocked()
	s.mu.Unlock()
	u := "ws" + strings.TrimPrefix(s.hs.URL, "http") + "/link/?ticket=" + ticket + "&app_id=" + s.opts.AppID
	s.ok(w, map[string]any{"url": u})
}

type bucket struct {
	tokens float64
	last   time.Time
}

// allowLocked takes a token from key's bucket; when it is empty it returns
// the whole seconds to wait, for Retry-After.
func (s *Server) allowLocked(key string) (int, bool) {
	now := time.Now()
	b := s.buckets[key]
	if b == nil {
		b = &bucket{tokens: float64(s.rateBurst), last: now}
		s.buckets[key] = b
	}
	b.tokens = math.Min(float64(s.rateBurst), b.tokens+now.Sub(b.last).Seconds()*s.ratePerSec)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	wait := 1
	if s.ratePerSec > 0 {
		wait = max(1, int(math.Ceil((1-b.tokens)/s.ratePerSec)))
	}
	return wait, false
}

// Hold makes calls of a Web API method wait until the returned release
// function is called: a slow Slack, to show that nothing the bot does
// waits on it when it should not (the ack, for one).
func (s *Server) Hold(method string) (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	if s.holds == nil {
		s.holds = map[string]chan struct{}{}
	}
	s.holds[method] = ch
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.holds, method)
			s.mu.Unlock()
			close(ch)
		})
	}
}
