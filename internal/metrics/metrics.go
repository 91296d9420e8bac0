// Package metrics holds deploybot's Prometheus collectors, on a registry of
// their own (so that tests can run several bots in one process), and the
// adapters that feed them: a steps.Observer, a bot.SocketObserver, an HTTP
// transport that counts calls to outside systems, and a Terraform hook.
//
// Labels never carry run ids, versions or tags: a label's values stay few
// (services, step ids, API path templates, outcomes), whatever happens.
package metrics

import (
	"math"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/deploybot/deploybot/steps"
)

// Metrics are deploybot's collectors.
type Metrics struct {
	Registry *prometheus.Registry

	AckLatency      prometheus.Histogram
	SlackReconnects prometheus.Counter
	RunsStarted     *prometheus.CounterVec // service, kind
	RunsFinished    *prometheus.CounterVec // service, kind, outcome
	StepDuration    *prometheus.HistogramVec
	ApprovalWait    prometheus.Histogram
	Calls           *prometheus.CounterVec // system, method, result
}

// New makes the collectors and registers them, with the Go runtime's and
// the process's, on a new registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		AckLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "deploybot_socket_ack_seconds",
			Help: "Time from a Socket Mode envelope reaching deploybot's dispatcher to its ack being handed to the connection's writer.",
			// Slack redelivers after 3 s; the interesting part is far below.
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 3},
		}),
		SlackReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "deploybot_slack_reconnects_total",
			Help: "Socket Mode connections made after the first.",
		}),
		RunsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deploybot_runs_started_total",
			Help: "Runs started, by service and kind (deploy, rollback, incident).",
		}, []string{"service", "kind"}),
		RunsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deploybot_runs_finished_total",
			Help: "Runs ended, by service, kind and outcome (succeeded, failed, cancelled).",
		}, []string{"service", "kind", "outcome"}),
		StepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "deploybot_step_duration_seconds",
			Help: "Time from a step's start to its end (done, failed or skipped), people's answers included, by step id and result.",
			// From a file edit (milliseconds) to a Sentry watch (15 minutes) or a slow approval.
			Buckets: []float64{.01, .1, .5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200},
		}, []string{"step", "result"}),
		ApprovalWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "deploybot_approval_wait_seconds",
			Help:    "How long an approval (publish, approve, confirm) waited before it was answered or its run ended.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800},
		}),
		Calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deploybot_calls_total",
			Help: "Calls to outside systems (slack, github, airflow, sentry, terraform), by API method or path template (terraform: subcommand) and result (an HTTP status, a Slack error code, ok, or error when no answer came).",
		}, []string{"system", "method", "result"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.AckLatency, m.SlackReconnects, m.RunsStarted, m.RunsFinished, m.StepDuration, m.ApprovalWait, m.Calls,
	)
	return m
}

// Handler serves the registry in the Prometheus text (or OpenMetrics) format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Waiting registers the gauges read from the steps waiting on people at
// scrape time: approvals waiting, and how long the oldest has waited.
func (m *Metrics) Waiting(waiting func() []steps.Waiter) {
	approvals := func() []steps.Waiter {
		var out []steps.Waiter
		for _, w := range waiting() {
			if w.Approval {
				out = append(out, w)
			}
		}
		return out
	}
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "deploybot_approvals_waiting",
			Help: "Approvals (publish, approve, confirm) open runs wait for now.",
		}, func() float64 { return float64(len(approvals())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "deploybot_approval_oldest_wait_seconds",
			Help: "How long the oldest approval waiting now has waited (0 when none waits).",
		}, func() float64 {
			oldest := 0.0
			for _, w := range approvals() {
				oldest = math.Max(oldest, time.Since(w.Since).Seconds())
			}
			return oldest
		}),
	)
}

// OutboxDepth registers the gauge of messages owed to Slack, read at scrape
// time; NaN when the store does not answer.
func (m *Metrics) OutboxDepth(depth func() (int, error)) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "deploybot_outbox_pending",
		Help: "Outbox entries (messages, edits, files) committed but not yet delivered to Slack.",
	}, func() float64 {
		n, err := depth()
		if err != nil {
			return math.NaN()
		}
		return float64(n)
	}))
}

// Gauge registers a gauge read at scrape time.
func (m *Metrics) Gauge(name, help string, f func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Runs is the steps.Observer feeding the run, step and approval metrics.
func (m *Metrics) Runs() steps.Observer { return runs{m} }

type runs struct{ m *Metrics }

func (o runs) RunStarted(r *steps.Run) {
	o.m.RunsStarted.WithLabelValues(r.Service, string(r.Kind)).Inc()
}

func (o runs) RunEnded(r *steps.Run) {
	o.m.RunsFinished.WithLabelValues(r.Service, string(r.Kind), string(r.State)).Inc()
}

func (o runs) StepEnded(_ *steps.Run, st *steps.StepState, took time.Duration) {
	o.m.StepDuration.WithLabelValues(st.ID, string(st.Status)).Observe(took.Seconds())
}

func (o runs) Answered(_ *steps.Run, _ *steps.StepState, waited time.Duration) {
	o.m.ApprovalWait.Observe(waited.Seconds())
}

// Socket is the bot.SocketObserver feeding the ack and reconnect metrics.
func (m *Metrics) Socket() Socket { return Socket{m} }

// Socket implements bot.SocketObserver.
type Socket struct{ m *Metrics }

func (s Socket) Acked(d time.Duration) { s.m.AckLatency.Observe(d.Seconds()) }
func (s Socket) Reconnected()          { s.m.SlackReconnects.Inc() }

// Terraform counts a Terraform command (init, plan, apply, show, …) and
// whether it succeeded.
func (m *Metrics) Terraform(command string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.Calls.WithLabelValues("terraform", command, result).Inc()
}
