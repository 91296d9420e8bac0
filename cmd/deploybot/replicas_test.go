package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql for the crash world's checks

	"github.com/deploybot/deploybot/internal/testtool"
)

// openState opens the store the crash world's bots wrote, read-only where
// the driver allows, for the checks.
func (cw *crashWorld) openState() (*sql.DB, error) {
	if cw.pgDSN != "" {
		return sql.Open("pgx", cw.pgDSN)
	}
	return sql.Open("sqlite", "file:"+filepath.Join(cw.dir, "state.db")+"?mode=ro")
}

// replicaLeaseTTL is the lease of the two-replica test: short, so that a
// takeover is waited out in seconds, and well above what renewals take.
const replicaLeaseTTL = 3 * time.Second

// Two bot processes serve one Slack app (the test server spreads envelopes
// across both connections) and one PostgreSQL database through a whole
// ingestion-server deploy with real Terraform. The replica executing the
// run is SIGKILLed while its staging apply runs, and again (the other one,
// which took over) while production's plan awaits approval; each killed
// replica is started again, so clicks keep landing on both. The run
// finishes, and every outside effect happened exactly once.
func TestTwoReplicasSurviveKills(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("runs two real bot processes through a whole deploy; skipped with -short (never in CI)")
	}
	dsn := testtool.Postgres(t)
	realTF := testtool.Terraform(t)
	bin := buildCrashBot(t)
	cw := newCrashWorld(t, deployScenario, bin, realTF)
	cw.pgDSN = dsn
	cw.env["DEPLOYBOT_DATABASE_URL"] = dsn
	cw.top += fmt.Sprintf("store:\n  lease_ttl: %s\n", replicaLeaseTTL)
	cw.writeConfig(all)

	ctx := context.Background()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	// holder names the process holding the open run's lease, by the pid
	// in its owner name (host/pid/random).
	holder := func() (string, *botProc) {
		var owner string
		if err := db.QueryRow(ctx, `SELECT owner FROM leases ORDER BY expires_at DESC LIMIT 1`).Scan(&owner); err != nil {
			return "", nil
		}
		parts := strings.Split(owner, "/")
		if len(parts) < 3 {
			return owner, nil
		}
		pid, _ := strconv.Atoi(parts[len(parts)-2])
		for _, p := range cw.procs {
			if !p.dead() && p.cmd.Process.Pid == pid {
				return owner, p
			}
		}
		return owner, nil
	}

	cw.startProc(0, "")
	cw.startProc(0, "")
	// startProc returns once a process asked for its Socket Mode URL; the
	// websocket itself follows.
	if err := waitUntil(wait, func() bool { return cw.srv.Connections() == 2 }); err != nil {
		t.Fatalf("%d Socket Mode connections, want one per replica", cw.srv.Connections())
	}

	var (
		res       driveResult
		takeovers []time.Duration
		ts        string
		last      struct {
			key string
			at  time.Time
		}
	)
	// kill SIGKILLs the run's executor, restarts it (a supervisor would),
	// and measures how long until the other replica holds the run.
	kill := func(when string) {
		var owner string
		var p *botProc
		if err := waitUntil(wait, func() bool { owner, p = holder(); return p != nil }); err != nil {
			t.Fatalf("%s: no live replica holds the run (lease owner %q)", when, owner)
		}
		killed := time.Now()
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-p.exited
		var next string
		if err := waitUntil(wait, func() bool {
			next, _ = holder()
			return next != "" && next != owner
		}); err != nil {
			t.Fatalf("%s: the run was not taken over after its replica was killed (lease still %q)", when, next)
		}
		took := time.Since(killed)
		takeovers = append(takeovers, took)
		t.Logf("%s: killed %s; taken over by %s after %v (lease ttl %v)", when, owner, next, took.Round(10*time.Millisecond), replicaLeaseTTL)
		_ = waitUntil(wait, func() bool { return cw.srv.Connections() == 1 })
		cw.startProc(0, "")
		res.restarts++
	}

	t0 := time.Now()
	cw.sc.start(cw)
	res.starts++
	phase := 0
	for {
		if time.Since(t0) > 8*time.Minute {
			res.stuck = "the run did not end within 8 minutes"
			break
		}
		for i, p := range cw.procs {
			if p.dead() && !p.killedBySIGKILL() && res.unplanned == "" {
				res.unplanned = fmt.Sprintf("replica process %d exited unplanned: %v\n%s", i+1, p.state, tailFile(p.logPath, 20))
			}
		}
		if res.unplanned != "" {
			break
		}
		if ms := cw.srv.Messages(deploys); len(ms) > 0 && ms[len(ms)-1].TS != ts {
			ts = ms[len(ms)-1].TS
			cw.msgTS = ts
		}
		if ts == "" {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		m, _ := cw.srv.Message(deploys, ts)
		if st, done := ended(runState(m)); done {
			res.state = st
			// Let the holder deliver what the end owes.
			sig := ""
			_ = waitUntil(wait, func() bool {
				m2, _ := cw.srv.Message(deploys, ts)
				now := fmt.Sprintf("%d/%d", len(cw.srv.Thread(deploys, ts)), m2.Edits)
				if now == sig {
					return true
				}
				sig = now
				time.Sleep(3 * time.Second)
				return false
			})
			break
		}
		offered := offers(m)
		switch {
		case phase == 0 && strings.Contains(strings.Join(readLines(cw.tfLog), "\n"), " apply"):
			kill("mid-apply")
			phase = 1
			continue
		case phase == 1 && len(readLines(cw.applyLog)) > 0:
			for _, o := range offered {
				if o.verb == "approve" && strings.Contains(o.title, "(prod)") {
					kill("awaiting prod approval")
					phase = 2
					break
				}
			}
			if phase == 2 {
				continue
			}
		}
		if o, user, ok := cw.choose(offered); ok {
			key := user + " " + o.actionID + " " + o.value
			if key != last.key || time.Since(last.at) > 15*time.Second {
				cw.answerForm(user, o, func() { cw.srv.Click(user, deploys, ts, o.actionID, o.value) })
				res.clicks = append(res.clicks, clickRec{verb: o.verb, user: user, title: o.title, at: time.Now(), proc: len(cw.procs)})
				last.key, last.at = key, time.Now()
			}
		}
		before := m.Edits
		_ = waitUntil(time.Second, func() bool {
			m2, _ := cw.srv.Message(deploys, ts)
			return m2.Edits != before
		})
	}
	res.elapsed = time.Since(t0)
	for _, p := range cw.procs {
		if err := cw.stopProc(p); err != nil {
			t.Errorf("%v", err)
		}
	}
	if phase != 2 {
		t.Errorf("the run ended before both kills (phase %d)", phase)
	}
	v := cw.check(res)
	for _, f := range v.findings {
		t.Errorf("[%s] %s", f.invariant, f.detail)
	}
	if len(v.findings) > 0 {
		t.Logf("clicks: %s", res.clickList())
		for _, m := range cw.srv.Thread(deploys, cw.msgTS) {
			t.Logf("thread: %s", oneLineForReport(m.Text))
		}
		for i, p := range cw.procs {
			t.Logf("replica process %d log tail:\n%s", i+1, tailFile(p.logPath, 25))
		}
	}
	// Clicks that reached the replica not holding the run were recorded
	// for the holder; none may be left untaken.
	var forwarded, taken int
	if err := db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE taken_at <> '') FROM pending_actions`).Scan(&forwarded, &taken); err != nil {
		t.Fatal(err)
	}
	if taken != forwarded {
		t.Errorf("%d of %d clicks passed on to the holder were never taken", forwarded-taken, forwarded)
	}
	var figures []string
	for _, d := range takeovers {
		figures = append(figures, d.Round(10*time.Millisecond).String())
	}
	line := fmt.Sprintf("two replicas on PostgreSQL: %s in %v, 2 SIGKILLs, takeover after %s (lease ttl %v); %d effects counted, %d duplicates, %d losses; %d clicks, %d passed on to the holder",
		res.state, res.elapsed.Round(time.Second), strings.Join(figures, " and "), replicaLeaseTTL, v.effects, v.duplicates, v.losses, len(res.clicks), forwarded)
	t.Log(line)
}
