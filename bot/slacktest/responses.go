package slacktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// maxResponseURLUses is Slack's limit on posts to one response_url (within
// Options.ResponseURLTTL); long-lived messages must use chat.update instead.
const maxResponseURLUses = 5

type responseURL struct {
	url, kind string
	channel   string
	messageTS string // the clicked message, for actions
	user      string
	ephemeral bool // the clicked message is ephemeral
	created   time.Time
	uses      int
	responses []*storedMsg
}

// responseBody is what slack-go (or anyone) posts to a response_url.
type responseBody struct {
	Text            string          `json:"text"`
	Blocks          json.RawMessage `json:"blocks"`
	Attachments     json.RawMessage `json:"attachments"`
	ResponseType    string          `json:"response_type"`
	ReplaceOriginal flexBool        `json:"replace_original"`
	DeleteOriginal  flexBool        `json:"delete_original"`
	ThreadTS        string          `json:"thread_ts"`
}

// flexBool accepts true and "true": Slack reads both.
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	switch string(bytes.TrimSpace(data)) {
	case "true", `"true"`:
		*b = true
	case "false", `"false"`, "null", `""`:
		*b = false
	default:
		return fmt.Errorf("not a boolean: %s", data)
	}
	return nil
}

func (s *Server) newResponseURLLocked(kind, channelID, messageTS, userID string, ephemeral bool) *responseURL {
	s.seq++
	path := fmt.Sprintf("/hooks/%s/%s/%d/%s", kind, s.opts.TeamID, s.seq, secret())
	ru := &responseURL{url: s.hs.URL + path, kind: kind, channel: channelID, messageTS: messageTS,
		user: userID, ephemeral: ephemeral, created: time.Now()}
	s.respURLs[path] = ru
	return ru
}

// Responses lists what was posted through e's response_url (and, for a slash
// command, a message in its ack payload), in order. A replace_original entry
// is the replaced message itself, in its latest version.
func (s *Server) Responses(e *Envelope) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ru := s.respURLs[strings.TrimPrefix(e.ResponseURL, s.hs.URL)]; ru != nil {
		return copyMsgs(ru.responses)
	}
	return nil
}

// ResponseURLUses counts the accepted posts to e's response_url.
func (s *Server) ResponseURLUses(e *Envelope) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ru := s.respURLs[strings.TrimPrefix(e.ResponseURL, s.hs.URL)]; ru != nil {
		return ru.uses
	}
	return 0
}

func (s *Server) handleResponseURL(w http.ResponseWriter, r *http.Request) {
	const method = "response_url"
	refuse := func(status int, code, detail string) {
		s.mu.Lock()
		s.rejectLocked(method, code, detail)
		s.mu.Unlock()
		writeJSON(w, status, failBody(code, detail, nil))
	}
	if r.Method != http.MethodPost {
		refuse(http.StatusMethodNotAllowed, "invalid_method", r.Method)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		refuse(http.StatusBadRequest, "invalid_payload", err.Error())
		return
	}
	s.mu.Lock()
	ru := s.respURLs[r.URL.Path]
	var code string
	switch {
	case ru == nil:
		code = "invalid_url"
	case time.Since(ru.created) > s.opts.ResponseURLTTL:
		code = "expired_url"
	case ru.uses >= maxResponseURLUses:
		code = "used_url"
	}
	s.mu.Unlock()
	if code != "" {
		refuse(http.StatusNotFound, code, r.URL.Path)
		return
	}
	var b responseBody
	if err := json.Unmarshal(body, &b); err != nil {
		refuse(http.StatusBadRequest, "invalid_payload", err.Error())
		return
	}
	s.mu.Lock()
	code, detail := s.respondLocked(ru, b)
	if code == "" {
		ru.uses++
		s.notifyLocked()
	} else {
		s.rejectLocked(method, code, detail)
	}
	s.mu.Unlock()
	if code != "" {
		writeJSON(w, http.StatusOK, failBody(code, detail, nil))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// ackResponseLocked shows a slash command's ack payload the way Slack does:
// as a response to the command, without using up its response_url.
func (s *Server) ackResponseLocked(e *Envelope, payload json.RawMessage) {
	var b responseBody
	if err := json.Unmarshal(payload, &b); err != nil {
		s.rejectLocked("ack", "invalid_payload", err.Error())
		return
	}
	if b.Text == "" && !present(b.Blocks) && !present(b.Attachments) {
		return // an ack like {} shows nothing
	}
	if ru := s.respURLs[strings.TrimPrefix(e.ResponseURL, s.hs.URL)]; ru != nil {
		if code, detail := s.respondLocked(ru, b); code != "" {
			s.rejectLocked("ack", code, detail)
		}
	}
}

// respondLocked applies one response; code is "" when it was accepted.
func (s *Server) respondLocked(ru *responseURL, b responseBody) (code, detail string) {
	hasBlocks := present(b.Blocks)
	att := ""
	if present(b.Attachments) {
		att = string(b.Attachments)
	}
	c, code, detail := checkContent(b.Text, true, string(b.Blocks), hasBlocks, att)
	if code != "" {
		return code, detail
	}
	target := s.responseTargetLocked(ru)
	if b.DeleteOriginal {
		if target == nil {
			return "message_not_found", "nothing to delete for " + ru.kind
		}
		s.deleteLocked(target)
		return "", ""
	}
	if c.empty() {
		return "no_text", ""
	}
	if b.ReplaceOriginal && target != nil {
		// replace_original swaps the whole message, blocks included.
		c.hasText, c.hasBlocks = true, true
		s.applyEditLocked(target, c)
		ru.responses = append(ru.responses, target)
		return "", ""
	}
	m := &storedMsg{byBot: true, Message: Message{Channel: ru.channel, TS: s.nextTSLocked(), User: s.opts.BotUserID,
		BotID: s.opts.BotID, Text: c.text, Blocks: c.blocks}}
	if b.ResponseType == "in_channel" {
		ch := s.channelForEventLocked(ru.channel)
		if parent := s.threadParentLocked(ch, b.ThreadTS); parent != nil {
			s.addReplyLocked(ch, parent, m)
		} else {
			ch.top = append(ch.top, m)
			ch.byTS[m.TS] = m
		}
	} else {
		m.Ephemeral = true
		m.ThreadTS = b.ThreadTS
	}
	ru.responses = append(ru.responses, m)
	s.notifyLocked()
	return "", ""
}

// responseTargetLocked is the message a click's response_url may replace.
func (s *Server) responseTargetLocked(ru *responseURL) *storedMsg {
	if ru.kind != "actions" {
		return nil
	}
	if ru.ephemeral {
		return s.findEphemeralLocked(ru.user, ru.channel, ru.messageTS)
	}
	if ch, ok := s.channels[ru.channel]; ok {
		return ch.byTS[ru.messageTS]
	}
	return nil
}

func (s *Server) deleteLocked(m *storedMsg) {
	remove := func(list []*storedMsg) []*storedMsg {
		out := list[:0]
		for _, x := range list {
			if x != m {
				out = append(out, x)
			}
		}
		return out
	}
	if m.Ephemeral {
		for u, list := range s.ephemerals {
			s.ephemerals[u] = remove(list)
		}
		for _, ru := range s.respURLs {
			ru.responses = remove(ru.responses)
		}
	} else if ch, ok := s.channels[m.Channel]; ok {
		ch.top = remove(ch.top)
		if p := ch.byTS[m.ThreadTS]; p != nil && p != m {
			p.replies = remove(p.replies)
		}
		delete(ch.byTS, m.TS)
	}
	s.notifyLocked()
}

// present tells a JSON field that was sent from one absent or null.
func present(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && !bytes.Equal(t, []byte("null"))
}
