package bot

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/deploybot/deploybot/config"
)

// Command is a slash command as the adapters hand it over.
type Command struct {
	User    string
	Channel string
	Name    string // "/deploy", "/rollback", "/incident"
	Text    string
	Reply   Reply
}

// request is a parsed, valid command.
type request struct {
	op      string // help, status, cancel, deploy, rollback, incident
	service string
	tag     string
	runID   string
	text    string
	n       int // history: how many runs
}

// usageError is a bad command: its message says what is wrong and what to
// type instead.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

var tagShape = regexp.MustCompile(`^(\d{4})\.(\d{2})\.(\d{2})\.(\d{2})\.(\d{2})\.(\d{2})$`)

// checkTag validates an image tag: the service's prefix and a real UTC date
// and time, as the release workflow writes them (rel-2023.07.03.17.52.00).
func checkTag(svc *config.Service, tag string) error {
	prefix := svc.ImageTagPrefix
	example := prefix + "2023.07.03.17.52.00"
	rest, ok := strings.CutPrefix(tag, prefix)
	if !ok || !tagShape.MatchString(rest) {
		return usagef("`%s` is not an image tag of %s. Tags look like `%s` (%sYYYY.MM.DD.HH.MM.SS, UTC).", clip(tag), svc.Name, example, prefix)
	}
	if _, err := time.Parse("2006.01.02.15.04.05", rest); err != nil {
		return usagef("`%s` is not a real date and time. Tags look like `%s` (%sYYYY.MM.DD.HH.MM.SS, UTC).", clip(tag), example, prefix)
	}
	return nil
}

// clip keeps echoed user input short and harmless.
func clip(s string) string {
	s = strings.ReplaceAll(s, "`", "'")
	return truncate(escape(s), 80)
}

func (b *Bot) parse(c Command) (request, error) {
	words := strings.Fields(c.Text)
	switch c.Name {
	case "/deploy":
		return b.parseDeploy(c, words)
	case "/rollback":
		return b.parseRollback(c, words)
	case "/incident":
		if len(words) == 0 {
			return request{}, usagef("Say what is wrong: `/incident <summary>`, for example `/incident ingestion-server returns 500s since the deploy`.")
		}
		if !b.inDeployChannel(c.Channel) && c.Channel != b.cfg.Slack.AlertsChannel {
			return request{}, usagef("`/incident` works in %s. Use it there.", b.channelList(true))
		}
		svc := b.cfg.Services[0].Name
		if s := b.cfg.Service(words[0]); s != nil && len(words) > 1 {
			svc = s.Name
		}
		return request{op: "incident", service: svc, text: strings.Join(words, " ")}, nil
	}
	return request{}, usagef("deploybot does not know `%s`. Try `/deploy help`.", clip(c.Name))
}

func (b *Bot) parseDeploy(c Command, words []string) (request, error) {
	if len(words) == 0 || words[0] == "help" {
		if len(words) > 1 {
			return request{}, usagef("`/deploy help` takes no more words.")
		}
		return request{op: "help"}, nil
	}
	switch words[0] {
	case "status":
		if len(words) > 1 {
			return request{}, usagef("`/deploy status` takes no more words; you typed `%s`.", clip(strings.Join(words[1:], " ")))
		}
		return request{op: "status"}, nil
	case "history":
		return b.parseHistory(words[1:])
	case "override":
		if len(words) < 3 {
			return request{}, usagef("Say which run and why: `/deploy override <run-id> <reason>`, for example `/deploy override run-12 the refresh is paused and safe`.")
		}
		if !b.inDeployChannel(c.Channel) {
			return request{}, usagef("`/deploy override` works in %s. Use it there.", b.channelList(false))
		}
		return request{op: "override", runID: words[1], text: strings.Join(words[2:], " ")}, nil
	case "cancel":
		if len(words) != 2 {
			return request{}, usagef("Name the run to cancel: `/deploy cancel <run-id>`, for example `/deploy cancel run-12`. `/deploy status` lists open runs.")
		}
		if !b.inDeployChannel(c.Channel) {
			return request{}, usagef("`/deploy cancel` works in %s. Use it there.", b.channelList(false))
		}
		return request{op: "cancel", runID: words[1]}, nil
	}
	svc := b.cfg.Service(words[0])
	if svc == nil {
		return request{}, usagef("There is no service `%s`. Services: %s. Example: `/deploy %s %s2023.07.03.17.52.00`.",
			clip(words[0]), b.serviceList(), b.cfg.Services[0].Name, b.cfg.Services[0].ImageTagPrefix)
	}
	if len(words) > 2 {
		return request{}, usagef("Too many words: `/deploy %s` takes at most an image tag, like `/deploy %s %s2023.07.03.17.52.00`. Remove `%s`.",
			svc.Name, svc.Name, svc.ImageTagPrefix, clip(strings.Join(words[2:], " ")))
	}
	if !b.inDeployChannel(c.Channel) {
		return request{}, usagef("Deploys run in %s, so everyone sees them. Type the command there.", b.channelList(false))
	}
	if len(words) == 1 {
		if !b.opts.BareDeploy {
			return request{}, usagef("Which version? GitHub is not configured, so deploybot cannot read the drafted release. Name the image tag: `/deploy %s %s2023.07.03.17.52.00`.", svc.Name, svc.ImageTagPrefix)
		}
		return request{op: "deploy", service: svc.Name}, nil
	}
	if err := checkTag(svc, words[1]); err != nil {
		return request{}, err
	}
	return request{op: "deploy", service: svc.Name, tag: words[1]}, nil
}

func (b *Bot) parseRollback(c Command, words []string) (request, error) {
	var svc *config.Service
	var tag string
	switch len(words) {
	case 1:
		if len(b.cfg.Services) > 1 {
			return request{}, usagef("Which service? Several are configured (%s): `/rollback <service> %s2023.07.03.17.52.00`.", b.serviceList(), b.cfg.Services[0].ImageTagPrefix)
		}
		svc, tag = b.cfg.Services[0], words[0]
	case 2:
		svc, tag = b.cfg.Service(words[0]), words[1]
		if svc == nil {
			return request{}, usagef("There is no service `%s`. Services: %s.", clip(words[0]), b.serviceList())
		}
	default:
		ex := b.cfg.Services[0]
		if len(words) == 0 {
			return request{}, usagef("Name the tag to roll back to: `/rollback %s %s2023.07.03.17.52.00` (the last good version).", ex.Name, ex.ImageTagPrefix)
		}
		return request{}, usagef("Too many words: `/rollback [service] <tag>`, like `/rollback %s %s2023.07.03.17.52.00`.", ex.Name, ex.ImageTagPrefix)
	}
	if err := checkTag(svc, tag); err != nil {
		return request{}, err
	}
	if !b.inDeployChannel(c.Channel) {
		return request{}, usagef("Rollbacks run in %s, so everyone sees them. Type the command there.", b.channelList(false))
	}
	return request{op: "rollback", service: svc.Name, tag: tag}, nil
}

func (b *Bot) inDeployChannel(ch string) bool {
	for _, c := range b.cfg.Slack.DeployChannels {
		if c == ch {
			return true
		}
	}
	return false
}

func (b *Bot) channelList(withAlerts bool) string {
	var cs []string
	for _, c := range b.cfg.Slack.DeployChannels {
		cs = append(cs, "<#"+c+">")
	}
	if withAlerts && b.cfg.Slack.AlertsChannel != "" {
		cs = append(cs, "<#"+b.cfg.Slack.AlertsChannel+">")
	}
	return strings.Join(cs, ", ")
}

func (b *Bot) serviceList() string {
	var s []string
	for _, svc := range b.cfg.Services {
		s = append(s, "`"+svc.Name+"`")
	}
	return strings.Join(s, ", ")
}

func (b *Bot) helpView() View {
	text := "*deploybot* runs the deployment runbook, step by step, with approvals.\n" +
		"• `/deploy <service> [<tag>]`: deploy a service (tag like `rel-2023.07.03.17.52.00`)\n" +
		"• `/deploy status`: open runs, locks, who waits on whom\n" +
		"• `/deploy history [service] [n]`: the last n runs (10 unless said; at most 50)\n" +
		"• `/deploy cancel <run-id>`: end a run (requester or approver); changes are undone\n" +
		"• `/deploy override <run-id> <reason>`: an approver pushes a run past an Airflow block\n" +
		"• `/rollback [service] <tag>`: roll back to a published version\n" +
		"• `/incident <summary>`: declare a production incident\n" +
		"• `/deploy help`: this help\n" +
		"Services: " + b.serviceList()
	return textView(text)
}

// maxHistory bounds `/deploy history n`: one private answer holds it.
const maxHistory = 50

// parseHistory reads `/deploy history [service] [n]`, in either order.
func (b *Bot) parseHistory(words []string) (request, error) {
	req := request{op: "history", n: 10}
	if len(words) > 2 {
		return request{}, usagef("`/deploy history` takes at most a service and a number, like `/deploy history %s 20`; remove `%s`.", b.cfg.Services[0].Name, clip(strings.Join(words[2:], " ")))
	}
	seenN := false
	for _, w := range words {
		if n, err := strconv.Atoi(w); err == nil || strings.TrimLeft(w, "-+0123456789") == "" {
			if seenN {
				return request{}, usagef("Give one number of runs, like `/deploy history %s 20`.", b.cfg.Services[0].Name)
			}
			if err != nil || n < 1 || n > maxHistory {
				return request{}, usagef("`%s` is not a number of runs from 1 to %d. Example: `/deploy history %s 20`.", clip(w), maxHistory, b.cfg.Services[0].Name)
			}
			req.n, seenN = n, true
			continue
		}
		svc := b.cfg.Service(w)
		if svc == nil || req.service != "" {
			return request{}, usagef("There is no service `%s`. Services: %s. Example: `/deploy history %s 20`.", clip(w), b.serviceList(), b.cfg.Services[0].Name)
		}
		req.service = svc.Name
	}
	return req, nil
}
