package bot

import (
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/steps"
)

func TestParseHistory(t *testing.T) {
	b := fuzzBot(t)
	for text, want := range map[string]request{
		"history":                     {op: "history", n: 10},
		"history ingestion-server":    {op: "history", n: 10, service: "ingestion-server"},
		"history 25":                  {op: "history", n: 25},
		"history 3 ingestion-server":  {op: "history", n: 3, service: "ingestion-server"},
		"history ingestion-server 50": {op: "history", n: 50, service: "ingestion-server"},
	} {
		got, err := b.parse(Command{Name: "/deploy", Text: text, Channel: "C0RANDOM"})
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v", text, got, err)
		}
	}
	for text, want := range map[string]string{
		"history 0":                     "from 1 to 50",
		"history 51":                    "from 1 to 50",
		"history 1e3":                   "There is no service `1e3`",
		"history api":                   "There is no service `api`. Services: `ingestion-server`",
		"history 2 3":                   "Give one number",
		"history ingestion-server 2 3":  "takes at most a service and a number",
		"history <!channel>":            "There is no service `&lt;!channel&gt;`",
		"history ingestion-server api":  "There is no service `api`",
		"history ingestion-server -1":   "from 1 to 50",
		"history ingestion-server 9999": "from 1 to 50",
	} {
		_, err := b.parse(Command{Name: "/deploy", Text: text, Channel: "C0DEPLOYS"})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
}

func TestAsksReason(t *testing.T) {
	for _, c := range []struct {
		verb, style string
		want        bool
	}{
		{steps.VerbReject, "danger", true},
		{steps.VerbIncident, "danger", true},
		{steps.VerbIncident, "", true},
		{steps.VerbConfirm, "danger", true}, // Force unlock, Override, Dispatch again
		{steps.VerbConfirm, "primary", false},
		{steps.VerbSkip, "danger", true}, // Skip (accept the risk)
		{steps.VerbSkip, "", false},      // Skip publishing: no risk taken
		{steps.VerbCancel, "danger", false},
		{steps.VerbApprove, "primary", false},
		{steps.VerbDone, "primary", false},
	} {
		if got := asksReason(c.verb, c.style); got != c.want {
			t.Errorf("asksReason(%s, %q) = %v", c.verb, c.style, got)
		}
	}
}

func TestDeployedLine(t *testing.T) {
	b := fuzzBot(t)
	svc := b.cfg.Services[0]
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	applied := func(id, version string, status steps.StepStatus) *steps.Run {
		return &steps.Run{ID: id, Kind: steps.KindDeploy, Service: svc.Name, Version: version, CreatedAt: at,
			Steps: []steps.StepState{{ID: "apply:dev", Status: status}}, Data: map[string]string{"previous:dev": "rel-2023.01.01.00.00.00"}}
	}
	if got := deployedLine(svc, nil); got != "dev unknown" {
		t.Errorf("no history: %q", got)
	}
	// The newest run failed before its apply: what it found is what runs.
	runs := []*steps.Run{applied("run-3", "rel-2024.03.01.00.00.00", steps.StepFailed), applied("run-2", "rel-2024.02.01.00.00.00", steps.StepDone)}
	if got := deployedLine(svc, runs); got != "dev `rel-2023.01.01.00.00.00` (before run-3)" {
		t.Errorf("failed before apply: %q", got)
	}
	runs[0].Data = nil
	if got := deployedLine(svc, runs); got != "dev `rel-2024.02.01.00.00.00` (run-2)" {
		t.Errorf("applied by an older run: %q", got)
	}
	rb := &steps.Run{ID: "run-4", Kind: steps.KindRollback, Service: svc.Name, Version: "rel-2023.06.01.00.00.00", State: steps.RunSucceeded}
	if got := deployedLine(svc, append([]*steps.Run{rb}, runs...)); got != "dev `rel-2023.06.01.00.00.00` (rollback run-4)" {
		t.Errorf("after a rollback: %q", got)
	}
}

func TestRunLink(t *testing.T) {
	r := &steps.Run{ID: "run-1", Channel: "C1", MessageTS: "1700000000.000100"}
	if got := runLink(r); got != "<https://slack.com/archives/C1/p1700000000000100|run-1>" {
		t.Errorf("from channel and ts: %q", got)
	}
	r.Data = map[string]string{"permalink": "https://example.slack.com/archives/C1/p1"}
	if got := runLink(r); got != "<https://example.slack.com/archives/C1/p1|run-1>" {
		t.Errorf("from the permalink: %q", got)
	}
	if got := runLink(&steps.Run{ID: "run-2"}); got != "`run-2`" {
		t.Errorf("not posted yet: %q", got)
	}
}
