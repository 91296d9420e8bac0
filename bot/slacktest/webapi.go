package slacktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
		"files.getUploadURLExternal":   s.filesGetUploadURLExternal,
		"files.completeUploadExternal": s.filesCompleteUploadExternal,
	}
}

func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	s.mu.Lock()
	s.calls[method]++
	s.notifyLocked()
	s.mu.Unlock()

	req, err := parseAPIRequest(method, r)
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
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
		req.token = strings.TrimPrefix(a, "Bearer ")
	} else {
		req.token = req.params.Get("token")
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

func (s *Server) chatPostMessage(w http.ResponseWriter, req *apiRequest) {
	const method = "chat.postMessage"
	s.mu.Lock()
	ch := s.channelLocked(req.get("channel"))
	if ch == nil {
		s.mu.Unlock()
		s.fail(w, method, "channel_not_found", req.get("channel"), nil)
		return
	}
	if wait, ok := s.allowLocked(method + ":" + ch.id); !ok {
		s.rejectLocked(method, "ratelimited", "channel "+ch.id)
		s.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(wait))
		writeJSON(w, http.StatusTooManyRequests, failBody("ratelimited", "", nil))
		return
	}
	s.mu.Unlock()
	c, code, detail := s.contentOf(req)
	if code == "" && c.empty() {
		code = "no_text"
	}
	if code != "" {
		s.fail(w, method, code, detail, nil)
		return
	}
	s.mu.Lock()
	var parent *storedMsg
	if ts := req.get("thread_ts"); ts != "" {
		if parent = s.threadParentLocked(ch, ts); parent == nil {
			s.mu.Unlock()
			s.fail(w, method, "thread_not_found", ts, nil)
			return
		}
	}
	m := &storedMsg{byBot: true, Message: Message{Channel: ch.id, TS: s.nextTSLocked(), User: s.opts.BotUserID,
		BotID: s.opts.BotID, Text: c.text, Blocks: c.blocks}}
	if parent != nil {
		s.addReplyLocked(ch, parent, m)
		if req.get("reply_broadcast") == "true" {
			ch.top = append(ch.top, m)
		}
	} else {
		ch.top = append(ch.top, m)
		ch.byTS[m.TS] = m
	}
	resp := map[string]any{"channel": ch.id, "ts": m.TS, "message": s.messageJSONLocked(m)}
	var echo *Envelope
	if s.opts.EchoBotMessages {
		ev := map[string]any{"type": "message", "channel": ch.id, "user": m.User, "bot_id": m.BotID,
			"app_id": s.opts.AppID, "text": m.Text, "ts": m.TS, "event_ts": m.TS, "channel_type": "channel",
			"team": s.opts.TeamID}
		if len(m.Blocks) > 0 {
			ev["blocks"] = m.Blocks
		}
		if m.ThreadTS != "" {
			ev["thread_ts"] = m.ThreadTS
		}
		echo = s.eventEnvelopeLocked(ev)
	}
	s.notifyLocked()
	s.mu.Unlock()
	s.ok(w, resp)
	if echo != nil {
		go s.deliver(echo)
	}
}

func (s *Server) chatUpdate(w http.ResponseWriter, req *apiRequest) {
	const method = "chat.update"
	s.mu.Lock()
	ch := s.channelLocked(req.get("channel"))
	if ch == nil {
		s.mu.Unlock()
		s.fail(w, method, "channel_not_found", req.get("channel"), nil)
		return
	}
	m := ch.byTS[req.get("ts")]
	if m == nil {
		s.mu.Unlock()
		s.fail(w, method, "message_not_found", "ts "+req.get("ts"), nil)
		return
	}
	if !m.byBot {
		s.mu.Unlock()
		s.fail(w, method, "cant_update_message", "message "+m.TS+" was not posted by the bot", nil)
		return
	}
	s.mu.Unlock()
	c, code, detail := s.contentOf(req)
	if code == "" && !c.hasText && !c.hasBlocks {
		code = "no_text"
	}
	if code != "" {
		s.fail(w, method, code, detail, nil)
		return
	}
	s.mu.Lock()
	if !s.applyEditLocked(m, c) {
		s.mu.Unlock()
		s.fail(w, method, "no_text", "the edit would leave the message empty", nil)
		return
	}
	resp := map[string]any{"channel": ch.id, "ts": m.TS, "text": m.Text, "message": s.messageJSONLocked(m)}
	s.mu.Unlock()
	s.ok(w, resp)
}

// applyEditLocked replaces what an edit names: Slack keeps the blocks when an
// update leaves them out, and the text likewise. It refuses an edit that
// would leave the message empty.
func (s *Server) applyEditLocked(m *storedMsg, c content) bool {
	text, blocks := m.Text, m.Blocks
	if c.hasText {
		text = c.text
	}
	if c.hasBlocks {
		blocks = c.blocks
	}
	if text == "" && len(blocks) == 0 {
		return false
	}
	if text != m.Text || !bytes.Equal(blocks, m.Blocks) {
		m.Edits++
	}
	m.Text, m.Blocks = text, blocks
	s.notifyLocked()
	return true
}

func (s *Server) chatPostEphemeral(w http.ResponseWriter, req *apiRequest) {
	const method = "chat.postEphemeral"
	s.mu.Lock()
	ch := s.channelLocked(req.get("channel"))
	_, userOK := s.users[req.get("user")]
	s.mu.Unlock()
	switch {
	case ch == nil:
		s.fail(w, method, "channel_not_found", req.get("channel"), nil)
		return
	case !userOK:
		s.fail(w, method, "user_not_found", req.get("user"), nil)
		return
	}
	c, code, detail := s.contentOf(req)
	if code == "" && c.empty() {
		code = "no_text"
	}
	if code != "" {
		s.fail(w, method, code, detail, nil)
		return
	}
	s.mu.Lock()
	m := &storedMsg{byBot: true, Message: Message{Channel: ch.id, TS: s.nextTSLocked(), ThreadTS: req.get("thread_ts"),
		User: s.opts.BotUserID, BotID: s.opts.BotID, Text: c.text, Blocks: c.blocks, Ephemeral: true}}
	uid := req.get("user")
	s.ephemerals[uid] = append(s.ephemerals[uid], m)
	s.notifyLocked()
	s.mu.Unlock()
	s.ok(w, map[string]any{"message_ts": m.TS})
}

func (s *Server) chatGetPermalink(w http.ResponseWriter, req *apiRequest) {
	const method = "chat.getPermalink"
	s.mu.Lock()
	ch := s.channelLocked(req.get("channel"))
	var m *storedMsg
	if ch != nil {
		m = ch.byTS[req.get("message_ts")]
	}
	s.mu.Unlock()
	switch {
	case ch == nil:
		s.fail(w, method, "channel_not_found", req.get("channel"), nil)
	case m == nil:
		s.fail(w, method, "message_not_found", req.get("message_ts"), nil)
	default:
		s.ok(w, map[string]any{"channel": ch.id, "permalink": permalink(ch.id, m.TS, m.ThreadTS)})
	}
}

func (s *Server) usergroupsUsersList(w http.ResponseWriter, req *apiRequest) {
	s.mu.Lock()
	users, ok := s.userGroups[req.get("usergroup")]
	users = append([]string{}, users...)
	s.mu.Unlock()
	if !ok {
		s.fail(w, req.method, "no_such_subteam", req.get("usergroup"), nil)
		return
	}
	s.ok(w, map[string]any{"users": users})
}

func (s *Server) userJSONLocked(u *user) map[string]any {
	return map[string]any{
		"id": u.id, "team_id": s.opts.TeamID, "name": u.name, "deleted": false, "real_name": u.name,
		"tz": "Etc/UTC", "tz_label": "Coordinated Universal Time", "tz_offset": 0,
		"profile": map[string]any{"real_name": u.name, "display_name": u.name, "real_name_normalized": u.name,
			"display_name_normalized": u.name, "team": s.opts.TeamID},
		"is_bot": u.id == s.opts.BotUserID, "is_admin": false, "is_app_user": false, "updated": time.Now().Unix(),
	}
}

func (s *Server) usersInfo(w http.ResponseWriter, req *apiRequest) {
	s.mu.Lock()
	if req.has("users") {
		var out []any
		for _, id := range strings.Split(req.get("users"), ",") {
			u, ok := s.users[id]
			if !ok {
				s.mu.Unlock()
				s.fail(w, req.method, "user_not_found", id, nil)
				return
			}
			out = append(out, s.userJSONLocked(u))
		}
		s.mu.Unlock()
		s.ok(w, map[string]any{"users": out})
		return
	}
	u, ok := s.users[req.get("user")]
	var uj map[string]any
	if ok {
		uj = s.userJSONLocked(u)
	}
	s.mu.Unlock()
	if !ok {
		s.fail(w, req.method, "user_not_found", req.get("user"), nil)
		return
	}
	s.ok(w, map[string]any{"user": uj})
}

func (s *Server) channelJSONLocked(c *channel) map[string]any {
	isMember := false
	for _, m := range c.members {
		isMember = isMember || m == s.opts.BotUserID
	}
	return map[string]any{
		"id": c.id, "name": c.name, "name_normalized": c.name, "is_channel": true, "is_group": false,
		"is_im": false, "is_mpim": false, "is_private": false, "is_archived": false, "is_general": false,
		"created": c.created, "creator": s.opts.BotUserID, "is_member": isMember, "num_members": len(c.members),
		"topic":   map[string]any{"value": "", "creator": "", "last_set": 0},
		"purpose": map[string]any{"value": "", "creator": "", "last_set": 0},
	}
}

func (s *Server) conversationsInfo(w http.ResponseWriter, req *apiRequest) {
	s.mu.Lock()
	ch := s.channelLocked(req.get("channel"))
	var cj map[string]any
	if ch != nil {
		cj = s.channelJSONLocked(ch)
	}
	s.mu.Unlock()
	if ch == nil {
		s.fail(w, req.method, "channel_not_found", req.get("channel"), nil)
		return
	}
	s.ok(w, map[string]any{"channel": cj})
}

func (s *Server) conversationsCreate(w http.ResponseWriter, req *apiRequest) {
	name := req.get("name")
	code := ""
	switch {
	case name == "":
		code = "invalid_name_required"
	case utf8.RuneCountInString(name) > 80:
		code = "invalid_name_maxlength"
	case strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) >= 0:
		code = "invalid_name_specials"
	}
	if code != "" {
		s.fail(w, req.method, code, name, nil)
		return
	}
	s.mu.Lock()
	for _, c := range s.channels {
		if c.name == name {
			s.mu.Unlock()
			s.fail(w, req.method, "name_taken", name, nil)
			return
		}
	}
	c := s.addChannelLocked(s.nextIDLocked("C"), name)
	cj := s.channelJSONLocked(c)
	s.notifyLocked()
	s.mu.Unlock()
	s.ok(w, map[string]any{"channel": cj})
}

func (s *Server) conversationsInvite(w http.ResponseWriter, req *apiRequest) {
	s.mu.Lock()
	ch := s.channelLocked(req.get("channel"))
	if ch == nil {
		s.mu.Unlock()
		s.fail(w, req.method, "channel_not_found", req.get("channel"), nil)
		return
	}
	ids := strings.Split(req.get("users"), ",")
	code, bad := "", ""
	for _, id := range ids {
		switch {
		case id == "":
			code = "no_user"
		case id == s.opts.BotUserID:
			code = "cant_invite_self"
		case s.users[id] == nil:
			code = "user_not_found"
		case contains(ch.members, id):
			code = "already_in_channel"
		}
		if code != "" {
			bad = id
			break
		}
	}
	if code != "" {
		s.mu.Unlock()
		s.fail(w, req.method, code, bad, nil)
		return
	}
	ch.members = append(ch.members, ids...)
	cj := s.channelJSONLocked(ch)
	s.notifyLocked()
	s.mu.Unlock()
	s.ok(w, map[string]any{"channel": cj})
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// messageJSONLocked renders a stored message as the Web API and interaction
// payloads show it.
func (s *Server) messageJSONLocked(m *storedMsg) map[string]any {
	o := map[string]any{"type": "message", "text": m.Text, "ts": m.TS, "team": s.opts.TeamID}
	if m.User != "" {
		o["user"] = m.User
	}
	if m.BotID != "" {
		o["bot_id"] = m.BotID
		if m.byBot {
			o["app_id"] = s.opts.AppID
			o["bot_profile"] = map[string]any{"id": m.BotID, "app_id": s.opts.AppID, "name": "deploybot",
				"team_id": s.opts.TeamID, "deleted": false}
		} else {
			o["subtype"] = "bot_message"
		}
	}
	if len(m.Blocks) > 0 {
		o["blocks"] = json.RawMessage(m.Blocks)
	}
	if m.ThreadTS != "" {
		o["thread_ts"] = m.ThreadTS
	}
	if len(m.replies) > 0 {
		o["reply_count"] = len(m.replies)
		o["latest_reply"] = m.replies[len(m.replies)-1].TS
	}
	if m.Edits > 0 {
		o["edited"] = map[string]any{"user": m.User, "ts": m.TS}
	}
	if len(m.Files) > 0 {
		var fs []any
		for _, f := range m.Files {
			fs = append(fs, map[string]any{"id": f.ID, "name": f.Name, "title": f.Title, "size": len(f.Content)})
		}
		o["files"] = fs
	}
	return o
}

// threadParentLocked resolves thread_ts to the thread's parent: a reply's
// ts means its parent's thread, as in Slack.
func (s *Server) threadParentLocked(ch *channel, ts string) *storedMsg {
	if ts == "" {
		return nil
	}
	m := ch.byTS[ts]
	if m != nil && m.ThreadTS != "" && m.ThreadTS != m.TS {
		m = ch.byTS[m.ThreadTS]
	}
	return m
}

func (s *Server) addReplyLocked(ch *channel, parent, m *storedMsg) {
	parent.ThreadTS = parent.TS // Slack marks a thread's parent with its own ts
	m.ThreadTS = parent.TS
	parent.replies = append(parent.replies, m)
	ch.byTS[m.TS] = m
}

func (s *Server) findEphemeralLocked(userID, channelID, ts string) *storedMsg {
	for _, m := range s.ephemerals[userID] {
		if m.Channel == channelID && m.TS == ts {
			return m
		}
	}
	for _, ru := range s.respURLs {
		if ru.user != userID {
			continue
		}
		for _, m := range ru.responses {
			if m.Ephemeral && m.Channel == channelID && m.TS == ts {
				return m
			}
		}
	}
	return nil
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
