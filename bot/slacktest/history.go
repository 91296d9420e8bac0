package slacktest

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// conversationsHistory answers the channel's top-level messages (and
// replies broadcast to it), newest first, a page at a time.
func (s *Server) conversationsHistory(w http.ResponseWriter, req *apiRequest) {
	const method = "conversations.history"
	q, code, detail := parsePageQuery(req, s.opts.PageLimit)
	if code != "" {
		s.fail(w, method, code, detail, nil)
		return
	}
	s.mu.Lock()
	ch, code, detail := s.readableChannelLocked(req.get("channel"))
	if code != "" {
		s.mu.Unlock()
		s.fail(w, method, code, detail, nil)
		return
	}
	var msgs []*storedMsg
	for _, m := range ch.top {
		if q.inRange(m.TS) {
			msgs = append(msgs, m)
		}
	}
	slices.SortFunc(msgs, func(a, b *storedMsg) int { return cmpTS(b.TS, a.TS) })
	if q.hasCursor {
		// The cursor names the newest message of the next page.
		i := slices.IndexFunc(msgs, func(m *storedMsg) bool { return tsMicros(m.TS) <= q.cursor })
		if i < 0 {
			i = len(msgs)
		}
		msgs = msgs[i:]
	}
	page, hasMore, next := msgs, false, ""
	if len(page) > q.limit {
		page, hasMore, next = msgs[:q.limit], true, encodeCursor(msgs[q.limit].TS)
	}
	out := make([]any, len(page))
	for i, m := range page {
		out[i] = s.messageJSONWithMetadataLocked(m, q.metadata)
	}
	s.mu.Unlock()
	resp := map[string]any{"messages": out, "has_more": hasMore, "pin_count": 0,
		"channel_actions_ts": nil, "channel_actions_count": 0,
		"response_metadata": map[string]any{"next_cursor": next}}
	if req.has("latest") {
		resp["latest"] = req.get("latest")
	}
	if req.has("oldest") {
		resp["oldest"] = req.get("oldest")
	}
	s.ok(w, resp)
}

// conversationsReplies answers a thread: its parent first, then the replies
// oldest first, a page at a time. The parent comes only with the first page
// and counts towards its limit. A reply's ts stands for its whole thread.
func (s *Server) conversationsReplies(w http.ResponseWriter, req *apiRequest) {
	const method = "conversations.replies"
	q, code, detail := parsePageQuery(req, s.opts.PageLimit)
	if code == "" && req.get("ts") == "" {
		code, detail = "invalid_arguments", "ts is required"
	}
	if code != "" {
		s.fail(w, method, code, detail, nil)
		return
	}
	s.mu.Lock()
	ch, code, detail := s.readableChannelLocked(req.get("channel"))
	if code != "" {
		s.mu.Unlock()
		s.fail(w, method, code, detail, nil)
		return
	}
	parent := s.threadParentLocked(ch, req.get("ts"))
	if parent == nil {
		s.mu.Unlock()
		s.fail(w, method, "thread_not_found", "ts "+req.get("ts"), nil)
		return
	}
	var msgs []*storedMsg
	if !q.hasCursor {
		msgs = append(msgs, parent)
	}
	for _, m := range parent.replies {
		if q.inRange(m.TS) && (!q.hasCursor || tsMicros(m.TS) >= q.cursor) {
			msgs = append(msgs, m)
		}
	}
	page, hasMore, next := msgs, false, ""
	if len(page) > q.limit {
		page, hasMore, next = msgs[:q.limit], true, encodeCursor(msgs[q.limit].TS)
	}
	out := make([]any, len(page))
	for i, m := range page {
		out[i] = s.messageJSONWithMetadataLocked(m, q.metadata)
	}
	s.mu.Unlock()
	s.ok(w, map[string]any{"messages": out, "has_more": hasMore,
		"response_metadata": map[string]any{"next_cursor": next}})
}

// readableChannelLocked finds a channel whose history the bot may read: a
// bot token reads only the conversations its bot is a member of.
func (s *Server) readableChannelLocked(id string) (*channel, string, string) {
	if id == "" {
		return nil, "channel_not_found", "no channel"
	}
	ch := s.channelLocked(id)
	if ch == nil {
		return nil, "channel_not_found", id
	}
	if !contains(ch.members, s.opts.BotUserID) {
		return nil, "not_in_channel", "the bot is not a member of " + ch.id
	}
	return ch, "", ""
}

// pageQuery is the paging and time-range arguments shared by
// conversations.history and conversations.replies.
type pageQuery struct {
	limit                    int
	oldest, latest           int64 // micros; latest < 0 means now
	inclusive                bool
	metadata                 bool
	hasCursor                bool
	cursor                   int64 // micros of the first message of the page
	oldestGiven, latestGiven bool
}

func parsePageQuery(req *apiRequest, pageLimit int) (q pageQuery, code, detail string) {
	q.limit, q.latest = pageLimit, -1
	if v := strings.TrimSpace(req.get("limit")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return q, "invalid_arguments", "limit " + strconv.Quote(v) + " is not a number of items"
		}
		if n > 0 && n < pageLimit {
			q.limit = n
		}
	}
	if v := req.get("oldest"); v != "" {
		us, ok := parseTS(v)
		if !ok {
			return q, "invalid_ts_oldest", v
		}
		q.oldest, q.oldestGiven = us, true
	}
	if v := req.get("latest"); v != "" {
		us, ok := parseTS(v)
		if !ok {
			return q, "invalid_ts_latest", v
		}
		q.latest, q.latestGiven = us, true
	}
	q.inclusive = boolParam(req.get("inclusive"))
	q.metadata = boolParam(req.get("include_all_metadata"))
	if v := req.get("cursor"); v != "" {
		us, ok := decodeCursor(v)
		if !ok {
			return q, "invalid_cursor", v
		}
		q.cursor, q.hasCursor = us, true
	}
	return q, "", ""
}

// inRange applies oldest, latest and inclusive.
func (q pageQuery) inRange(ts string) bool {
	us := tsMicros(ts)
	if q.oldestGiven && (us < q.oldest || us == q.oldest && !q.inclusive) {
		return false
	}
	if q.latestGiven && (us > q.latest || us == q.latest && !q.inclusive) {
		return false
	}
	return true
}

// boolParam reads a boolean argument the way Slack does: true or 1.
func boolParam(v string) bool { return v == "true" || v == "1" }

// parseTS reads a Slack timestamp ("1512085950.000216", or whole seconds)
// as microseconds.
func parseTS(v string) (int64, bool) {
	sec, frac, _ := strings.Cut(v, ".")
	if sec == "" || strings.Trim(sec, "0123456789") != "" || strings.Trim(frac, "0123456789") != "" || len(sec) > 12 {
		return 0, false
	}
	if len(frac) > 6 {
		frac = frac[:6]
	}
	frac += strings.Repeat("0", 6-len(frac))
	s, _ := strconv.ParseInt(sec, 10, 64)
	f, _ := strconv.ParseInt(frac, 10, 64)
	return s*1e6 + f, true
}

// tsMicros is parseTS for the server's own, always valid, timestamps.
func tsMicros(ts string) int64 {
	us, _ := parseTS(ts)
	return us
}

func cmpTS(a, b string) int {
	x, y := tsMicros(a), tsMicros(b)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// encodeCursor makes an opaque cursor like Slack's ("bmV4dF90czox…",
// base64 of "next_ts:<ts without the dot>").
func encodeCursor(ts string) string {
	return base64.StdEncoding.EncodeToString([]byte("next_ts:" + strconv.FormatInt(tsMicros(ts), 10)))
}

func decodeCursor(c string) (int64, bool) {
	b, err := base64.StdEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	v, ok := strings.CutPrefix(string(b), "next_ts:")
	if !ok || v == "" || strings.Trim(v, "0123456789") != "" || len(v) > 18 {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}
