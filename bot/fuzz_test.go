package bot

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/steps"
)

func fuzzBot(t testing.TB) *Bot {
	cfg, err := config.Parse([]byte(`
slack:
  deploy_channels: [C0DEPLOYS]
  alerts_channel: C0ALERTS
  deployers: [U0A]
  approvers: [U0A, U0B]
services:
  ingestion-server:
    release_tag_prefix: ingestion_server-
    image_tag_prefix: rel-
    environments:
      - {name: dev, dir: environments/dev, file: environments/dev/ingestion-server.tf, module: ingestion-server, version_attribute: image_tag, target: module.ingestion-server}
`), filepath.Join(t.TempDir(), "c.yaml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg, nil, nil, Options{BareDeploy: true})
}

// pingRE matches what Slack would turn into a ping or a link.
var pingRE = regexp.MustCompile(`<[!@#][^>]*>`)

// ownMentions are the mentions deploybot writes itself in answers.
var ownMentions = map[string]bool{"<#C0DEPLOYS>": true, "<#C0ALERTS>": true}

func checkAnswer(t *testing.T, in, out string) {
	t.Helper()
	if n := utf8.RuneCountInString(out); n > maxSectionText {
		t.Fatalf("answer to %q has %d characters, over Slack's %d", in, n, maxSectionText)
	}
	for _, m := range pingRE.FindAllString(out, -1) {
		if !ownMentions[m] {
			t.Fatalf("outside text survived as a pingRE %q in the answer to %q: %q", m, in, out)
		}
	}
}

// Slash-command parsing: nothing panics, every answer fits a section and
// nothing typed can ping anyone when it is echoed back.
func FuzzCommand(f *testing.F) {
	for _, s := range []string{"", "help", "status", "ingestion-server rel-2023.07.03.17.52.00", "ingestion-server rel-2023.02.30.17.52.00",
		"cancel run-1", "override run-2 <!channel> is fine", "<@U0A> rel-x", "ingestion-server a b c", "rel-2023.07.03.17.52.00",
		"history", "history ingestion-server 5", "history 0", "history <!here> 99999999999999999999"} {
		for _, name := range []string{"/deploy", "/rollback", "/incident", "/other"} {
			f.Add(name, s, "C0DEPLOYS")
		}
	}
	b := fuzzBot(f)
	f.Fuzz(func(t *testing.T, name, text, channel string) {
		req, err := b.parse(Command{User: "U0A", Channel: channel, Name: name, Text: text})
		if err != nil {
			checkAnswer(t, text, err.Error())
			return
		}
		if req.tag != "" {
			if _, err := time.Parse("2006.01.02.15.04.05", strings.TrimPrefix(req.tag, "rel-")); err != nil {
				t.Fatalf("accepted tag %q that is not a real time", req.tag)
			}
		}
	})
}

// Tag parsing: a tag is accepted only as the prefix and a real UTC time,
// and a refusal never echoes a pingRE.
func FuzzTag(f *testing.F) {
	for _, s := range []string{"rel-2023.07.03.17.52.00", "rel-2023.13.03.17.52.00", "rel-2024.02.29.00.00.00", "rel-2023.02.29.00.00.00", "rel-", "<!here>", "rel-2023.07.03.17.52.00\n"} {
		f.Add(s)
	}
	svc := &config.Service{Name: "ingestion-server", ImageTagPrefix: "rel-"}
	f.Fuzz(func(t *testing.T, tag string) {
		err := checkTag(svc, tag)
		if err != nil {
			checkAnswer(t, tag, err.Error())
			return
		}
		ts, err2 := time.Parse("2006.01.02.15.04.05", strings.TrimPrefix(tag, "rel-"))
		if err2 != nil || "rel-"+ts.Format("2006.01.02.15.04.05") != tag {
			t.Fatalf("accepted %q, which is not rel-<a real UTC time>", tag)
		}
	})
}

// Button values: anything malformed is refused; anything accepted reads
// back the same run, step, state and verb it would be drawn with.
func FuzzButton(f *testing.F) {
	f.Add("approve:run-1:3", "run-1|3|7")
	f.Add("confirm", "run-2|-1|0")
	f.Add("bogus:run-1:1", "run-1|1|1")
	f.Add("done:x", "a|b|c")
	f.Add("retry:run-1:2", "run-1|2|2|2")
	f.Fuzz(func(t *testing.T, actionID, value string) {
		req, ok := parseButton(actionID, value)
		if !ok {
			return
		}
		known := false
		for _, v := range steps.Verbs {
			known = known || v == req.Verb
		}
		if !known || req.RunID == "" || strings.Contains(req.RunID, "|") {
			t.Fatalf("accepted %q %q as %+v", actionID, value, req)
		}
		again, ok := parseButton(ActionID(req.Verb, req.RunID, req.StepIndex), ButtonValue(req.RunID, req.StepIndex, req.Seq))
		if !ok || again != req {
			t.Fatalf("%+v does not round-trip: %+v %v", req, again, ok)
		}
	})
}

// Rendering a run whose outside texts are arbitrary stays within Slack's
// limits and lets no outside pingRE through.
func FuzzRenderRun(f *testing.F) {
	f.Add("ship it <!channel>", "Title", "note", 3)
	f.Add(strings.Repeat("x", 5000), strings.Repeat("t", 300), strings.Repeat("<@U1>", 900), 60)
	f.Fuzz(func(t *testing.T, summary, title, note string, n int) {
		n = max(1, min(n, 300))
		r := &steps.Run{ID: "run-9", Kind: steps.KindIncident, Service: "svc", Requester: "U0A", State: steps.RunActive,
			Summary: summary, UpdatedAt: time.Now()}
		for i := range n {
			st := steps.StepState{Index: i, ID: "s", Title: title, Status: steps.StepDone, Note: steps.Escape(note)}
			if i == n-1 {
				st.Status, st.Prompt, st.Buttons = steps.StepWaiting, steps.Escape(note), []steps.Button{{Verb: steps.VerbDone, Label: title}}
			}
			r.Steps = append(r.Steps, st)
		}
		v := RenderRun(r)
		if len(toBlocks(v)) > maxBlocks {
			t.Fatalf("%d blocks", len(toBlocks(v)))
		}
		if utf8.RuneCountInString(v.Text) > maxText {
			t.Fatalf("text of %d characters", utf8.RuneCountInString(v.Text))
		}
		for _, b := range v.Blocks {
			if utf8.RuneCountInString(b.Text) > maxSectionText {
				t.Fatalf("block of %d characters", utf8.RuneCountInString(b.Text))
			}
			for _, m := range pingRE.FindAllString(b.Text, -1) {
				if m != "<@U0A>" {
					t.Fatalf("outside pingRE %q rendered: %q", m, b.Text)
				}
			}
		}
	})
}
