package steps_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/integrations/sqlite"
	"github.com/deploybot/deploybot/steps"
)

// Matrix users. Alice starts every run (a deployer and an approver), so she
// is "the requester as approver".
const (
	mAlice = "U0ALICE" // requester: deployer and approver
	mDeb   = "U0DEB"   // deployer only
	mBob   = "U0BOB"   // approver by id
	mDave  = "U0DAVE"  // approver through the S0APPROVERS user group
	mCarol = "U0CAROL" // no role
)

type matrixGroups struct{}

func (matrixGroups) GroupMembers(ctx context.Context, id string) ([]string, error) {
	if id == "S0APPROVERS" {
		return []string{mDave}, nil
	}
	return nil, errors.New("no such group")
}

// offerAll is a waiting step that offers every step verb and does what it
// is told: the matrix is about who may click, not what clicks do.
type offerAll struct{ spec steps.Spec }

func (s *offerAll) Spec() steps.Spec { return s.spec }
func (s *offerAll) Start(ctx context.Context, x *steps.Exec) steps.Result {
	var bs []steps.Button
	for _, v := range []string{steps.VerbApprove, steps.VerbReject, steps.VerbDone, steps.VerbPublish, steps.VerbSkip, steps.VerbRecheck, steps.VerbConfirm, steps.VerbRetry, steps.VerbIncident} {
		bs = append(bs, steps.Button{Verb: v, Label: v})
	}
	return steps.Wait("choose", bs...)
}
func (s *offerAll) Act(ctx context.Context, x *steps.Exec, a steps.Action) steps.Result {
	if a.Verb == steps.VerbReject {
		r := steps.Done("rejected")
		r.EndRun = "rejected"
		return r
	}
	if a.Verb == steps.VerbRecheck {
		return s.Start(ctx, x)
	}
	return steps.Done(a.Verb)
}

// Every command and every button verb against every role: only the allowed
// cells act; every refusal is answered (a *steps.Refused saying why) and
// audited, and changes nothing.
func TestAuthorizationMatrix(t *testing.T) {
	cfg, err := config.Parse([]byte(`
slack:
  deploy_channels: [C0DEPLOYS]
  deployers: [U0ALICE, U0DEB]
  approvers: [U0ALICE, U0BOB, S0APPROVERS]
services:
  svc:
    environments:
      - {name: dev, dir: d, file: d/svc.tf, module: svc, version_attribute: image_tag, target: module.svc}
      - {name: prod, dir: p, file: p/svc.tf, module: svc, version_attribute: image_tag, target: module.svc, four_eyes: true}
    steps:
      - {id: dev-step, title: Dev step, instruction: do it, environment: dev}
      - {id: prod-step, title: Prod step, instruction: do it, environment: prod}
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
	for _, id := range []string{"dev-step", "prod-step"} {
		rb.Automate(id, func(spec steps.Spec, svc *config.Service, m *steps.Manual) steps.Step {
			spec.Overridable = true // `/deploy override` applies
			return &offerAll{spec: spec}
		})
	}
	rec := newRecorder()
	roles := bot.NewRoles(cfg.Slack.Deployers, cfg.Slack.Approvers, matrixGroups{}, 0)
	eng := steps.NewEngine(db, rec, roles, rb, nil)
	defer eng.Close()
	ctx := context.Background()

	yes, no := true, false
	// Who may answer a step ("the requester or an approver" gate).
	// Columns: carol (none), deb (deployer), bob (approver), dave (approver
	// via group), alice as requester on dev, alice as requester on prod
	// (four-eyes).
	type row struct {
		verb                                       string
		carol, deb, bob, dave, aliceDev, aliceProd bool
	}
	stepVerbs := []row{
		{steps.VerbApprove, no, no, yes, yes, yes, no},
		{steps.VerbPublish, no, no, yes, yes, yes, no},
		{steps.VerbConfirm, no, no, yes, yes, yes, no},
		{steps.VerbSkip, no, no, yes, yes, yes, no},
		{steps.VerbDone, no, no, yes, yes, yes, no},
		{steps.VerbReject, no, no, yes, yes, yes, yes},
		{steps.VerbRecheck, no, no, yes, yes, yes, yes},
		{steps.VerbRetry, no, no, yes, yes, yes, yes},
		{steps.VerbIncident, no, no, yes, yes, yes, yes},
		{steps.VerbCancel, no, no, yes, yes, yes, yes},
	}
	cells, refusals := 0, 0
	start := func() *steps.Run {
		t.Helper()
		r, err := eng.Start(ctx, steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: mAlice, Channel: "C0DEPLOYS"})
		if err != nil {
			t.Fatal(err)
		}
		return rec.waitRun(t, r.ID, "the first step to wait", func(r *steps.Run) bool { return r.Steps[0].Status == steps.StepWaiting })
	}
	finish := func(r *steps.Run) {
		t.Helper()
		if err := eng.Cancel(ctx, r.ID, mAlice); err != nil {
			var rf *steps.Refused
			if !errors.As(err, &rf) { // already ended by the cell
				t.Fatal(err)
			}
		}
		rec.waitRun(t, r.ID, "the run to end", func(r *steps.Run) bool { return !r.State.Open() })
		for _, o := range eng.OpenRuns() { // incidents and rollbacks the cell started
			if o.ID != r.ID {
				_ = eng.Cancel(ctx, o.ID, mAlice)
				rec.waitRun(t, o.ID, "the run the cell started to end", func(r *steps.Run) bool { return !r.State.Open() })
			}
		}
	}
	check := func(what, user string, want bool, err error, r *steps.Run, stepIdx int) {
		t.Helper()
		cells++
		var rf *steps.Refused
		refused := errors.As(err, &rf)
		if err != nil && !refused {
			t.Fatalf("%s by %s: %v", what, user, err)
		}
		if want && refused {
			t.Errorf("%s by %s was refused: %s", what, user, rf.Msg)
		}
		if !want && !refused {
			t.Errorf("%s by %s was allowed", what, user)
		}
		if !refused {
			return
		}
		refusals++
		if len(rf.Msg) < 20 {
			t.Errorf("%s by %s: refusal %q does not say why", what, user, rf.Msg)
		}
		evs, _ := db.Audit(ctx, "")
		last := evs[len(evs)-1]
		if last.Actor != user || !strings.HasSuffix(last.Action, ".refused") {
			t.Errorf("%s by %s: refusal not audited (last event %+v)", what, user, last)
		}
		if r != nil {
			now, _ := eng.Run(ctx, r.ID)
			if now.Steps[stepIdx].Seq != r.Steps[stepIdx].Seq || now.State != r.State {
				t.Errorf("%s by %s: refused, yet the run changed", what, user)
			}
		}
	}

	for _, rw := range stepVerbs {
		for _, cell := range []struct {
			user string
			prod bool
			want bool
		}{
			{mCarol, false, rw.carol}, {mDeb, false, rw.deb}, {mBob, false, rw.bob}, {mDave, false, rw.dave},
			{mAlice, false, rw.aliceDev}, {mAlice, true, rw.aliceProd},
			{mCarol, true, rw.carol}, {mDeb, true, rw.deb}, {mBob, true, rw.bob}, {mDave, true, rw.dave},
		} {
			r := start()
			idx := 0
			if cell.prod {
				// Get to the prod step: Bob finishes the dev step.
				cur := r.Steps[0]
				if err := eng.Act(ctx, steps.ActionRequest{RunID: r.ID, StepIndex: 0, Seq: cur.Seq, Verb: steps.VerbDone, User: mBob}); err != nil {
					t.Fatal(err)
				}
				r = rec.waitRun(t, r.ID, "the prod step to wait", func(r *steps.Run) bool { return r.Steps[1].Status == steps.StepWaiting })
				idx = 1
			}
			st := r.Steps[idx]
			req := steps.ActionRequest{RunID: r.ID, StepIndex: idx, Seq: st.Seq, Verb: rw.verb, User: cell.user}
			if rw.verb == steps.VerbConfirm {
				req.Reason = "matrix" // confirming an overridable step overrides it, which takes a reason
			}
			// A form asks Check before it asks for a reason: it must agree
			// with Act in every cell.
			if cerr := eng.Check(ctx, req); (cerr == nil) != cell.want {
				t.Errorf("%s on step %d by %s: Check said %v, Act should allow: %v", rw.verb, idx, cell.user, cerr, cell.want)
			}
			err := eng.Act(ctx, req)
			check(fmt.Sprintf("%s on the %s step", rw.verb, map[bool]string{false: "dev", true: "prod (four-eyes)"}[cell.prod]), cell.user, cell.want, err, r, idx)
			finish(r)
		}
	}

	// Commands: /deploy and /rollback need a deployer; /incident any role;
	// /deploy cancel the requester or an approver; /deploy override an
	// approver (on an overridable step only, so it is refused to everyone
	// here for that reason, never for a role it lacks).
	for _, c := range []struct {
		kind steps.RunKind
		user string
		want bool
	}{
		{steps.KindDeploy, mCarol, no}, {steps.KindDeploy, mDeb, yes}, {steps.KindDeploy, mBob, no}, {steps.KindDeploy, mDave, no}, {steps.KindDeploy, mAlice, yes},
		{steps.KindIncident, mCarol, no}, {steps.KindIncident, mDeb, yes}, {steps.KindIncident, mBob, yes}, {steps.KindIncident, mDave, yes}, {steps.KindIncident, mAlice, yes},
	} {
		r, err := eng.Start(ctx, steps.StartRequest{Kind: c.kind, Service: "svc", Version: "rel-2024.01.01.00.00.00", Requester: c.user, Channel: "C0DEPLOYS", Summary: "matrix"})
		check(fmt.Sprintf("/%s", c.kind), c.user, c.want, err, nil, 0)
		if r != nil {
			_ = eng.Cancel(ctx, r.ID, mAlice)
			rec.waitRun(t, r.ID, "the run to end", func(r *steps.Run) bool { return !r.State.Open() })
		}
	}
	for _, c := range []struct {
		user string
		want bool
	}{{mCarol, no}, {mDeb, no}, {mBob, yes}, {mDave, yes}, {mAlice, yes}} {
		r := start()
		err := eng.Cancel(ctx, r.ID, c.user)
		check("/deploy cancel", c.user, c.want, err, r, 0)
		finish(r)
	}
	// Confirming an overridable step is an override: without a reason it
	// is refused and changes nothing.
	{
		r := start()
		err := eng.Act(ctx, steps.ActionRequest{RunID: r.ID, StepIndex: 0, Seq: r.Steps[0].Seq, Verb: steps.VerbConfirm, User: mBob})
		check("confirm without a reason", mBob, false, err, r, 0)
		if err == nil || !strings.Contains(err.Error(), "/deploy override "+r.ID+" <reason>") {
			t.Errorf("confirm without a reason answered %v", err)
		}
		finish(r)
	}
	// /deploy override: an approver, four-eyes on prod for the requester.
	for _, c := range []struct {
		user string
		prod bool
		want bool
	}{
		{mCarol, false, no}, {mDeb, false, no}, {mBob, false, yes}, {mDave, false, yes}, {mAlice, false, yes},
		{mCarol, true, no}, {mDeb, true, no}, {mBob, true, yes}, {mDave, true, yes}, {mAlice, true, no},
	} {
		r := start()
		idx := 0
		if c.prod {
			if err := eng.Act(ctx, steps.ActionRequest{RunID: r.ID, StepIndex: 0, Seq: r.Steps[0].Seq, Verb: steps.VerbDone, User: mBob}); err != nil {
				t.Fatal(err)
			}
			r = rec.waitRun(t, r.ID, "the prod step to wait", func(r *steps.Run) bool { return r.Steps[1].Status == steps.StepWaiting })
			idx = 1
		}
		err := eng.Override(ctx, r.ID, c.user, "the refresh is paused")
		check(fmt.Sprintf("/deploy override on the %s step", map[bool]string{false: "dev", true: "prod (four-eyes)"}[c.prod]), c.user, c.want, err, r, idx)
		finish(r)
	}

	// Run-level Roll back (on a Sentry issue) with no earlier good version
	// known: every role is refused before anything starts.
	for _, u := range []string{mCarol, mDeb, mBob, mDave, mAlice} {
		r := start()
		err := eng.Act(ctx, steps.ActionRequest{RunID: r.ID, StepIndex: steps.RunLevel, Verb: steps.VerbRollback, User: u})
		check("Roll back with no good version known", u, no, err, r, 0)
		finish(r)
	}

	// A good version is known once a deploy of it succeeded.
	good, err := eng.Start(ctx, steps.StartRequest{Kind: steps.KindDeploy, Service: "svc", Version: "rel-2023.07.03.17.52.00", Requester: mAlice, Channel: "C0DEPLOYS"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		w := rec.waitRun(t, good.ID, "the step to wait", func(r *steps.Run) bool { return r.Steps[i].Status == steps.StepWaiting })
		if err := eng.Act(ctx, steps.ActionRequest{RunID: good.ID, StepIndex: i, Seq: w.Steps[i].Seq, Verb: steps.VerbDone, User: mBob}); err != nil {
			t.Fatal(err)
		}
	}
	rec.waitRun(t, good.ID, "the good deploy to succeed", func(r *steps.Run) bool { return r.State == steps.RunSucceeded })

	// Run-level Roll back: a deployer, and one who may end the open deploy
	// it replaces (its requester or an approver).
	for _, c := range []struct {
		user string
		want bool
	}{{mCarol, no}, {mDeb, no}, {mBob, no}, {mDave, no}, {mAlice, yes}} {
		r := start()
		err := eng.Act(ctx, steps.ActionRequest{RunID: r.ID, StepIndex: steps.RunLevel, Verb: steps.VerbRollback, User: c.user})
		if c.want {
			check("Roll back to the last good version", c.user, c.want, err, nil, 0)
		} else {
			check("Roll back to the last good version", c.user, c.want, err, r, 0)
		}
		finish(r)
	}

	// /rollback: deployers only.
	for _, c := range []struct {
		user string
		want bool
	}{{mCarol, no}, {mDeb, yes}, {mBob, no}, {mDave, no}, {mAlice, yes}} {
		r, err := eng.Start(ctx, steps.StartRequest{Kind: steps.KindRollback, Service: "svc", Version: "rel-2023.07.03.17.52.00", Requester: c.user, Channel: "C0DEPLOYS"})
		check("/rollback", c.user, c.want, err, nil, 0)
		if r != nil {
			_ = eng.Cancel(ctx, r.ID, mAlice)
			rec.waitRun(t, r.ID, "the rollback to end", func(r *steps.Run) bool { return !r.State.Open() })
		}
	}
	t.Logf("authorization matrix: %d cells, %d refusals, each answered and audited", cells, refusals)
}
