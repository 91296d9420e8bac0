package slacktest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// triggerOf is the trigger_id an envelope carries.
func triggerOf(t *testing.T, e *Envelope) string {
	t.Helper()
	var p struct {
		TriggerID string `json:"trigger_id"`
	}
	if err := json.Unmarshal(e.Payload, &p); err != nil || p.TriggerID == "" {
		t.Fatalf("no trigger_id in %s", e.Payload)
	}
	return p.TriggerID
}

func modal(title string, blocks ...slack.Block) slack.ModalViewRequest {
	return slack.ModalViewRequest{Type: slack.VTModal, Title: slack.NewTextBlockObject(slack.PlainTextType, title, false, false),
		Blocks: slack.Blocks{BlockSet: blocks}}
}

func sectionBlock(text string) slack.Block {
	return slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, text, false, false), nil, nil)
}

func plainText(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
}

func TestViewsOpenRefusesWhatSlackRefuses(t *testing.T) {
	srv := newServer(t, Options{})
	api := apiClient(srv)
	ctx := context.Background()
	many := make([]slack.Block, 101)
	for i := range many {
		many[i] = sectionBlock("x")
	}
	input := slack.NewInputBlock("reason", plainText("Why"), nil, slack.NewPlainTextInputBlockElement(nil, "reason"))
	withSubmit := func(m slack.ModalViewRequest, submit, close string) slack.ModalViewRequest {
		m.Submit, m.Close = plainText(submit), plainText(close)
		return m
	}
	withMeta := modal("Deploy", sectionBlock("x"))
	withMeta.PrivateMetadata = strings.Repeat("m", 3001)
	for name, c := range map[string]struct {
		view slack.ModalViewRequest
		want string
	}{
		"title over 24":           {modal(strings.Repeat("t", 25), sectionBlock("x")), "/view/title/text"},
		"submit over 24":          {withSubmit(modal("Deploy", input), strings.Repeat("s", 25), "Cancel"), "/view/submit/text"},
		"close over 24":           {withSubmit(modal("Deploy", input), "Go", strings.Repeat("c", 25)), "/view/close/text"},
		"101 blocks":              {modal("Deploy", many...), "no more than 100 items"},
		"private_metadata 3001":   {withMeta, "/view/private_metadata"},
		"section over 3000":       {modal("Deploy", sectionBlock(strings.Repeat("x", 3001))), "/view/blocks/0/text/text"},
		"inputs without submit":   {modal("Deploy", input), "missing required field: submit"},
		"a home view in a modal":  {slack.ModalViewRequest{Type: slack.VTHomeTab, Title: plainText("x"), Blocks: slack.Blocks{BlockSet: []slack.Block{sectionBlock("x")}}}, "/view/type"},
		"modal without any title": {slack.ModalViewRequest{Type: slack.VTModal, Blocks: slack.Blocks{BlockSet: []slack.Block{sectionBlock("x")}}}, "missing required field: title"},
	} {
		trig := triggerOf(t, srv.SlashCommand("U1", "C1", "/deploy", ""))
		_, err := api.OpenViewContext(ctx, trig, c.view)
		if slackErr(err) != "invalid_arguments" {
			t.Errorf("%s: views.open answered %v", name, err)
			continue
		}
		if r := lastRejection(t, srv); !strings.Contains(r.Detail, c.want) {
			t.Errorf("%s: detail %q lacks %q", name, r.Detail, c.want)
		}
	}
	if _, ok := srv.Modal("U1"); ok {
		t.Fatal("a refused view opened")
	}

	// A valid modal opens once per trigger; unknown and stale triggers fail.
	trig := triggerOf(t, srv.SlashCommand("U1", "C1", "/deploy", ""))
	good := withSubmit(modal("Deploy", input), "Start deploy", "Cancel")
	good.CallbackID = "deploy"
	resp, err := api.OpenViewContext(ctx, trig, good)
	if err != nil || resp.ID == "" {
		t.Fatalf("views.open: %v", err)
	}
	if v, ok := srv.Modal("U1"); !ok || v.ID != resp.ID || v.CallbackID != "deploy" || v.Title != "Deploy" {
		t.Errorf("open modal = %+v", v)
	}
	if _, err := api.OpenViewContext(ctx, trig, good); slackErr(err) != "exchanged_trigger_id" {
		t.Errorf("a trigger used twice answered %v", err)
	}
	if _, err := api.OpenViewContext(ctx, "123.456.abc", good); slackErr(err) != "invalid_trigger_id" {
		t.Errorf("an unknown trigger answered %v", err)
	}
	trig = triggerOf(t, srv.SlashCommand("U1", "C1", "/deploy", ""))
	srv.ExpireTriggers()
	if _, err := api.OpenViewContext(ctx, trig, good); slackErr(err) != "expired_trigger_id" {
		t.Errorf("an expired trigger answered %v", err)
	}

	// views.update needs the current hash when one is given.
	if _, err := api.UpdateViewContext(ctx, good, "", "1.stale", resp.ID); slackErr(err) != "hash_conflict" {
		t.Errorf("a stale hash answered %v", err)
	}
	if _, err := api.UpdateViewContext(ctx, good, "", resp.Hash, resp.ID); err != nil {
		t.Errorf("views.update with the current hash: %v", err)
	}
	if _, err := api.UpdateViewContext(ctx, good, "", "", "V404"); slackErr(err) != "not_found" {
		t.Errorf("an unknown view answered %v", err)
	}
}

func TestTriggerExpiresAfterTTL(t *testing.T) {
	srv := newServer(t, Options{TriggerTTL: 50 * time.Millisecond})
	trig := triggerOf(t, srv.SlashCommand("U1", "C1", "/deploy", ""))
	time.Sleep(100 * time.Millisecond) // past the TTL, whatever the load
	if _, err := apiClient(srv).OpenViewContext(context.Background(), trig, modal("Deploy", sectionBlock("x"))); slackErr(err) != "expired_trigger_id" {
		t.Errorf("views.open after the TTL answered %v", err)
	}
	if def := newServer(t, Options{}); def.opts.TriggerTTL != 3*time.Second {
		t.Error("the default trigger TTL is not Slack's 3 seconds")
	}
}

func TestViewsPublish(t *testing.T) {
	srv := newServer(t, Options{})
	api := apiClient(srv)
	ctx := context.Background()
	home := func(n int) slack.HomeTabViewRequest {
		bs := make([]slack.Block, n)
		for i := range bs {
			bs[i] = sectionBlock("x")
		}
		return slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: bs}}
	}
	if _, err := api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: "U1", View: home(101)}); slackErr(err) != "invalid_arguments" {
		t.Errorf("101 blocks answered %v", err)
	}
	if _, err := api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: "U404", View: home(1)}); slackErr(err) != "user_not_found" {
		t.Errorf("an unknown user answered %v", err)
	}
	if _, err := api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: "U1", View: home(100)}); err != nil {
		t.Fatalf("100 blocks: %v", err)
	}
	v, ok := srv.Home("U1")
	if !ok || v.Type != "home" || v.Versions != 1 {
		t.Errorf("home = %+v", v)
	}
	var blocks []map[string]any
	if err := json.Unmarshal(v.Blocks, &blocks); err != nil || len(blocks) != 100 || blocks[0]["block_id"] == "" {
		t.Errorf("stored blocks: %d, %v", len(blocks), err)
	}
}

// A view_submission is answered in its ack: errors must name input
// blocks of the view; an update replaces it; an empty ack closes it.
func TestSubmissionAcks(t *testing.T) {
	srv := newServer(t, Options{})
	answer := make(chan any, 1)
	b := startBot(t, srv, func(b *testBot, ev socketmode.Event) {
		if cb, ok := ev.Data.(slack.InteractionCallback); ok && cb.Type == slack.InteractionTypeViewSubmission {
			if p := <-answer; p != nil {
				_ = b.sm.Ack(*ev.Request, p)
			} else {
				_ = b.sm.Ack(*ev.Request)
			}
			return
		}
		ackAll(b, ev)
	})
	waitConnected(t, srv, 1)
	trig := triggerOf(t, srv.SlashCommand("U1", "C1", "/deploy", ""))
	in := slack.NewInputBlock("reason", plainText("Why"), nil, slack.NewPlainTextInputBlockElement(nil, "reason"))
	m := modal("Reject", in)
	m.Submit = plainText("Reject")
	if _, err := b.api.OpenViewContext(context.Background(), trig, m); err != nil {
		t.Fatal(err)
	}
	if e := srv.Submit("U1", map[string]string{}); e.err == nil {
		t.Error("a required input left empty was sent")
	}
	if e := srv.Submit("U1", map[string]string{"nope": "x"}); e.err == nil {
		t.Error("an input the form lacks was sent")
	}
	srv.ClearRejected()

	answer <- slack.NewErrorsViewSubmissionResponse(map[string]string{"other": "bad"})
	if _, err := srv.WaitAck(srv.Submit("U1", map[string]string{"reason": "x"}), wait); err != nil {
		t.Fatal(err)
	}
	if r := lastRejection(t, srv); r.Method != "ack" || r.Error != "invalid_errors" {
		t.Errorf("errors naming no input: %+v", r)
	}
	answer <- slack.NewErrorsViewSubmissionResponse(map[string]string{"reason": "Say more"})
	srv.WaitAck(srv.Submit("U1", map[string]string{"reason": "x"}), wait)
	if v, ok := srv.Modal("U1"); !ok || v.Errors["reason"] != "Say more" {
		t.Errorf("modal after errors = %+v", v)
	}
	answer <- slack.NewUpdateViewSubmissionResponse(&slack.ModalViewRequest{Type: slack.VTModal, Title: plainText("Done"), Blocks: slack.Blocks{BlockSet: []slack.Block{sectionBlock("ok")}}})
	srv.WaitAck(srv.Submit("U1", map[string]string{"reason": "x"}), wait)
	if v, ok := srv.Modal("U1"); !ok || v.Title != "Done" || v.Errors != nil {
		t.Errorf("modal after update = %+v", v)
	}
	answer <- nil
	if e := srv.Submit("U1", nil); e.err != nil {
		t.Fatal(e.err) // the result view has no inputs
	} else {
		srv.WaitAck(e, wait)
	}
	if _, ok := srv.Modal("U1"); ok {
		t.Error("an empty ack left the modal open")
	}
}
