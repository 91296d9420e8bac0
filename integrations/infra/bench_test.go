package infra

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/slacktest"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/integrations/terraform"
	"github.com/deploybot/deploybot/internal/benchfig"
	"github.com/deploybot/deploybot/internal/testtool"
	"github.com/deploybot/deploybot/steps"
)

// planChanges is the size of the plan BenchmarkPlanToSlack posts: far
// beyond any real deploy, so that the cost of each step shows.
const planChanges = 10_000

// envPlanChild tells a re-executed test binary to be one measured "plan to
// Slack" (TestPlanToSlackChild): each side runs in its own process so that
// its peak RSS (getrusage's maxrss, which never goes down) is its own.
const envPlanChild = "DEPLOYBOT_BENCH_PLAN_CHILD"

type planChildArgs struct {
	Bin, Dir, Plan, Workdir, SlackURL, BotToken, Channel string
}

type planChildResult struct {
	Wall        time.Duration
	SelfRSSKB   int64 // deploybot's own peak
	ChildRSSKB  int64 // peak of the terraform it ran
	FileBytes   int
	MessageSize int
	// Phases times the parts of Wall, for reading the benchmark's log.
	Phases map[string]time.Duration
}

// BenchmarkPlanToSlack measures a 10,000-change saved plan going to Slack:
// `terraform show -json` (once), the summary, the message and the uploaded
// file posted to the Slack test server. Its peer, from the same run, is
// `terraform show -json` of the same plan alone with its output discarded.
// Sides alternate, each in a fresh process; medians are reported.
func BenchmarkPlanToSlack(b *testing.B) {
	bin := testtool.Terraform(b)
	dir := b.TempDir()
	main := fmt.Sprintf(`resource "terraform_data" "r" {
  count = %d
  input = {
    image = "ghcr.io/wordpress/openverse-ingestion_server:rel-2024.09.09.05.40.20"
    index = count.index
  }
}
`, planChanges)
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(main), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	r := &terraform.Runner{Bin: bin, Dir: dir}
	plan := filepath.Join(dir, "big.tfplan")
	if err := r.Init(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := r.Plan(ctx, plan, ""); err != nil {
		b.Fatal(err)
	}

	srv := slacktest.NewServer(slacktest.Options{})
	b.Cleanup(srv.Close)
	srv.AddChannel("C0DEPLOYS", "deploys")
	args := planChildArgs{Bin: bin, Dir: dir, Plan: plan, Workdir: dir, SlackURL: srv.APIURL(), BotToken: srv.BotToken(), Channel: "C0DEPLOYS"}

	var ours, peer []planChildResult
	b.ResetTimer()
	for b.Loop() {
		ours, peer = nil, nil
		for range benchfig.Reps(3) {
			peer = append(peer, showAlone(b, args))
			ours = append(ours, planChild(b, args))
		}
	}
	b.StopTimer()
	for i := range ours {
		b.Logf("run %d: show -json alone %v; plan to Slack %v %v", i, peer[i].Wall, ours[i].Wall, ours[i].Phases)
	}
	if n := len(srv.Files()); n != len(ours) || len(srv.Rejected()) > 0 {
		b.Fatalf("Slack has %d files for %d posts; rejected: %+v", n, len(ours), srv.Rejected())
	}
	if got := srv.Files()[0]; !strings.Contains(string(got.Content), fmt.Sprintf("terraform_data.r[%d] (create)", planChanges-1)) {
		b.Fatalf("the uploaded file lacks the last change (%d bytes)", len(got.Content))
	}

	med := func(rs []planChildResult, f func(planChildResult) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		return benchfig.Median(xs)
	}
	wall := func(r planChildResult) float64 { return r.Wall.Seconds() }
	both := func(r planChildResult) float64 { return float64(r.SelfRSSKB+r.ChildRSSKB) / 1024 }
	self := func(r planChildResult) float64 { return float64(r.SelfRSSKB) / 1024 }
	tf := func(r planChildResult) float64 { return float64(r.ChildRSSKB) / 1024 }
	b.ReportMetric(med(ours, wall), "s/plan-to-slack")
	b.ReportMetric(med(peer, wall), "s/show-json-alone")
	b.ReportMetric(med(ours, both), "MB-peak-rss")
	b.ReportMetric(med(peer, tf), "MB-peak-rss-show-alone")
	note := fmt.Sprintf("a saved plan of 10,000 resource changes: `terraform show -json` once, summary, message and a %d KB file posted to the Slack test server; medians of %d run(s) of each side, alternated, each in a fresh process", ours[0].FileBytes/1024, len(ours))
	err := benchfig.Write("plan-to-slack",
		benchfig.Figure{Order: 20, Name: "Plan to Slack (10,000 changes): wall time", Value: med(ours, wall), Unit: "s",
			Peer: med(peer, wall), PeerName: "`terraform show -json` alone", Goal: "≤ 1.05×", MaxRatio: 1.05, Note: note},
		benchfig.Figure{Order: 21, Name: "Plan to Slack (10,000 changes): peak RSS, deploybot + its terraform", Value: med(ours, both), Unit: "MB",
			Peer: med(peer, tf), PeerName: "`terraform show -json` alone", Goal: "≤ 1.05×", MaxRatio: 1.05,
			Note: "the peak RSS (getrusage maxrss) of deploybot's process plus that of the terraform it ran: an upper bound of the two together, as both are alive while the JSON streams from one to the other"},
		benchfig.Figure{Order: 22, Name: "Plan to Slack (10,000 changes): peak RSS, deploybot alone", Value: med(ours, self), Unit: "MB"},
	)
	if err != nil {
		b.Fatal(err)
	}
}

// showAlone runs `terraform show -json` on the plan, output discarded, and
// reads its peak RSS from wait4's rusage.
func showAlone(b *testing.B, a planChildArgs) planChildResult {
	b.Helper()
	cmd := exec.Command(a.Bin, "show", "-json", a.Plan)
	cmd.Dir = a.Dir
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1")
	cmd.Stdout = io.Discard
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("terraform show -json: %v\n%s", err, stderr.String())
	}
	return planChildResult{Wall: time.Since(start), ChildRSSKB: cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss}
}

// planChild re-executes this test binary as TestPlanToSlackChild.
func planChild(b *testing.B, a planChildArgs) planChildResult {
	b.Helper()
	js, _ := json.Marshal(a)
	cmd := exec.Command(os.Args[0], "-test.run=^TestPlanToSlackChild$", "-test.count=1", "-test.bench=^$")
	cmd.Env = append(os.Environ(), envPlanChild+"="+string(js))
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("plan-to-Slack child: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "PLANRESULT "); ok {
			var r planChildResult
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				b.Fatal(err)
			}
			return r
		}
	}
	b.Fatalf("plan-to-Slack child printed no result:\n%s", out)
	return planChildResult{}
}

// TestPlanToSlackChild is one side of BenchmarkPlanToSlack, run only in a
// process the benchmark starts: what the plan step does between a saved
// plan and Slack, timed from the plan file to the uploaded file.
func TestPlanToSlackChild(t *testing.T) {
	raw := os.Getenv(envPlanChild)
	if raw == "" {
		return // not started by the benchmark
	}
	var a planChildArgs
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	chat := bot.NewSlackChat(slack.New(a.BotToken, slack.OptionAPIURL(a.SlackURL)), zap.NewNop())
	in := New(&config.Infra{Workdir: a.Workdir}, nil)
	r := &terraform.Runner{Bin: a.Bin, Dir: a.Dir}

	start := time.Now()
	phases := map[string]time.Duration{}
	last := start
	lap := func(name string) {
		now := time.Now()
		phases[name], last = now.Sub(last), now
	}
	sum, err := terraform.FileSHA256(a.Plan)
	if err != nil {
		t.Fatal(err)
	}
	const planChars = 2900 // what the plan step allows the diff in one section
	p := &steps.Plan{}
	sensitive, err := in.describe(ctx, r, a.Plan, sum, planChars, p)
	if err != nil {
		t.Fatal(err)
	}
	lap("show+decode+render")
	m := in.masker(sensitive...)
	p.Summary, p.Rendered, p.Full = m.String(p.Summary), m.String(p.Rendered), m.String(p.Full)
	text := fmt.Sprintf("*Plan for bench* (plan `%s`)\n```\n%s\n```", sum[:12], steps.Escape(p.Rendered))
	if len(text) > 3000 {
		text = strings.ToValidUTF8(text[:3000], "")
	}
	lap("mask")
	ts, err := chat.Post(ctx, a.Channel, "", bot.View{Text: text, Blocks: []bot.Block{{Kind: bot.Section, Text: text}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := chat.Upload(ctx, a.Channel, ts, "plan-bench.txt", "Full plan ("+p.Summary+")", []byte(p.Full)); err != nil {
		t.Fatal(err)
	}
	lap("post+upload")
	wall := time.Since(start)

	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	res, _ := json.Marshal(planChildResult{Wall: wall, SelfRSSKB: self.Maxrss, ChildRSSKB: kids.Maxrss, FileBytes: len(p.Full), MessageSize: len(text), Phases: phases})
	fmt.Printf("PLANRESULT %s\n", res)
}
