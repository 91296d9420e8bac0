package postgres

import (
	"fmt"
	"testing"

	"github.com/deploybot/deploybot/internal/testtool"
	"github.com/deploybot/deploybot/steps"
	"github.com/deploybot/deploybot/steps/storetest"
)

// BenchmarkSaveRun measures one transition, as the SQLite store's benchmark
// does: a 13-step run rewritten with one audit event, committed to the local
// PostgreSQL over loopback.
func BenchmarkSaveRun(b *testing.B) {
	db, err := Open(ctx, testtool.Postgres(b))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	r := storetest.NewRun("api")
	for i := len(r.Steps); i < 13; i++ {
		r.Steps = append(r.Steps, steps.StepState{Index: i, ID: fmt.Sprintf("step-%d", i), Title: "A step",
			Status: steps.StepPending, Data: map[string]string{"k": "v"}})
	}
	if err := db.CreateRun(ctx, r, steps.Changes{}); err != nil {
		b.Fatal(err)
	}
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
