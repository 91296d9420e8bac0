package sqlite

import (
	"fmt"
	"testing"

	"github.com/deploybot/deploybot/steps"
)

// BenchmarkSaveRun measures one transition: a 13-step run rewritten with one
// audit event, committed with synchronous=FULL to the test's temp directory.
func BenchmarkSaveRun(b *testing.B) {
	db, _ := openTest(b)
	r := newRun("api")
	for i := len(r.Steps); i < 13; i++ {
		r.Steps = append(r.Steps, steps.StepState{Index: i, ID: fmt.Sprintf("step-%d", i), Title: "A step",
			Status: steps.StepPending, Data: map[string]string{"k": "v"}})
	}
	mustCreate(b, db, r)
	i := 0
	for b.Loop() {
		st := &r.Steps[3+i%10]
		st.Seq++
		st.Note = fmt.Sprintf("tick %d", i)
		if err := db.SaveRun(ctx, r, steps.Changes{Events: []steps.AuditEvent{{Actor: "U1", Action: "step.done", StepID: st.ID}}}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
