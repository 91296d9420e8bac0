package bot

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Groups resolves a Slack user group to its members (usergroups.users.list).
type Groups interface {
	GroupMembers(ctx context.Context, groupID string) ([]string, error)
}

// Roles decides who is a deployer and who an approver. Config entries are
// user ids or user-group ids; groups are resolved through Slack and cached
// briefly, so a click does not cost a Web API call, yet a change of group
// membership takes effect within a minute.
type Roles struct {
	deployers, approvers []string
	groups               Groups
	ttl                  time.Duration
	maxStale             time.Duration
	now                  func() time.Time

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	members map[string]bool
	at      time.Time
}

// NewRoles makes the policy. groups may be nil when no entry is a group.
// maxStale bounds how old a group's membership may be when Slack cannot be
// asked (slack.group_cache_max_stale); 0 means the default, 10 minutes.
func NewRoles(deployers, approvers []string, groups Groups, maxStale time.Duration) *Roles {
	if maxStale <= 0 {
		maxStale = 10 * time.Minute
	}
	// A membership is never fresher than it may be stale.
	return &Roles{deployers: deployers, approvers: approvers, groups: groups, ttl: min(time.Minute, maxStale), maxStale: maxStale, now: time.Now, cache: map[string]cached{}}
}

func (r *Roles) IsDeployer(ctx context.Context, user string) (bool, error) {
	return r.member(ctx, r.deployers, user)
}

func (r *Roles) IsApprover(ctx context.Context, user string) (bool, error) {
	return r.member(ctx, r.approvers, user)
}

func (r *Roles) member(ctx context.Context, entries []string, user string) (bool, error) {
	for _, e := range entries {
		if e == user {
			return true, nil
		}
	}
	var failed error
	for _, e := range entries {
		if !strings.HasPrefix(e, "S") {
			continue
		}
		m, err := r.groupMembers(ctx, e)
		if err != nil {
			failed = err
			continue
		}
		if m[user] {
			return true, nil
		}
	}
	// Not found, and a group could not be read: the answer is unknown,
	// which is not "no" to say but is never "yes".
	return false, failed
}

func (r *Roles) groupMembers(ctx context.Context, group string) (map[string]bool, error) {
	r.mu.Lock()
	c, ok := r.cache[group]
	r.mu.Unlock()
	if ok && r.now().Sub(c.at) < r.ttl {
		return c.members, nil
	}
	if r.groups == nil {
		return nil, fmt.Errorf("user group %s cannot be resolved without Slack; list user ids instead", group)
	}
	ids, err := r.groups.GroupMembers(ctx, group)
	if err != nil {
		age := r.now().Sub(c.at)
		if ok && age < r.maxStale {
			// Slack hiccup: a slightly stale answer beats refusing
			// everyone, for a bounded time.
			return c.members, nil
		}
		// Fail closed: a membership deploybot cannot confirm grants
		// nothing.
		if ok {
			return nil, fmt.Errorf("Slack cannot tell who is in user group %s now (%v), and what deploybot last saw is %s old, more than slack.group_cache_max_stale (%s) allows. Try again once Slack answers, or ask someone listed by user id", group, err, age.Round(time.Second), r.maxStale)
		}
		return nil, fmt.Errorf("Slack cannot tell who is in user group %s (%v). Try again once Slack answers, or ask someone listed by user id", group, err)
	}
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	r.mu.Lock()
	r.cache[group] = cached{members: m, at: r.now()}
	r.mu.Unlock()
	return m, nil
}
