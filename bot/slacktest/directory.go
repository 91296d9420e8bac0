package slacktest

import (
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

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
