package bot

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/redact"
	"github.com/deploybot/deploybot/steps"
)

// Views is what the App Home tab and modals need from Slack. Only the
// Slack adapter has them: the console has neither.
type Views interface {
	PublishHome(ctx context.Context, user string, v View) error
	// OpenModal opens a modal with the trigger_id of a click or command,
	// which Slack honours for 3 seconds after it.
	// It returns the view's id and hash.
	OpenModal(ctx context.Context, triggerID string, m slack.ModalViewRequest) (viewID, hash string, err error)
	// UpdateModal replaces the modal; with a hash, only while the view is
	// still the one that hash names (Slack answers hash_conflict once it
	// has moved on).
	UpdateModal(ctx context.Context, viewID, hash string, m slack.ModalViewRequest) error
}

// Slack's limits on views.
const (
	maxViewBlocks = 100
	maxHomeRuns   = 10
	maxViewers    = 200
)

// homeDebounce gathers the transitions of a busy moment into one refresh of
// every open Home tab.
var homeDebounce = 500 * time.Millisecond

// homeState remembers who looked at the Home tab, to refresh it for them
// when a run changes, and what to tell each of them on it next.
type homeState struct {
	mu      sync.Mutex
	views   Views
	viewers map[string]time.Time // user → when they last opened it
	notices map[string]notice    // user → a line shown atop their tab
	// submitted marks forms already submitted, whose late updates (the
	// releases filled in) must not overwrite their answer.
	submitted map[string]bool
	timer     *time.Timer
	// publishing is set while a refresh publishes, dirty when a change
	// came meanwhile: one refresh at a time, so an older render can never
	// land after a newer one, and the last change is always shown.
	publishing, dirty bool
	// pubMu makes every publish (a refresh, a tab just opened, an answer
	// to a click there) render and send in turn: what is rendered later
	// is sent later.
	pubMu sync.Mutex
}

// notice is the answer to a click in the Home tab, shown atop the tab
// until the person opens the tab again (or it expires): every refresh
// until then carries it, so one that happens to be sent just after it
// cannot take it away.
type notice struct {
	text  string
	until time.Time
}

// noticeTTL bounds how long an answer stays atop a tab left open.
const noticeTTL = 10 * time.Minute

// viewerTTL is how long a Home tab counts as looked at after it was opened:
// Slack sends app_home_opened at each visit, so a returning person is
// remembered again, and a tab opened once long ago costs no refreshes.
const viewerTTL = 24 * time.Hour

// PublishHome implements Views with views.publish.
func (s *SlackChat) PublishHome(ctx context.Context, user string, v View) error {
	_, err := s.api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: user,
		View: slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: toBlocksN(v, maxViewBlocks)}}})
	if err != nil {
		return fmt.Errorf("views.publish for %s: %w", user, err)
	}
	return nil
}

// OpenModal implements Views with views.open. It is not retried: the
// trigger_id would expire while waiting.
func (s *SlackChat) OpenModal(ctx context.Context, triggerID string, m slack.ModalViewRequest) (string, string, error) {
	resp, err := s.api.OpenViewContext(ctx, triggerID, m)
	if err != nil {
		return "", "", fmt.Errorf("views.open: %w", err)
	}
	return resp.ID, resp.Hash, nil
}

// UpdateModal implements Views with views.update.
func (s *SlackChat) UpdateModal(ctx context.Context, viewID, hash string, m slack.ModalViewRequest) error {
	err := s.retry(ctx, func() error {
		_, err := s.api.UpdateViewContext(ctx, m, "", hash, viewID)
		return err
	})
	if err != nil {
		return fmt.Errorf("views.update of %s: %w", viewID, err)
	}
	return nil
}

// HomeOpened publishes a user's Home tab and remembers them, so the tab
// follows the runs while they may be looking at it.
func (b *Bot) HomeOpened(ctx context.Context, user string) {
	h := &b.home
	h.mu.Lock()
	if h.views == nil {
		h.mu.Unlock()
		return
	}
	if h.viewers == nil {
		h.viewers = map[string]time.Time{}
	}
	h.viewers[user] = time.Now()
	delete(h.notices, user) // answered before this visit
	if len(h.viewers) > maxViewers {
		// The one who looked longest ago is least likely still looking.
		oldest, at := "", time.Time{}
		for u, t := range h.viewers {
			if oldest == "" || t.Before(at) {
				oldest, at = u, t
			}
		}
		delete(h.viewers, oldest)
	}
	h.mu.Unlock()
	b.publishHome(ctx, []string{user})
}

// homeChanged schedules a refresh of the open Home tabs. It is called on
// every committed transition, so it only starts a timer.
func (b *Bot) homeChanged() {
	h := &b.home
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.views == nil || len(h.viewers) == 0 || h.timer != nil {
		return
	}
	h.timer = time.AfterFunc(homeDebounce, b.refreshHomes)
}

// refreshHomes publishes the tab for everyone looking at it, again until no
// change came while it published.
func (b *Bot) refreshHomes() {
	h := &b.home
	h.mu.Lock()
	h.timer = nil
	if h.publishing {
		h.dirty = true
		h.mu.Unlock()
		return
	}
	h.publishing = true
	h.mu.Unlock()
	for {
		h.mu.Lock()
		h.dirty = false
		users := make([]string, 0, len(h.viewers))
		for u, at := range h.viewers {
			if time.Since(at) > viewerTTL {
				delete(h.viewers, u)
				continue
			}
			users = append(users, u)
		}
		h.mu.Unlock()
		b.mu.Lock()
		closed := b.closed
		if !closed {
			b.wg.Add(1)
		}
		b.mu.Unlock()
		if closed {
			h.mu.Lock()
			h.publishing = false
			h.mu.Unlock()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
		sort.Strings(users)
		b.publishHome(ctx, users)
		cancel()
		b.wg.Done()
		h.mu.Lock()
		if !h.dirty {
			// Decided under the lock that homeChanged's timer takes: a
			// change after this starts a refresh of its own.
			h.publishing = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
	}
}

// homeNotice shows text atop the user's Home tab: the answer to a click
// there, which has no response_url to answer through.
func (b *Bot) homeNotice(user string) Reply {
	return func(ctx context.Context, v View) error {
		b.home.mu.Lock()
		if b.home.notices == nil {
			b.home.notices = map[string]notice{}
		}
		b.home.notices[user] = notice{text: v.Text, until: time.Now().Add(noticeTTL)}
		b.home.mu.Unlock()
		b.publishHome(ctx, []string{user})
		return nil
	}
}

// publishHome renders the tab once and publishes it for each user.
func (b *Bot) publishHome(ctx context.Context, users []string) {
	if b.eng == nil {
		return
	}
	b.home.pubMu.Lock()
	defer b.home.pubMu.Unlock()
	blocks := b.homeBlocks(ctx)
	for _, u := range users {
		b.home.mu.Lock()
		n, ok := b.home.notices[u]
		if ok && time.Now().After(n.until) {
			delete(b.home.notices, u)
			n = notice{}
		}
		views := b.home.views
		b.home.mu.Unlock()
		v := View{Text: "deploybot", Blocks: blocks}
		if n.text != "" {
			v.Blocks = append([]Block{{Kind: Section, Text: truncate(n.text, maxSectionText)}}, blocks[:min(len(blocks), maxViewBlocks-1)]...)
		}
		if err := views.PublishHome(ctx, u, v); err != nil {
			b.log.Warn("home tab not published", zap.String("user", u), zap.Error(redact.Scrub(err)))
		}
	}
}

// homeBlocks is the Home tab: per service its open run, lock, deployed
// versions, last runs and a Deploy… button; then the open incidents. It
// stays within Slack's 100 blocks, saying how much was left out.
func (b *Bot) homeBlocks(ctx context.Context) []Block {
	open := b.eng.SharedOpenRuns(ctx)
	out := []Block{{Kind: Header, Text: "deploybot"}, {Kind: Context, Text: "Updated " + clock(time.Now()) + " · `/deploy history` lists more runs"}}
	// Room is kept for one line saying what did not fit, and incidents
	// keep up to a third of the tab whatever the number of services.
	room := maxViewBlocks - len(out) - 1
	var incidents []Block
	left := 0
	for _, r := range open {
		if r.Kind != steps.KindIncident {
			continue
		}
		g := incidentBlocks(r)
		if len(incidents)+len(g)+1 > maxViewBlocks/3 {
			left++
			continue
		}
		incidents = append(incidents, g...)
	}
	if len(incidents) > 0 {
		incidents = append([]Block{{Kind: Header, Text: "Open incidents"}}, incidents...)
	}
	room -= len(incidents)
	for _, svc := range b.cfg.Services {
		// A service takes serviceBlocksLen blocks; one that cannot fit is
		// not even read from the store.
		if room < serviceBlocksLen {
			left++
			continue
		}
		out = append(out, b.serviceBlocks(ctx, svc, open)...)
		room -= serviceBlocksLen
	}
	out = append(out, incidents...)
	if left > 0 {
		out = append(out, Block{Kind: Context, Text: fmt.Sprintf("%d more services or incidents do not fit here; `/deploy status` and `/deploy history <service>` list them.", left)})
	}
	return out
}

// serviceBlocksLen is how many blocks serviceBlocks returns.
const serviceBlocksLen = 5

func (b *Bot) serviceBlocks(ctx context.Context, svc *config.Service, open []*steps.Run) []Block {
	bs := []Block{{Kind: Header, Text: truncate(svc.Name, maxHeaderText)}}
	var now []string
	lock := "*Lock* free"
	for _, r := range open {
		if r.Service != svc.Name || !r.Kind.Locks() {
			continue
		}
		line := fmt.Sprintf("*Open run* %s %s, by <@%s>", runLink(r), escape(r.Title()), r.Requester)
		if cur := r.Current(); cur != nil {
			line += fmt.Sprintf(": step %d/%d “%s” %s", cur.Index+1, len(r.Steps), cur.Title, statusWord[cur.Status])
			if cur.WaitingOn != "" {
				line += ", waiting for " + cur.WaitingOn
			}
		}
		now = append(now, line)
		lock = fmt.Sprintf("*Lock* held by `%s` since %s", r.ID, clock(r.CreatedAt))
	}
	if len(now) == 0 {
		now = append(now, "*Open run* none")
	}
	now = append(now, lock)
	runs, err := b.eng.Store().Runs(ctx, svc.Name, 50)
	if err != nil {
		now = append(now, ":warning: deploybot could not read its history: "+escape(redact.ScrubString(err.Error())))
	}
	now = append(now, "*Deployed* "+deployedLine(svc, runs))
	bs = append(bs, Block{Kind: Section, Text: truncate(strings.Join(now, "\n"), maxSectionText)})
	bs = append(bs, Block{Kind: Actions, Buttons: []Button{{Label: "Deploy…", Style: "primary", ActionID: deployFormAction, Value: svc.Name}}})
	if len(runs) > maxHomeRuns {
		runs = runs[:maxHomeRuns]
	}
	if lines := b.historyLines(ctx, runs, false); len(lines) > 0 {
		text := fmt.Sprintf("*Last %d runs*\n", len(lines)) + strings.Join(lines, "\n")
		bs = append(bs, Block{Kind: Section, Text: truncate(text, maxSectionText)})
	} else {
		bs = append(bs, Block{Kind: Context, Text: "No runs yet."})
	}
	return append(bs, Block{Kind: Divider})
}

func incidentBlocks(r *steps.Run) []Block {
	bs := []Block{{Kind: Section, Text: truncate(fmt.Sprintf("%s *%s*: %s (declared by <@%s> at %s)", runLink(r), escape(r.Service), escape(r.Summary), r.Requester, clock(r.CreatedAt)), maxSectionText)}}
	if cur := r.Current(); cur != nil && cur.Status == steps.StepWaiting {
		for _, bt := range cur.Buttons {
			if bt.Verb == steps.VerbDone && cur.ID == "incident-resolve" {
				bs = append(bs, Block{Kind: Actions, Buttons: []Button{{Label: "Resolve", Style: "primary", ActionID: ActionID(bt.Verb, r.ID, cur.Index), Value: ButtonValue(r.ID, cur.Index, cur.Seq)}}})
			}
		}
	}
	return bs
}

// deployedLine says which version runs in each environment, from
// deploybot's history: the newest run whose apply there succeeded, else
// what the newest run found there before it bumped it.
func deployedLine(svc *config.Service, runs []*steps.Run) string {
	var parts []string
	for i, env := range svc.Environments {
		v := ""
		for _, r := range runs { // newest first
			st := r.StepByID("apply:" + env.Name)
			switch {
			case r.Kind == steps.KindDeploy && st != nil && st.Status == steps.StepDone && r.Version != "":
				v = fmt.Sprintf("`%s` (%s)", escape(r.Version), r.ID)
			case r.Kind == steps.KindRollback && r.State == steps.RunSucceeded && i == len(svc.Environments)-1:
				v = fmt.Sprintf("`%s` (rollback %s)", escape(r.Version), r.ID)
			case r.Data["previous:"+env.Name] != "":
				v = fmt.Sprintf("`%s` (before %s)", escape(r.Data["previous:"+env.Name]), r.ID)
			}
			if v != "" {
				break
			}
		}
		if v == "" {
			v = "unknown"
		}
		parts = append(parts, env.Name+" "+v)
	}
	if len(parts) == 0 {
		return "no environments configured"
	}
	return strings.Join(parts, " · ")
}

// historyLines describes runs, one line each: outcome, version, who asked,
// who approved, how long, and a link to the thread.
func (b *Bot) historyLines(ctx context.Context, runs []*steps.Run, withService bool) []string {
	var out []string
	for _, r := range runs {
		what := r.Version
		if what == "" {
			what = "no version"
		}
		title := "`" + escape(what) + "`"
		if r.Kind != steps.KindDeploy {
			title = string(r.Kind) + " " + title
		}
		if withService {
			title = escape(r.Service) + " " + title
		}
		line := fmt.Sprintf("• %s %s %s · %s · by <@%s>", runLink(r), outcomeIcon(r.State), r.State, title, r.Requester)
		if aps, err := b.eng.Store().Approvals(ctx, r.ID); err == nil {
			var who []string
			seen := map[string]bool{}
			for _, a := range aps {
				if a.Decision == steps.VerbApprove && !seen[a.Approver] {
					seen[a.Approver] = true
					who = append(who, "<@"+a.Approver+">")
				}
			}
			if len(who) > 0 {
				line += " · approved by " + strings.Join(who, ", ")
			}
		}
		if r.State.Open() {
			line += " · open for " + time.Since(r.CreatedAt).Round(time.Second).String()
		} else if !r.EndedAt.IsZero() {
			line += " · took " + r.EndedAt.Sub(r.CreatedAt).Round(time.Second).String()
		}
		line += " · " + clock(r.CreatedAt)
		out = append(out, oneLine(line, 500))
	}
	return out
}

func outcomeIcon(s steps.RunState) string {
	switch s {
	case steps.RunSucceeded:
		return ":white_check_mark:"
	case steps.RunFailed:
		return ":x:"
	case steps.RunCancelled:
		return ":no_entry_sign:"
	}
	return ":hourglass_flowing_sand:"
}

// runLink links a run's id to its thread: the permalink Slack gave, else
// the archive link Slack resolves for any message it knows.
func runLink(r *steps.Run) string {
	link := r.Data["permalink"]
	if link == "" && r.MessageTS != "" && r.Channel != "" {
		link = fmt.Sprintf("https://slack.com/archives/%s/p%s", r.Channel, strings.ReplaceAll(r.MessageTS, ".", ""))
	}
	if link == "" {
		return "`" + r.ID + "`"
	}
	return "<" + link + "|" + r.ID + ">"
}

// historyView answers `/deploy history`.
func (b *Bot) historyView(ctx context.Context, service string, n int) View {
	runs, err := b.eng.Store().Runs(ctx, service, n)
	if err != nil {
		return textView(":x: deploybot could not read its history: " + escape(redact.ScrubString(err.Error())) + ". Try again in a moment.")
	}
	what := "all services"
	if service != "" {
		what = service
	}
	if len(runs) == 0 {
		return textView(fmt.Sprintf("No runs of %s yet. Start one with `/deploy <service> <tag>`.", what))
	}
	head := fmt.Sprintf("*Last %d runs of %s*, newest first", len(runs), what)
	lines := b.historyLines(ctx, runs, service == "")
	v := View{Text: fmt.Sprintf("Last %d runs of %s", len(runs), what), Blocks: []Block{{Kind: Section, Text: head}}}
	for _, c := range chunkLines(lines, maxSectionText) {
		v.Blocks = append(v.Blocks, Block{Kind: Section, Text: c})
	}
	return v
}
