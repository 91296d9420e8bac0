package slacktest

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// SlashCommand sends a slash_commands envelope as if userID typed
// "command text" in channelID. Unknown users and channels are created.
func (s *Server) SlashCommand(userID, channelID, command, text string) *Envelope {
	return s.SlashCommandFrom(s.opts.AppID, s.opts.TeamID, userID, channelID, command, text)
}

// SlashCommandFrom is SlashCommand as another app or workspace would send it
// (a misrouted or forged envelope): api_app_id and team_id are the given ones.
func (s *Server) SlashCommandFrom(appID, teamID, userID, channelID, command, text string) *Envelope {
	s.mu.Lock()
	u := s.userLocked(userID)
	ch := s.channelForEventLocked(channelID)
	ru := s.newResponseURLLocked("commands", ch.id, "", userID, false)
	payload := map[string]any{
		"token":                 "verification-token",
		"team_id":               teamID,
		"team_domain":           DefaultTeamName,
		"channel_id":            ch.id,
		"channel_name":          ch.name,
		"user_id":               u.id,
		"user_name":             u.name,
		"command":               command,
		"text":                  text,
		"api_app_id":            appID,
		"is_enterprise_install": "false", // a string, as Slack forwards the form field
		"response_url":          ru.url,
		"trigger_id":            s.triggerIDLocked(u.id),
	}
	e := s.newEnvelopeLocked("slash_commands", payload, true, ru.url)
	s.mu.Unlock()
	s.deliver(e)
	return e
}

// Click sends a block_actions envelope for a button in the message at
// messageTS — a channel message or an ephemeral one shown to userID. The
// button is the one whose action_id is actionID, or, when actionID is a bare
// verb like "approve", starts with "approve:"; a non-empty value must match
// too. The payload carries the button's real action_id, block_id and value.
// A button from an earlier version of the message (before a chat.update)
// can still be clicked, as on a client that has not redrawn yet: that is how
// double clicks and stale clicks reach a bot. A user can only click what is
// or was there: when no such button exists nothing is sent, WaitAck returns
// the error and the refusal is recorded in Rejected.
func (s *Server) Click(userID, channelID, messageTS, actionID, value string) *Envelope {
	s.mu.Lock()
	u := s.userLocked(userID)
	ch, chOK := s.channels[channelID]
	var m *storedMsg
	if chOK {
		m = ch.byTS[messageTS]
	}
	if m == nil {
		m = s.findEphemeralLocked(userID, channelID, messageTS)
	}
	if m == nil {
		err := fmt.Errorf("slacktest: click: no message %s in %s visible to %s", messageTS, channelID, userID)
		s.rejectLocked("click", "message_not_found", err.Error())
		s.mu.Unlock()
		return &Envelope{ID: "unsent", Type: "interactive", err: err}
	}
	btn, seen := pickButton(findButtons(m.Blocks), actionID, value)
	for i := len(m.older) - 1; btn == nil && i >= 0; i-- {
		btn, _ = pickButton(findButtons(m.older[i]), actionID, value)
	}
	if btn == nil {
		err := fmt.Errorf("slacktest: click: message %s has no button %s=%s (buttons: %s)", messageTS, actionID, value, strings.Join(seen, ", "))
		s.rejectLocked("click", "button_not_found", err.Error())
		s.mu.Unlock()
		return &Envelope{ID: "unsent", Type: "interactive", err: err}
	}
	ch = s.channelForEventLocked(channelID)
	ru := s.newResponseURLLocked("actions", ch.id, messageTS, userID, m.Ephemeral)
	action := map[string]any{
		"action_id": btn.actionID,
		"block_id":  btn.blockID,
		"text":      btn.text,
		"value":     btn.value,
		"type":      "button",
		"action_ts": s.nextTSLocked(),
	}
	if btn.style != "" {
		action["style"] = btn.style
	}
	container := map[string]any{
		"type":         "message",
		"message_ts":   messageTS,
		"channel_id":   ch.id,
		"is_ephemeral": m.Ephemeral,
	}
	if m.ThreadTS != "" {
		container["thread_ts"] = m.ThreadTS
	}
	payload := map[string]any{
		"type":                  "block_actions",
		"user":                  map[string]any{"id": u.id, "username": u.name, "name": u.name, "team_id": s.opts.TeamID},
		"api_app_id":            s.opts.AppID,
		"token":                 "verification-token",
		"container":             container,
		"trigger_id":            s.triggerIDLocked(u.id),
		"team":                  map[string]any{"id": s.opts.TeamID, "domain": DefaultTeamName},
		"enterprise":            nil,
		"is_enterprise_install": false,
		"channel":               map[string]any{"id": ch.id, "name": ch.name},
		"state":                 map[string]any{"values": map[string]any{}},
		"response_url":          ru.url,
		"actions":               []any{action},
	}
	if !m.Ephemeral { // Slack does not send ephemeral messages back
		payload["message"] = s.messageJSONLocked(m)
	}
	e := s.newEnvelopeLocked("interactive", payload, false, ru.url)
	s.mu.Unlock()
	s.deliver(e)
	return e
}

// PostUserMessage stores a message in the channel and sends its events_api
// message event. A non-empty botID makes it a bot_message from that bot.
func (s *Server) PostUserMessage(userID, channelID, text string, botID string) *Envelope {
	return s.postAsUser(userID, channelID, "", text, botID)
}

// PostUserReply is PostUserMessage for a reply in the thread of threadTS.
func (s *Server) PostUserReply(userID, channelID, threadTS, text string) *Envelope {
	return s.postAsUser(userID, channelID, threadTS, text, "")
}

func (s *Server) postAsUser(userID, channelID, threadTS, text, botID string) *Envelope {
	s.mu.Lock()
	ch := s.channelForEventLocked(channelID)
	if userID != "" {
		s.userLocked(userID)
	}
	m := &storedMsg{Message: Message{Channel: ch.id, TS: s.nextTSLocked(), User: userID, Text: text, BotID: botID}}
	ev := map[string]any{
		"type":         "message",
		"channel":      ch.id,
		"text":         text,
		"ts":           m.TS,
		"event_ts":     m.TS,
		"channel_type": "channel",
		"team":         s.opts.TeamID,
	}
	if userID != "" {
		ev["user"] = userID
	}
	if botID != "" {
		ev["subtype"] = "bot_message"
		ev["bot_id"] = botID
	} else {
		ev["client_msg_id"] = newUUID()
		m.Blocks, _ = json.Marshal([]any{map[string]any{
			"type": "rich_text", "block_id": shortID(),
			"elements": []any{map[string]any{"type": "rich_text_section",
				"elements": []any{map[string]any{"type": "text", "text": text}}}},
		}})
		ev["blocks"] = m.Blocks
	}
	if parent := s.threadParentLocked(ch, threadTS); parent != nil {
		s.addReplyLocked(ch, parent, m)
		ev["thread_ts"] = parent.TS
		ev["parent_user_id"] = parent.User
	} else {
		ch.top = append(ch.top, m)
		ch.byTS[m.TS] = m
	}
	e := s.eventEnvelopeLocked(ev)
	s.mu.Unlock()
	s.deliver(e)
	return e
}

// eventEnvelopeLocked wraps an inner event in an event_callback envelope.
func (s *Server) eventEnvelopeLocked(ev map[string]any) *Envelope {
	now := time.Now().Unix()
	payload := map[string]any{
		"token":      "verification-token",
		"team_id":    s.opts.TeamID,
		"api_app_id": s.opts.AppID,
		"event":      ev,
		"type":       "event_callback",
		"event_id":   "Ev" + strings.ToUpper(shortID()+shortID()),
		"event_time": now,
		"authorizations": []any{map[string]any{
			"enterprise_id": nil, "team_id": s.opts.TeamID, "user_id": s.opts.BotUserID,
			"is_bot": true, "is_enterprise_install": false,
		}},
		"is_ext_shared_channel": false,
		"event_context":         "4-" + secret(),
	}
	return s.newEnvelopeLocked("events_api", payload, false, "")
}

// pickButton prefers an exact action_id over a verb-prefix match; seen lists
// the candidates for the error message.
func pickButton(bs []button, actionID, value string) (*button, []string) {
	var seen []string
	var prefixed *button
	for i, b := range bs {
		seen = append(seen, b.actionID+"="+b.value)
		if value != "" && b.value != value {
			continue
		}
		if b.actionID == actionID {
			return &bs[i], nil
		}
		if prefixed == nil && !strings.Contains(actionID, ":") && strings.HasPrefix(b.actionID, actionID+":") {
			prefixed = &bs[i]
		}
	}
	if prefixed != nil {
		return prefixed, nil
	}
	return nil, seen
}

// PostBotMessage stores a message from another app's bot (a Sentry alert,
// for one) and sends its events_api message event: subtype bot_message,
// the bot's username, and its content in blocks and/or legacy attachments,
// with text only as the short fallback, as such apps post.
func (s *Server) PostBotMessage(channelID, botID, username, text string, blocks, attachments json.RawMessage) *Envelope {
	s.mu.Lock()
	ch := s.channelForEventLocked(channelID)
	m := &storedMsg{Message: Message{Channel: ch.id, TS: s.nextTSLocked(), Text: text, BotID: botID, Blocks: blocks}}
	ev := map[string]any{
		"type": "message", "subtype": "bot_message", "bot_id": botID, "username": username,
		"channel": ch.id, "text": text, "ts": m.TS, "event_ts": m.TS, "channel_type": "channel", "team": s.opts.TeamID,
	}
	if len(blocks) > 0 {
		ev["blocks"] = blocks
	}
	if len(attachments) > 0 {
		ev["attachments"] = attachments
	}
	ch.top = append(ch.top, m)
	ch.byTS[m.TS] = m
	e := s.eventEnvelopeLocked(ev)
	s.mu.Unlock()
	s.deliver(e)
	return e
}
