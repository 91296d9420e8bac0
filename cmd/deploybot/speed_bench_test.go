package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot/slacktest"
	"github.com/deploybot/deploybot/internal/benchfig"
	"github.com/deploybot/deploybot/internal/testtool"
	"github.com/deploybot/deploybot/steps"
)

// The benchmarks here measure the figures of the README's performance
// table (`make bench`); each writes them with benchfig for the table.

const (
	ackEnvelopes = 10_000
	ackRate      = 1_000 // envelopes per second
)

// BenchmarkAckDuringApply sends 10,000 envelopes at 1,000 a second over
// the Slack test server's real websocket while a production apply is
// running (a real terraform apply held open by a local-exec script), and
// measures each from the moment the server writes it to the moment it reads
// the ack. One in ten is a slash command (/deploy help, answered in the
// background through its response_url), the rest are channel messages.
// Slack redelivers an envelope not acked within 3 s.
func BenchmarkAckDuringApply(b *testing.B) {
	w := newWorld(b, sections{infra: true})
	ro := withRollout(b, w, sections{infra: true}, "")
	touch(b, ro.slow)
	w.start()
	w.reply(w.command(alice, deploys, "/deploy", "ingestion-server "+tag))
	msg := w.runMessage(0)
	toProdApply(b, w.harness, msg.TS, ro)

	var lat []time.Duration
	var rate float64
	var answered time.Duration
	b.ResetTimer()
	for b.Loop() {
		lat, rate, answered = ackBlast(b, w.srv)
	}
	b.StopTimer()
	if st := stepState(b, w.harness, "apply:prod"); st.Status != steps.StepRunning {
		b.Fatalf("the production apply is %s, not running: the envelopes were not sent during an apply", st.Status)
	}
	os.Remove(ro.slow) // the apply finishes; the run waits for its next click
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	p50, p99, worst := lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	over := len(lat) - sortIndex(lat, 3*time.Second)
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(ms(worst), "max-ms")
	b.ReportMetric(float64(over), "over-3s")
	b.ReportMetric(rate, "envelopes/s")
	b.ReportMetric(answered.Seconds(), "s-to-last-reply")
	note := fmt.Sprintf("10,000 envelopes (1 in 10 a slash command, the rest channel messages) sent at %.0f/s over the Slack test server's websocket while a real terraform apply runs; envelope written → ack read", rate)
	if err := benchfig.Write("ack",
		benchfig.Figure{Order: 10, Name: "Ack latency p50", Value: ms(p50), Unit: "ms", Note: note},
		benchfig.Figure{Order: 11, Name: "Ack latency p99", Value: ms(p99), Unit: "ms", Goal: "< 5 ms", Max: 5},
		benchfig.Figure{Order: 12, Name: "Ack latency max", Value: ms(worst), Unit: "ms", Goal: "none over 3 s", Max: 3000},
		benchfig.Figure{Order: 13, Name: "Last /deploy help answered, after the first was sent", Value: answered.Seconds(), Unit: "s",
			Peer: float64(ackEnvelopes) / ackRate, PeerName: "sending time",
			Note: "the work behind the acks (recording each envelope, answering each command through its response_url) keeping up: the time from the first envelope sent to the last of the 1,000 commands answered, beside the 10 s it takes to send them"},
	); err != nil {
		b.Fatal(err)
	}
}

// sortIndex is the index of the first latency above d in sorted lat.
func sortIndex(lat []time.Duration, d time.Duration) int {
	i, _ := slices.BinarySearchFunc(lat, d, func(x, d time.Duration) int {
		if x <= d {
			return -1
		}
		return 1
	})
	return i
}

// ackBlast sends the envelopes at ackRate and returns the ack latency of
// each (an envelope never acked counts as a minute), the rate achieved,
// and when the last command was answered.
func ackBlast(b *testing.B, srv *slacktest.Server) ([]time.Duration, float64, time.Duration) {
	before := len(srv.AckLatencies())
	sent := make([]*slacktest.Envelope, 0, ackEnvelopes)
	start := time.Now()
	for i := range ackEnvelopes {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / ackRate)); d > 0 {
			time.Sleep(d)
		}
		if i%10 == 0 {
			sent = append(sent, srv.SlashCommand(carol, random, "/deploy", "help"))
		} else {
			sent = append(sent, srv.PostUserMessage(carol, random, "chatter "+strconv.Itoa(i), ""))
		}
	}
	rate := float64(len(sent)) / time.Since(start).Seconds()
	unacked := 0
	for _, e := range sent {
		if _, err := srv.WaitAck(e, 30*time.Second); err != nil {
			unacked++
		}
	}
	lat := srv.AckLatencies()[before:]
	if len(lat) != len(sent)-unacked {
		b.Fatalf("%d latencies for %d envelopes acked: something else was acked meanwhile", len(lat), len(sent)-unacked)
	}
	for range unacked {
		lat = append(lat, time.Minute)
	}
	// Every command is answered before the bot stops: the benchmark must
	// not end with the bot's work still queued behind the acks.
	var commands []*slacktest.Envelope
	for i := 0; i < len(sent); i += 10 {
		commands = append(commands, sent[i])
	}
	srv.WaitFor(b, 5*time.Minute, "every /deploy help answered", func() bool {
		for len(commands) > 0 && len(srv.Responses(commands[0])) > 0 {
			commands = commands[1:]
		}
		return len(commands) == 0
	})
	return lat, rate, time.Since(start)
}

// BenchmarkFullDeploy runs a whole ingestion-server deploy with every
// integration on its test server, people clicking as soon as a button
// appears (publish, the two plan approvals, the changelog review), from
// /deploy to the run's success. Its peer, from the same run, is
// scripts/bench-baseline.sh: the same terraform init, plan and apply of
// examples/infrastructure for dev, then prod, by hand. Sides alternate.
func BenchmarkFullDeploy(b *testing.B) {
	tf := testtool.Terraform(b)
	script, err := filepath.Abs("../../scripts/bench-baseline.sh")
	if err != nil {
		b.Fatal(err)
	}
	var ours, peer []float64
	for b.Loop() {
		ours, peer = nil, nil
		for range benchfig.Reps(2) {
			peer = append(peer, baselineDeploy(b, script, tf).Seconds())
			ours = append(ours, botDeploy(b).Seconds())
		}
	}
	bot, base := benchfig.Median(ours), benchfig.Median(peer)
	b.ReportMetric(bot, "s/deploy")
	b.ReportMetric(base, "s/script")
	if err := benchfig.Write("deploy",
		benchfig.Figure{Order: 30, Name: "Full deploy, dev then prod, auto-approved", Value: bot, Unit: "s",
			Peer: base, PeerName: "scripts/bench-baseline.sh", Goal: "≤ 1.10×", MaxRatio: 1.10,
			Note: fmt.Sprintf("from /deploy to the run's success with GitHub, Airflow and Sentry on their test servers (Sentry watch 100 ms, build finishing 300 ms after publishing) and real Terraform; against the same terraform init, plan and apply per environment in a shell script; medians of %d run(s) of each, alternated", len(ours))},
	); err != nil {
		b.Fatal(err)
	}
}

func baselineDeploy(b *testing.B, script, tf string) time.Duration {
	b.Helper()
	cmd := exec.Command(script, tf, "../../examples/infrastructure", b.TempDir(), tag)
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("%s: %v\n%s", script, err, out)
	}
	return time.Since(start)
}

func botDeploy(b *testing.B) time.Duration {
	b.Helper()
	w := newWorld(b, all)
	w.watch = "100ms"
	w.writeConfig(all)
	w.start()
	defer w.stop()
	start := time.Now()
	ts := w.deploy()
	w.step(ts, "Publish the release", "publish", alice)
	w.step(ts, "Staging (dev): verify the plan", "approve", alice)
	w.step(ts, "Production (prod): verify the plan", "approve", bob)
	w.step(ts, "Approve the changelog PR", "approve", bob)
	w.waitText(ts, "*State* :tada: succeeded")
	d := time.Since(start)
	w.assertNoRejections()
	// Where the time went, for whoever reads the benchmark's log.
	if r, err := w.store().Run(b.Context(), "run-1"); err == nil {
		var parts []string
		for _, st := range r.Steps {
			parts = append(parts, fmt.Sprintf("%s %v→%v", st.ID, st.StartedAt.Sub(start).Round(time.Millisecond), st.EndedAt.Sub(start).Round(time.Millisecond)))
		}
		b.Logf("deploy in %v: %s", d, strings.Join(parts, "; "))
	}
	return d
}

// BenchmarkMemory starts the real binary (go build) with a Slack bot
// config against the Slack test server and reads its resident set from
// /proc/<pid>/status once it is connected and idle, then again with 50
// runs open (50 services, each run waiting on its first step).
func BenchmarkMemory(b *testing.B) {
	bin := buildBot(b)
	var idle, open, peak float64
	for b.Loop() {
		h := newHarness(b)
		var svc strings.Builder
		svc.WriteString("services:\n")
		for i := range 50 {
			fmt.Fprintf(&svc, `  svc-%02d:
    release_tag_prefix: svc_%02d-
    image_tag_prefix: rel-
    environments:
      - {name: dev, dir: environments/dev, file: environments/dev/svc.tf, module: svc, version_attribute: image_tag}
`, i, i)
		}
		cfg := fmt.Sprintf(baseConfig, h.srv.APIURL()) + svc.String()
		if err := os.WriteFile(h.cfgPath, []byte(cfg), 0o600); err != nil {
			b.Fatal(err)
		}
		p := h.process(bin)
		idle = settledRSS(b, p.Process.Pid)
		for i := range 50 {
			want := fmt.Sprintf("Started run-%d", i+1)
			if r := h.reply(h.command(alice, deploys, "/deploy", fmt.Sprintf("svc-%02d %s", i, tag))); !strings.Contains(r, want) {
				b.Fatalf("/deploy svc-%02d answered %q, want %q", i, r, want)
			}
		}
		h.srv.WaitFor(b, wait, "50 runs waiting on their first step", func() bool {
			n := 0
			for _, m := range h.srv.Messages(deploys) {
				if _, _, ok := h.button(m.TS, "done"); ok {
					n++
				}
			}
			return n == 50
		})
		open = settledRSS(b, p.Process.Pid)
		peak = procStatusMB(b, p.Process.Pid, "VmHWM")
		// Fifty run messages in one channel meet Slack's per-channel
		// limit on chat.postMessage; the bot waits and retries. Anything
		// else Slack refused is a bug.
		for _, r := range h.srv.Rejected() {
			if r.Error != "ratelimited" {
				b.Errorf("Slack rejected %s: %s (%s)", r.Method, r.Error, r.Detail)
			}
		}
	}
	b.ReportMetric(idle, "MB-idle")
	b.ReportMetric(open, "MB-50-runs")
	if err := benchfig.Write("memory",
		benchfig.Figure{Order: 40, Name: "Memory: idle RSS after start", Value: idle, Unit: "MB", Goal: "< 40 MB", Max: 40,
			Note: "VmRSS of the real binary (go build), connected to the Slack test server over Socket Mode with a bot config, the largest of 2 s of samples"},
		benchfig.Figure{Order: 41, Name: "Memory: RSS with 50 open runs", Value: open, Unit: "MB", Peer: idle, PeerName: "idle"},
		benchfig.Figure{Order: 42, Name: "Memory: peak RSS (VmHWM) by then", Value: peak, Unit: "MB"},
	); err != nil {
		b.Fatal(err)
	}
}

// settledRSS samples VmRSS for two seconds and returns the largest sample:
// a reading right after an event would miss the allocations still to come.
func settledRSS(b *testing.B, pid int) float64 {
	b.Helper()
	var most float64
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		most = max(most, procStatusMB(b, pid, "VmRSS"))
	}
	return most
}

// procStatusMB reads a "kB" field of /proc/<pid>/status in MB.
func procStatusMB(b *testing.B, pid int, field string) float64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatalf("%s: %q", field, v)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
