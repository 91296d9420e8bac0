package slacktest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

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
	meta, metaCode, metaDetail := checkMetadata(req.get("metadata"))
	if metaCode == "invalid_metadata_format" {
		s.fail(w, method, metaCode, metaDetail, nil)
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
		BotID: s.opts.BotID, Text: c.text, Blocks: c.blocks, Metadata: meta}}
	if parent != nil {
		s.addReplyLocked(ch, parent, m)
		if req.get("reply_broadcast") == "true" {
			ch.top = append(ch.top, m)
		}
	} else {
		ch.top = append(ch.top, m)
		ch.byTS[m.TS] = m
	}
	resp := map[string]any{"channel": ch.id, "ts": m.TS, "message": s.messageJSONWithMetadataLocked(m, true)}
	if metaCode != "" {
		// Slack posts the message without its metadata and only warns.
		s.rejectLocked(method, metaCode, metaDetail)
		resp["warning"] = metaCode
		resp["response_metadata"] = map[string]any{"warnings": []string{metaCode}}
	}
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
	// Without metadata the message keeps its own; an empty object removes it.
	rawMeta := strings.TrimSpace(req.get("metadata"))
	meta, metaCode, metaDetail := checkMetadata(rawMeta)
	if rawMeta == "{}" {
		metaCode = ""
	}
	if metaCode == "invalid_metadata_format" {
		s.fail(w, method, metaCode, metaDetail, nil)
		return
	}
	s.mu.Lock()
	if !s.applyEditLocked(m, c) {
		s.mu.Unlock()
		s.fail(w, method, "no_text", "the edit would leave the message empty", nil)
		return
	}
	if rawMeta != "" && metaCode == "" {
		m.Metadata = meta
	}
	resp := map[string]any{"channel": ch.id, "ts": m.TS, "text": m.Text, "message": s.messageJSONWithMetadataLocked(m, true)}
	if metaCode != "" {
		s.rejectLocked(method, metaCode, metaDetail)
		resp["warning"] = metaCode
		resp["response_metadata"] = map[string]any{"warnings": []string{metaCode}}
	}
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
	if !bytes.Equal(blocks, m.Blocks) && len(m.Blocks) > 0 {
		m.older = append(m.older, m.Blocks)
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

// messageJSONWithMetadataLocked is messageJSONLocked plus the message's
// metadata when asked for: conversations.history and conversations.replies
// show it only with include_all_metadata.
func (s *Server) messageJSONWithMetadataLocked(m *storedMsg, withMetadata bool) map[string]any {
	o := s.messageJSONLocked(m)
	if withMetadata && len(m.Metadata) > 0 {
		o["metadata"] = json.RawMessage(m.Metadata)
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
