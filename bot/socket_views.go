package bot

import (
	"context"
	"sync"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"

	"github.com/deploybot/deploybot/internal/redact"
)

// answerKey carries a submission's ack function to its handler.
type answerKey struct{}

// answerOnce returns, for a view_submission, the function that acks it
// with its answer, at most once; nil for every other envelope. Slack reads
// a form's errors (or its next view) only from the ack, so this ack alone
// waits, within a bounded budget, for the form to be judged; the dispatch
// loop does not wait for it.
func (s *Socket) answerOnce(evt socketmode.Event) func(payload any) {
	d, ok := evt.Data.(slack.InteractionCallback)
	if !ok || d.Type != slack.InteractionTypeViewSubmission || evt.Request == nil {
		return nil
	}
	req := *evt.Request
	var once sync.Once
	return func(payload any) {
		once.Do(func() {
			var err error
			if payload == nil {
				err = s.sm.Ack(req)
			} else {
				err = s.sm.Ack(req, payload)
			}
			if err != nil {
				s.log.Warn("ack failed", zap.Error(redact.Scrub(err)))
			}
		})
	}
}

// submission judges a submitted form and acks it with the verdict: the
// problems under its inputs, or a view saying the work has started, which
// HandleSubmission then replaces with the outcome.
func (s *Socket) submission(ctx context.Context, req *socketmode.Request, d slack.InteractionCallback) {
	answer, _ := ctx.Value(answerKey{}).(func(any))
	if answer == nil {
		answer = func(any) {}
	}
	sub := Submission{User: d.User.ID, ViewID: d.View.ID, CallbackID: d.View.CallbackID, Metadata: d.View.PrivateMetadata, Values: map[string]string{}}
	if d.View.State != nil {
		for block, actions := range d.View.State.Values {
			for _, a := range actions {
				v := a.Value
				if a.SelectedOption.Value != "" {
					v = a.SelectedOption.Value
				}
				sub.Values[block] = v
			}
		}
	}
	cctx, cancel := context.WithTimeout(ctx, checkBudget)
	errs, working := s.bot.CheckSubmission(cctx, sub)
	cancel()
	if errs != nil {
		answer(slack.NewErrorsViewSubmissionResponse(errs))
		return
	}
	answer(slack.NewUpdateViewSubmissionResponse(working))
	ok, err := s.record(ctx, req.EnvelopeID)
	if err != nil {
		// A form has no response_url: the form itself must stop saying
		// "working" and say that nothing was done.
		s.bot.SubmissionUnrecorded(ctx, sub, err)
		return
	}
	if !ok {
		return
	}
	s.bot.HandleSubmission(ctx, sub)
}
