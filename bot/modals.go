package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/deploybot/deploybot/internal/redact"
	"github.com/deploybot/deploybot/steps"
)

const (
	// deployFormAction is the Home tab's Deploy… button; its value is the
	// service. It opens a form rather than acting, so it is not a verb.
	deployFormAction = "deploy_form"
	deployCallback   = "deploy"
	reasonCallback   = "reason"
	maxReason        = 1000
	maxModalTitle    = 24
	// checkBudget bounds what runs before a form opens (the trigger_id
	// lives 3 s) and before a submission is answered (Slack waits 3 s).
	checkBudget = 1500 * time.Millisecond
)

// asksReason reports whether a button needs its reason first: the danger
// buttons that override a safeguard or stop something (Override, Skip with
// the risk, Force unlock, Dispatch again, Reject, Incident). Cancel is
// danger too but needs no reason; a plain Skip (no release) takes none.
func asksReason(verb, style string) bool {
	switch verb {
	case steps.VerbReject, steps.VerbIncident:
		return true
	case steps.VerbConfirm, steps.VerbSkip:
		return style == "danger"
	}
	return false
}

// Submission is a submitted modal as the adapter hands it over. Values are
// keyed by input block: the text typed, or the value of the chosen option.
type Submission struct {
	User, ViewID, CallbackID, Metadata string
	Values                             map[string]string
}

type reasonMeta struct {
	ActionID string `json:"a"`
	Value    string `json:"v"`
	Label    string `json:"l"`
	Channel  string `json:"c,omitempty"`
}

type deployMeta struct {
	Channel string `json:"c"`
}

func ptext(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
}

// viaForm opens the reason form for a click that needs one, and reports
// whether it took the click over.
func (b *Bot) viaForm(ctx context.Context, c Click, req steps.ActionRequest) bool {
	views := b.home.views
	if views == nil || c.TriggerID == "" {
		return false
	}
	// The step's own button says what it is; the click's text is only a
	// fallback (run-level buttons are not kept on a step).
	style, label := "", c.Label
	if req.StepIndex != steps.RunLevel {
		if r, err := b.eng.Run(ctx, req.RunID); err == nil {
			if st := r.Step(req.StepIndex); st != nil {
				for _, bt := range st.Buttons {
					if bt.Verb == req.Verb {
						style, label = bt.Style, bt.Label
					}
				}
			}
		}
	}
	if !asksReason(req.Verb, style) {
		return false
	}
	// A click that would be refused is refused now, before anyone writes a
	// reason for it; the budget leaves the trigger_id time to open the form.
	cctx, cancel := context.WithTimeout(ctx, checkBudget)
	err := b.eng.Check(cctx, req)
	cancel()
	var rf *steps.Refused
	if errors.As(err, &rf) {
		b.answerErr(ctx, c.Reply, err)
		return true
	}
	if label == "" {
		label = req.Verb
	}
	meta, _ := json.Marshal(reasonMeta{ActionID: c.ActionID, Value: c.Value, Label: label, Channel: c.Channel})
	question := "Why? It goes to the run's thread and the audit log."
	if req.Verb == steps.VerbIncident {
		question = "What is wrong? It becomes the incident's summary, in the thread and the audit log."
	}
	input := slack.NewPlainTextInputBlockElement(ptext("Say why"), "reason")
	input.Multiline = true
	input.MaxLength = maxReason
	m := slack.ModalViewRequest{Type: slack.VTModal, CallbackID: reasonCallback, PrivateMetadata: string(meta),
		Title: ptext(truncate(label, maxModalTitle)), Submit: ptext(truncate(label, maxModalTitle)), Close: ptext("Back"),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewContextBlock("what", slack.NewTextBlockObject(slack.MarkdownType, fmt.Sprintf("*%s* on `%s`", escape(label), req.RunID), false, false)),
			slack.NewInputBlock("reason", ptext(question), nil, input),
		}}}
	if _, _, err := views.OpenModal(ctx, c.TriggerID, m); err != nil {
		instead := "click " + label + " again"
		if req.Verb == steps.VerbConfirm && label == "Override" {
			instead += ", or type `/deploy override " + req.RunID + " <reason>`"
		}
		b.formFailed(ctx, c.Reply, label, instead, err)
	}
	return true
}

// formFailed tells the user that a form did not open, and what to do.
func (b *Bot) formFailed(ctx context.Context, reply Reply, what, instead string, err error) {
	b.log.Warn("form did not open", zap.String("form", what), zap.Error(redact.Scrub(err)))
	if strings.Contains(err.Error(), "expired_trigger_id") {
		b.reply(ctx, reply, fmt.Sprintf(":hourglass: The %s form did not open: Slack allows 3 seconds from a click to open it, and deploybot was slower this time (expired_trigger_id). Nothing was done; %s.", escape(what), instead))
		return
	}
	b.reply(ctx, reply, fmt.Sprintf(":x: The %s form did not open (%s). Nothing was done; %s.", escape(what), escape(redact.ScrubString(err.Error())), instead))
}

// openDeployForm answers the Home tab's Deploy…: the form opens at once
// (the trigger_id expires), then the releases are filled in when GitHub
// has named them.
func (b *Bot) openDeployForm(ctx context.Context, c Click) {
	views := b.home.views
	if views == nil || c.TriggerID == "" {
		b.reply(ctx, c.Reply, "Type `/deploy <service> <tag>` in "+b.channelList(false)+".")
		return
	}
	service := c.Value
	if b.cfg.Service(service) == nil {
		service = b.cfg.Services[0].Name
	}
	note := ""
	if b.opts.BareDeploy {
		note = ":mag: Looking up the newest releases on GitHub…"
	}
	id, hash, err := views.OpenModal(ctx, c.TriggerID, b.deployModal(service, nil, note))
	if err != nil {
		b.formFailed(ctx, c.Reply, "Deploy", fmt.Sprintf("click Deploy… again, or type `/deploy %s <tag>` in %s", service, b.channelList(false)), err)
		return
	}
	if !b.opts.BareDeploy {
		return
	}
	choices := map[string][]steps.VersionChoice{}
	var failed []string
	for _, svc := range b.cfg.Services {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		cs, err := b.eng.VersionChoices(cctx, svc.Name)
		cancel()
		if err != nil {
			failed = append(failed, escape(redact.ScrubString(err.Error())))
		}
		choices[svc.Name] = cs
	}
	note = ""
	if len(failed) > 0 {
		note = ":warning: " + truncate(b.mask.String(strings.Join(failed, "; ")), 2000) + ". Type the image tag instead."
	}
	b.home.mu.Lock()
	submitted := b.home.submitted[id]
	b.home.mu.Unlock()
	if submitted {
		return // the form has moved on; its answer must not be overwritten
	}
	// The hash closes the moment between that check and this update: a
	// form submitted meanwhile has a new hash, and Slack refuses the edit.
	if err := views.UpdateModal(ctx, id, hash, b.deployModal(service, choices, note)); err != nil {
		b.log.Info("deploy form not updated with releases", zap.Error(redact.Scrub(err)))
	}
}

// deployModal is the Deploy form: the service, then a version picked from
// the newest releases or typed.
func (b *Bot) deployModal(service string, choices map[string][]steps.VersionChoice, note string) slack.ModalViewRequest {
	var opts []*slack.OptionBlockObject
	var initial *slack.OptionBlockObject
	for _, svc := range b.cfg.Services {
		o := slack.NewOptionBlockObject(svc.Name, ptext(truncate(svc.Name, 75)), nil)
		opts = append(opts, o)
		if svc.Name == service {
			initial = o
		}
	}
	sel := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, ptext("Service"), "service", opts...)
	sel.InitialOption = initial
	blocks := []slack.Block{slack.NewInputBlock("service", ptext("Service"), nil, sel)}
	var groups []*slack.OptionGroupBlockObject
	for _, svc := range b.cfg.Services {
		var gs []*slack.OptionBlockObject
		for _, c := range choices[svc.Name] {
			kind := "published release"
			if c.Draft {
				kind = "drafted release"
			}
			gs = append(gs, slack.NewOptionBlockObject(svc.Name+"|"+c.Tag, ptext(truncate(c.Tag+" ("+kind+")", 75)), nil))
		}
		if len(gs) > 0 {
			groups = append(groups, slack.NewOptionGroupBlockElement(ptext(truncate(svc.Name, 75)), gs...))
		}
	}
	typedLabel := "Image tag"
	if len(groups) > 0 {
		pick := slack.NewOptionsGroupSelectBlockElement(slack.OptTypeStatic, ptext("Newest releases"), "version_pick", groups...)
		in := slack.NewInputBlock("version_pick", ptext("Version"), nil, pick)
		in.Optional = true
		blocks = append(blocks, in)
		typedLabel = "Or another image tag"
	}
	prefix := b.cfg.Services[0].ImageTagPrefix
	typed := slack.NewPlainTextInputBlockElement(ptext(prefix+"2023.07.03.17.52.00"), "version")
	in := slack.NewInputBlock("version", ptext(typedLabel), nil, typed)
	// Without GitHub deploybot cannot find the draft: a tag is needed.
	in.Optional = b.opts.BareDeploy
	if b.opts.BareDeploy && len(groups) == 0 {
		in.Hint = ptext("Leave empty to deploy the newest drafted release.")
	}
	blocks = append(blocks, in)
	if note != "" {
		blocks = append(blocks, slack.NewContextBlock("note", slack.NewTextBlockObject(slack.MarkdownType, truncate(note, maxSectionText), false, false)))
	}
	meta, _ := json.Marshal(deployMeta{Channel: b.cfg.Slack.DeployChannels[0]})
	return slack.ModalViewRequest{Type: slack.VTModal, CallbackID: deployCallback, PrivateMetadata: string(meta),
		Title: ptext("Deploy"), Submit: ptext("Start deploy"), Close: ptext("Cancel"), Blocks: slack.Blocks{BlockSet: blocks}}
}

// resultModal is what a submitted form turns into.
func resultModal(title, text string) *slack.ModalViewRequest {
	return &slack.ModalViewRequest{Type: slack.VTModal, Title: ptext(truncate(title, maxModalTitle)), Close: ptext("Close"),
		Blocks: slack.Blocks{BlockSet: []slack.Block{slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, truncate(text, maxSectionText), false, false), nil, nil, slack.SectionBlockOptionBlockID("result"))}}}
}

// CheckSubmission judges a submitted form within Slack's 3 seconds: the
// problems to show under its inputs (nothing is done then), or the view
// to show while HandleSubmission acts on it.
func (b *Bot) CheckSubmission(ctx context.Context, s Submission) (errs map[string]string, working *slack.ModalViewRequest) {
	b.home.mu.Lock()
	if b.home.submitted == nil || len(b.home.submitted) > maxViewers {
		b.home.submitted = map[string]bool{}
	}
	b.home.submitted[s.ViewID] = true
	b.home.mu.Unlock()
	switch s.CallbackID {
	case reasonCallback:
		var m reasonMeta
		_ = json.Unmarshal([]byte(s.Metadata), &m)
		reason := strings.TrimSpace(s.Values["reason"])
		switch {
		case reason == "":
			return map[string]string{"reason": "Say why: the reason goes to the run's thread and the audit log."}, nil
		case len([]rune(reason)) > maxReason:
			return map[string]string{"reason": fmt.Sprintf("Keep it under %d characters; details can go in the thread.", maxReason)}, nil
		}
		return nil, resultModal(m.Label, ":hourglass_flowing_sand: Working on it…")
	case deployCallback:
		svc, _, errs := b.deployRequest(ctx, s)
		if errs != nil {
			return errs, nil
		}
		return nil, resultModal("Deploy", fmt.Sprintf(":hourglass_flowing_sand: Starting the deploy of %s…", svc))
	}
	return nil, resultModal("deploybot", ":warning: deploybot does not know this form; it may come from an older version. Nothing was done.")
}

// deployRequest reads and checks the Deploy form as /deploy checks its
// words, and the user's role as Start does.
func (b *Bot) deployRequest(ctx context.Context, s Submission) (service, tag string, errs map[string]string) {
	svc := b.cfg.Service(s.Values["service"])
	if svc == nil {
		return "", "", map[string]string{"service": "Pick one of the services: " + strings.ReplaceAll(b.serviceList(), "`", "") + "."}
	}
	picked, typed := "", strings.TrimSpace(s.Values["version"])
	if p := s.Values["version_pick"]; p != "" {
		name, t, _ := strings.Cut(p, "|")
		if name != svc.Name {
			return "", "", map[string]string{"version_pick": fmt.Sprintf("%s is a release of %s, not of %s. Pick one under %s, or type a tag.", t, name, svc.Name, svc.Name)}
		}
		picked = t
	}
	switch {
	case picked != "" && typed != "" && picked != typed:
		return "", "", map[string]string{"version": "Pick a release or type a tag, not both."}
	case picked != "":
		tag = picked
	case typed != "":
		if err := checkTag(svc, typed); err != nil {
			return "", "", map[string]string{"version": strings.ReplaceAll(err.Error(), "`", "")}
		}
		tag = typed
	case !b.opts.BareDeploy:
		return "", "", map[string]string{"version": fmt.Sprintf("Name the image tag, like %s2023.07.03.17.52.00: GitHub is not configured, so deploybot cannot read the drafted release.", svc.ImageTagPrefix)}
	}
	if err := b.eng.MayStart(ctx, steps.KindDeploy, svc.Name, s.User); err != nil {
		var rf *steps.Refused
		if errors.As(err, &rf) {
			return "", "", map[string]string{"service": strings.ReplaceAll(rf.Msg, "`", "")}
		}
		return "", "", map[string]string{"service": "deploybot could not check your role in time; submit again in a moment."}
	}
	return svc.Name, tag, nil
}

// HandleSubmission acts on a form CheckSubmission accepted, and shows the
// outcome in the form.
func (b *Bot) HandleSubmission(ctx context.Context, s Submission) {
	title, text := "deploybot", ""
	switch s.CallbackID {
	case reasonCallback:
		var m reasonMeta
		_ = json.Unmarshal([]byte(s.Metadata), &m)
		title = m.Label
		req, ok := parseButton(m.ActionID, m.Value)
		if !ok {
			text = ":warning: deploybot does not recognise that button; nothing was done. `/deploy status` shows the runs and their current buttons."
			break
		}
		req.User, req.Reason = s.User, strings.TrimSpace(s.Values["reason"])
		if err := b.eng.Act(ctx, req); err != nil {
			text = b.errText(ctx, err)
			break
		}
		text = fmt.Sprintf(":white_check_mark: *%s* on `%s` is done; your reason is in the run's thread and the audit log.", escape(m.Label), req.RunID)
	case deployCallback:
		title = "Deploy"
		var m deployMeta
		_ = json.Unmarshal([]byte(s.Metadata), &m)
		if !b.inDeployChannel(m.Channel) {
			m.Channel = b.cfg.Slack.DeployChannels[0]
		}
		svc, tag, errs := b.deployRequest(ctx, s)
		if errs != nil {
			var all []string
			for _, e := range errs {
				all = append(all, e)
			}
			text = ":no_entry: " + strings.Join(all, " ") + " Nothing was started."
			break
		}
		r, err := b.eng.Start(ctx, steps.StartRequest{Kind: steps.KindDeploy, Service: svc, Version: tag, Requester: s.User, Channel: m.Channel})
		if err != nil {
			text = b.errText(ctx, err) + " Nothing was started."
			break
		}
		text = fmt.Sprintf(":rocket: Started %s: %s. Follow it in <#%s> and its thread.", r.ID, escape(r.Title()), m.Channel)
	default:
		return
	}
	if err := b.home.views.UpdateModal(ctx, s.ViewID, "", *resultModal(title, b.mask.String(text))); err != nil {
		b.log.Info("form outcome not shown (closed?)", zap.Error(redact.Scrub(err)))
	}
}

// errText is answerErr's text, for a form.
func (b *Bot) errText(ctx context.Context, err error) string {
	var out string
	b.answerErr(ctx, func(_ context.Context, v View) error { out = v.Text; return nil }, err)
	return out
}

// SubmissionUnrecorded turns a submitted form whose envelope could not be
// recorded (so was not acted on) into a notice saying so.
func (b *Bot) SubmissionUnrecorded(ctx context.Context, s Submission, err error) {
	if b.home.views == nil {
		return
	}
	text := ":x: deploybot could not record this request (" + escape(redact.ScrubString(err.Error())) + "), so it did nothing with it. Close this form and submit it again in a moment."
	if uerr := b.home.views.UpdateModal(ctx, s.ViewID, "", *resultModal("Not done", b.mask.String(text))); uerr != nil {
		b.log.Info("form notice not shown (closed?)", zap.Error(redact.Scrub(uerr)))
	}
}
