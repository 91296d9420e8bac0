package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// get fetches a path of the bot's HTTP server.
func (h *harness) get(path string) (int, string) {
	h.t.Helper()
	c := &http.Client{Timeout: wait}
	resp, err := c.Get("http://" + h.m.HTTPAddr() + path)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReady waits for /readyz to answer 200: the Socket Mode hello may
// arrive a moment after the connection the harness waits for.
func (h *harness) waitReady() {
	h.t.Helper()
	h.srv.WaitFor(h.t, wait, "/readyz to answer 200", func() bool {
		code, _ := h.get("/readyz")
		return code == http.StatusOK
	})
}

// scrape reads /metrics as series → value, a series written as Prometheus
// writes it: name{label="value",…}.
func (h *harness) scrape() map[string]float64 {
	h.t.Helper()
	code, body := h.get("/metrics")
	if code != http.StatusOK {
		h.t.Fatalf("/metrics answered %d: %s", code, body)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			h.t.Fatalf("unreadable metrics line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// sum adds the series of a metric whose labels include every want.
func sum(series map[string]float64, name string, want ...string) (float64, int) {
	total, n := 0.0, 0
	for s, v := range series {
		if s != name && !strings.HasPrefix(s, name+"{") {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(s, w)
		}
		if ok {
			total += v
			n++
		}
	}
	return total, n
}

// A whole automated deploy, then a scrape: /metrics carries every series an
// operator watches, with the values this run gave them; and every log entry
// about the run names the run, its service and its step.
func TestMetricsAndRunLogsAfterAFullyAutomatedRun(t *testing.T) {
	w := newWorld(t, all)
	logs, seen := observer.New(zapcore.DebugLevel)
	startCustomized(w.harness, func(m *Main) { m.LogTee = logs })

	ts := w.deploy()
	w.waitText(ts, "*Version* `"+tag+"`")
	// While the release waits for an approver, the approval is counted.
	w.waitButton(ts, "Publish the release", "publish")
	if v, _ := sum(w.scrape(), "deploybot_approvals_waiting"); v != 1 {
		t.Errorf("approvals waiting while Publish waits = %v, want 1", v)
	}
	w.step(ts, "Publish the release", "publish", alice)
	w.step(ts, "Staging (dev): verify the plan", "approve", alice)
	w.step(ts, "Production (prod): verify the plan", "approve", bob)
	w.waitThread("Sentry watch over: no new issues")
	w.step(ts, "Approve the changelog PR", "approve", bob)
	w.waitText(ts, "*State* :tada: succeeded")

	// A dropped connection is a reconnect.
	opened := w.srv.ConnectionsOpened()
	w.srv.DropConnections()
	w.srv.WaitFor(t, wait, "the bot to reconnect", func() bool { return w.srv.ConnectionsOpened() > opened && w.srv.Connections() > 0 })

	var m map[string]float64
	w.srv.WaitFor(t, wait, "the run's end and the reconnect in /metrics", func() bool {
		m = w.scrape()
		fin, _ := sum(m, "deploybot_runs_finished_total")
		rec, _ := sum(m, "deploybot_slack_reconnects_total")
		out, _ := sum(m, "deploybot_outbox_pending")
		return fin == 1 && rec >= 1 && out == 0
	})
	check := func(what string, got float64, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("%s = %v", what, got)
		}
	}
	v, _ := sum(m, "deploybot_runs_started_total", `service="ingestion-server"`, `kind="deploy"`)
	check("runs started", v, v == 1)
	v, _ = sum(m, "deploybot_runs_finished_total", `service="ingestion-server"`, `outcome="succeeded"`)
	check(`runs finished{outcome="succeeded"}`, v, v == 1)
	v, _ = sum(m, "deploybot_socket_ack_seconds_count")
	check("acks observed", v, v >= 5) // the command and four clicks
	v, _ = sum(m, "deploybot_socket_ack_seconds_bucket", `le="3"`)
	all, _ := sum(m, "deploybot_socket_ack_seconds_count")
	check("acks under 3 s", v, v == all)
	// Every step of the runbook ended once, done, with its duration.
	for _, step := range []string{"airflow", "release", "plan:dev", "apply:prod", "sentry", "changelog", "infra-pr"} {
		v, n := sum(m, "deploybot_step_duration_seconds_count", `step="`+step, `result="done"`)
		check("step duration count of "+step, v, n > 0 && v >= 1)
	}
	v, _ = sum(m, "deploybot_approval_wait_seconds_count")
	check("approvals answered", v, v == 4) // publish, dev plan, prod plan, changelog
	v, n := sum(m, "deploybot_approvals_waiting")
	check("approvals waiting after the run", v, n == 1 && v == 0)
	v, n = sum(m, "deploybot_approval_oldest_wait_seconds")
	check("oldest approval wait after the run", v, n == 1 && v == 0)
	v, n = sum(m, "deploybot_outbox_pending")
	check("outbox depth", v, n == 1 && v == 0)
	for _, c := range []struct{ system, method, result string }{
		{"slack", "chat.postMessage", "ok"},
		{"slack", "chat.update", "ok"},
		{"slack", "apps.connections.open", "ok"},
		{"github", "POST /repos/{owner}/{repo}/pulls/{id}/reviews", "200"},
		{"github", "PATCH /repos/{owner}/{repo}/releases/{id}", "200"},
		{"airflow", "GET /api/v1/dags/{dag_id}/dagRuns", "200"},
		{"sentry", "POST /api/0/organizations/{org}/releases/{name}/deploys", "201"},
		{"terraform", "init", "ok"},
		{"terraform", "plan", "ok"},
		{"terraform", "show", "ok"},
		{"terraform", "apply", "ok"},
	} {
		v, _ := sum(m, "deploybot_calls_total", `system="`+c.system+`"`, `method="`+c.method+`"`, `result="`+c.result+`"`)
		check(fmt.Sprintf("calls{%s %s %s}", c.system, c.method, c.result), v, v >= 1)
	}
	// No label carries a run id, a tag or a version.
	for s := range m {
		if strings.Contains(s, "run-1") || strings.Contains(s, "2024.09.09") {
			t.Errorf("a label value is unbounded: %s", s)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, n := sum(m, name); n == 0 {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	// The log: every entry that is about the run says which run, service
	// and step.
	runRe := regexp.MustCompile(`\brun-\d+\b`)
	var about, terraform, steps int
	for _, e := range seen.All() {
		fields := e.ContextMap()
		// Terraform's output is always about a run, whatever it says.
		mentions := runRe.MatchString(e.Message) || e.LoggerName == "terraform"
		for _, v := range fields {
			if s, ok := v.(string); ok && runRe.MatchString(s) {
				mentions = true
			}
		}
		if !mentions {
			continue
		}
		about++
		if e.LoggerName == "terraform" {
			terraform++
		}
		if e.Message == "step started" {
			steps++
		}
		if fields["run_id"] != "run-1" || fields["service"] != "ingestion-server" {
			t.Errorf("log entry %q lacks the run or service: %v", e.Message, fields)
		}
		if _, ok := fields["step"]; !ok {
			t.Errorf("log entry %q lacks the step: %v", e.Message, fields)
		}
		if e.LoggerName == "terraform" && fields["step"] == "" {
			t.Errorf("terraform output %q does not name its step", e.Message)
		}
	}
	if terraform == 0 || steps < 15 {
		t.Errorf("the log has %d entries about the run, %d of Terraform output, %d step starts: the capture missed them", about, terraform, steps)
	}
}

// /healthz answers while the process lives; /readyz only while Slack is
// connected and the store answers, and says what is wrong otherwise.
func TestReadyzFollowsSlackAndTheStore(t *testing.T) {
	h := newHarness(t)
	h.start()
	if code, body := h.get("/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("/healthz = %d %q", code, body)
	}
	h.waitReady()

	// Slack gone: every reconnect is refused.
	h.srv.FailNext("apps.connections.open", 1000, http.StatusServiceUnavailable)
	h.srv.DropConnections()
	h.srv.WaitFor(t, wait, "/readyz to say Slack is gone", func() bool {
		code, body := h.get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "not connected to Slack")
	})
	if code, _ := h.get("/healthz"); code != 200 {
		t.Errorf("/healthz while Slack is gone = %d", code)
	}
	if v, _ := sum(h.scrape(), "deploybot_slack_connected"); v != 0 {
		t.Errorf("deploybot_slack_connected = %v while disconnected", v)
	}
	h.stop()
}

func TestReadyzFailsWhenTheStoreDoesNotAnswer(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.waitReady()
	if err := h.m.Store.Close(); err != nil {
		t.Fatal(err)
	}
	code, body := h.get("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "the store does not answer") {
		t.Errorf("/readyz with the store closed = %d %q", code, body)
	}
	if code, _ := h.get("/healthz"); code != 200 {
		t.Errorf("/healthz with the store closed = %d", code)
	}
}

// The image sets DEPLOYBOT_HTTP_ADDR=0.0.0.0:9090 and its HEALTHCHECK runs
// `deploybot healthcheck`, which asks /readyz over the loopback.
func TestHealthcheckSubcommandAsTheImageRunsIt(t *testing.T) {
	h := newHarness(t)
	h.env["DEPLOYBOT_HTTP_ADDR"] = "0.0.0.0:0"
	h.start()
	_, port, err := net.SplitHostPort(h.m.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	if h.m.Config.HTTPAddr != "0.0.0.0:0" {
		t.Errorf("http_addr = %q, want the environment's 0.0.0.0:0", h.m.Config.HTTPAddr)
	}
	healthcheck := func() (string, error) {
		var out bytes.Buffer
		m := NewMain()
		m.Stdout, m.Stderr = &out, &out
		m.Getenv = func(k string) string {
			if k == "DEPLOYBOT_HTTP_ADDR" {
				return "0.0.0.0:" + port
			}
			return h.env[k]
		}
		if err := m.ParseArgs([]string{"healthcheck", "--config", h.cfgPath}); err != nil {
			t.Fatal(err)
		}
		err := m.Run(t.Context())
		return out.String(), err
	}
	h.waitReady()
	if out, err := healthcheck(); err != nil || !strings.Contains(out, "ready") {
		t.Errorf("healthcheck of a ready bot: %v %q", err, out)
	}
	h.srv.FailNext("apps.connections.open", 1000, http.StatusServiceUnavailable)
	h.srv.DropConnections()
	h.srv.WaitFor(t, wait, "healthcheck to fail while Slack is gone", func() bool {
		_, err := healthcheck()
		return err != nil && strings.Contains(err.Error(), "503") && strings.Contains(err.Error(), "not connected to Slack")
	})
	h.stop()
	if _, err := healthcheck(); err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Errorf("healthcheck of a stopped bot: %v", err)
	}
}
