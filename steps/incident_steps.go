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
	// The step is idempotent (a restart starts it again): the record that
	// it announced commits with the announcement, so a restart never
	// announces twice. The bot says the announcement's link in the thread
	// once it is posted.
	if x.Get("announced") == "" {
		x.Set("announced", "yes")
		x.Announce(s.cfg.Slack.AlertsChannel, s.announcement(ctx, x))
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

// announcement is the incident's message in the alerts channel. It has the
// same lines in the same order whatever is known, so that people (and
// anything that reads the channel) find each fact in its place: the
// summary, service and environment, who declared it, the versions before
// and after, the failing step, the run it concerns, Sentry's issues, and
// the incident's own run. What is not known says so.
func (s *announceStep) announcement(ctx context.Context, x *Exec) string {
	r := x.Run
	head := ":rotating_light: *Production incident:* " + Escape(r.Summary)
	if g := s.cfg.Slack.TeamGroup; g != "" {
		head = fmt.Sprintf("<!subteam^%s> %s", g, head)
	}
	o := s.concerned(ctx, x)
	env, before, after, failing, run, issues := "", "unknown", "unknown", "none recorded", "none found", "none seen"
	if o != nil {
		if v := x.LastGoodVersion(ctx, o); v != "" {
			before = v
		}
		if o.Version != "" {
			after = o.Version
		}
		for _, st := range o.Steps {
			if st.Status == StepFailed || st.Status == StepInterrupted {
				failing = st.Title
				if st.Note != "" {
					failing += ": " + oneLine(st.Note, 300)
				}
				env = envOf(st.ID)
				break
			}
		}
		run = o.ID
		if link := o.Data["permalink"]; link != "" {
			run = fmt.Sprintf("<%s|%s>", link, o.ID)
		}
		if w := o.StepByID("sentry"); w != nil && w.Data["issues"] != "" {
			var links []string
			for _, l := range strings.Split(w.Data["issues"], "\n") {
				parts := strings.SplitN(l, "|", 3)
				if len(parts) == 3 {
					links = append(links, fmt.Sprintf("<%s|%s> %s", parts[2], Escape(parts[0]), Escape(oneLine(parts[1], 100))))
				}
			}
			if len(links) > 0 {
				issues = strings.Join(links, ", ")
			}
		}
	}
	if env == "" {
		env = "production"
		if svc := s.cfg.Service(r.Service); svc != nil && len(svc.Environments) > 0 {
			env = svc.Environments[len(svc.Environments)-1].Name
		}
	}
	self := r.ID
	if link := r.Data["permalink"]; link != "" {
		self = fmt.Sprintf("<%s|%s>", link, r.ID)
	}
	return strings.Join([]string{
		head,
		fmt.Sprintf("*Service* %s · *Environment* %s · *Declared by* <@%s>", r.Service, env, r.Requester),
		fmt.Sprintf("*Version* `%s` → `%s`", Escape(before), Escape(after)),
		"*Failing step* " + failing,
		"*Run* " + run,
		"*Sentry issues* " + issues,
		"*Incident run* " + self,
	}, "\n")
}

// concerned is the run the incident is about: the one it was declared
// from, else the service's latest deploy or rollback before it (an
// /incident typed in the channel is about what was deployed last).
func (s *announceStep) concerned(ctx context.Context, x *Exec) *Run {
	r := x.Run
	if from := r.Data["from_run"]; from != "" {
		if o, err := x.LookupRun(ctx, from); err == nil {
			return o
		}
	}
	if x.eng == nil {
		return nil
	}
	runs, err := x.eng.store.Runs(ctx, r.Service, 50)
	if err != nil {
		return nil
	}
	for _, o := range runs { // newest first
		if o.ID != r.ID && o.Kind != KindIncident && !o.CreatedAt.After(r.CreatedAt) {
			return o
		}
	}
	return nil
}
