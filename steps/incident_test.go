package steps_test

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/integrations/sqlite"
	"github.com/deploybot/deploybot/steps"
)

type noChannels struct{}

func (noChannels) OpenChannel(ctx context.Context, name string, users []string) (string, error) {
	return "", nil
}

// Two incidents, one declared from a failed deploy and one typed as
// /incident, announce in one format: every fact on its line, in the same
// order, with the versions before and after.
func TestIncidentAnnouncementsShareOneFormat(t *testing.T) {
	ctx := context.Background()
	cfg, err := config.Parse([]byte(`
slack:
  deploy_channels: [C0DEPLOYS]
  alerts_channel: C0ALERTS
  team_group: S0MAINT
  deployers: [U0A1]
  approvers: [U0A1, U0B2]
services:
  svc:
    steps:
      - {id: confirm, title: Confirm, instruction: look, approval: true}
`), filepath.Join(t.TempDir(), "c.yaml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rb := steps.NewRunbooks(cfg)
	rb.AutomateIncidents(noChannels{}, cfg)
	rec := newRecorder()
	eng := steps.NewEngine(db, rec, roles{}, rb, nil)
	defer eng.Close()

	deploy := func(version, verb string) *steps.Run {
		r, err := eng.Start(ctx, steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: version, Requester: "U0A1", Channel: "C0DEPLOYS"})
		if err != nil {
			t.Fatal(err)
		}
		w := rec.waitRun(t, r.ID, "the confirm step to wait", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepWaiting })
		if err := eng.Act(ctx, steps.ActionRequest{RunID: r.ID, StepIndex: 0, Seq: w.Steps[0].Seq, Verb: verb, User: "U0B2"}); err != nil {
			t.Fatal(err)
		}
		return rec.waitRun(t, r.ID, "the run to end", func(r *steps.Run) bool { return !r.State.Open() })
	}
	announce := func(req steps.StartRequest) string {
		t.Helper()
		req.Kind, req.Service, req.Channel = steps.KindIncident, "svc", "C0DEPLOYS"
		r, err := eng.Start(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		rec.waitRun(t, r.ID, "the team to be notified", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepDone })
		es, err := db.PendingOutbox(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Kind == steps.OutboxAnnounce {
				if e.Channel != "C0ALERTS" {
					t.Errorf("announced in %s", e.Channel)
				}
				return e.Text
			}
		}
		t.Fatalf("%s announced nothing", r.ID)
		return ""
	}

	deploy("rel-2024.01.01.00.00.00", steps.VerbApprove)
	failed := deploy("rel-2024.02.02.00.00.00", steps.VerbReject)
	fromRun := announce(steps.StartRequest{Requester: "U0B2", Summary: "500s after the deploy", Data: map[string]string{"from_run": failed.ID}})
	typed := announce(steps.StartRequest{Requester: "U0A1", Summary: "svc is slow & <!channel>"})

	for _, tc := range []struct{ name, text, summary, who string }{
		{"from the run", fromRun, "500s after the deploy", "U0B2"},
		{"typed", typed, "svc is slow &amp; &lt;!channel&gt;", "U0A1"},
	} {
		want := []string{
			"<!subteam^S0MAINT> :rotating_light: *Production incident:* " + tc.summary,
			"*Service* svc · *Environment* production · *Declared by* <@" + tc.who + ">",
			"*Version* `rel-2024.01.01.00.00.00` → `rel-2024.02.02.00.00.00`",
			"*Failing step* Confirm: rejected by <@U0B2>",
			"*Run* " + failed.ID,
			"*Sentry issues* none seen",
		}
		lines := strings.Split(tc.text, "\n")
		if len(lines) != len(want)+1 {
			t.Errorf("%s: %d lines, want %d:\n%s", tc.name, len(lines), len(want)+1, tc.text)
			continue
		}
		for i, w := range want {
			if lines[i] != w {
				t.Errorf("%s: line %d\n got %q\nwant %q", tc.name, i+1, lines[i], w)
			}
		}
		if !regexp.MustCompile(`^\*Incident run\* run-\d+$`).MatchString(lines[len(want)]) {
			t.Errorf("%s: last line %q", tc.name, lines[len(want)])
		}
	}
}
