package steps

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/deploybot/deploybot/config"
)

// Announcer opens incident channels. The bot implements it with Slack. The
// announcement itself goes through the outbox (Exec.Announce).
type Announcer interface {
	// OpenChannel creates a channel and invites users (user ids, or user
	// group ids to expand); it returns the channel id.
	OpenChannel(ctx context.Context, name string, users []string) (string, error)
}

// AutomateIncidents makes "Notify the team" announce the incident in the
// alerts channel, mentioning the team group, and (with
// incident.create_channel) open a channel for it.
func (rb *Runbooks) AutomateIncidents(a Announcer, cfg *config.Config) {
	if cfg.Slack.AlertsChannel == "" {
		return
	}
	rb.Automate("incident-notify", func(spec Spec, svc *config.Service, m *Manual) Step {
		return &announceStep{S: spec, a: a, cfg: cfg}
	})
}

type announceStep struct {
	S   Spec
	a   Announcer
	cfg *config.Config
}

func (s *announceStep) Spec() Spec { return s.S }

func (s *announceStep) Act(ctx context.Context, x *Exec, a Action) Result {
	return unexpected(s.S, a)
}

var notChannelChars = regexp.MustCompile(`[^a-z0-9-]+`)

func (s *announceStep) Start(ctx context.Context, x *Exec) Result {
	r := x.Run
	var lines []string
	head := ":rotating_light: *Production incident:* " + Escape(r.Summary)
	if g := s.cfg.Slack.TeamGroup; g != "" {
		head = fmt.Sprintf("<!subteam^%s> %s", g, head)
	}
	lines = append(lines, head, fmt.Sprintf("*Service* %s · *declared by* <@%s>", r.Service, r.Requester))
	if from := r.Data["from_run"]; from != "" {
		if o, err := x.LookupRun(ctx, from); err == nil {
			before := x.LastGoodVersion(ctx, o)
			if before == "" {
				before = "unknown"
			}
			lines = append(lines, fmt.Sprintf("*Version* before `%s`, after `%s`", Escape(before), Escape(o.Version)))
			for _, st := range o.Steps {
				if st.Status == StepFailed || st.Status == StepInterrupted {
					lines = append(lines, fmt.Sprintf("*Failing step* %s: %s", st.Title, oneLine(st.Note, 300)))
					break
				}
			}
			if link := o.Data["permalink"]; link != "" {
				lines = append(lines, fmt.Sprintf("*Run* <%s|%s>", link, o.ID))
			} else {
				lines = append(lines, "*Run* "+o.ID)
			}
			if w := o.StepByID("sentry"); w != nil && w.Data["issues"] != "" {
				var links []string
				for _, l := range strings.Split(w.Data["issues"], "\n") {
					parts := strings.SplitN(l, "|", 3)
					if len(parts) == 3 {
						links = append(links, fmt.Sprintf("<%s|%s> %s", parts[2], Escape(parts[0]), Escape(oneLine(parts[1], 100))))
					}
				}
				lines = append(lines, "*Sentry issues* "+strings.Join(links, ", "))
			}
		}
	}
	if link := r.Data["permalink"]; link != "" {
		lines = append(lines, fmt.Sprintf("*Incident run* <%s|%s>", link, r.ID))
	}
	// The step is idempotent (a restart starts it again): the record that
	// it announced commits with the announcement, so a restart never
	// announces twice. The bot says the announcement's link in the thread
	// once it is posted.
	if x.Get("announced") == "" {
		x.Set("announced", "yes")
		x.Announce(s.cfg.Slack.AlertsChannel, strings.Join(lines, "\n"))
	}
	note := fmt.Sprintf("announced in <#%s>", s.cfg.Slack.AlertsChannel)
	if id := x.Get("incident_channel"); id != "" {
		// Opened before a restart: never open a second one.
		x.SetRunValue("incident_channel", id)
		note += fmt.Sprintf("; channel <#%s>", id)
	} else if s.cfg.Incident.CreateChannel {
		name := fmt.Sprintf("incident-%s-%s", time.Now().UTC().Format("2006-01-02"), r.Service)
		name = strings.Trim(notChannelChars.ReplaceAllString(strings.ToLower(name), "-"), "-")
		if len(name) > 80 {
			name = name[:80]
		}
		users := append([]string{r.Requester}, s.cfg.Slack.Approvers...)
		id, err := s.a.OpenChannel(ctx, name, users)
		if err != nil {
			x.Say(":warning: Could not open an incident channel: %s", Escape(err.Error()))
		} else {
			_ = x.Save("incident_channel", id)
			x.SetRunValue("incident_channel", id)
			note += fmt.Sprintf("; channel <#%s>", id)
		}
	}
	return Done(note)
}
