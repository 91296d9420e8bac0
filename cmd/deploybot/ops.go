package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/deploybot/deploybot/internal/metrics"
	"github.com/deploybot/deploybot/internal/redact"
	"github.com/deploybot/deploybot/steps"
)

// What an operator sees of the running bot: /healthz, /readyz, /metrics,
// and the hooks that feed the metrics.

// metrics returns the program's collectors, made on first use.
func (m *Main) metrics() *metrics.Metrics {
	if m.Metrics == nil {
		m.Metrics = metrics.New()
	}
	return m.Metrics
}

// counted wraps the transport of calls to an outside system so each is
// counted by method and result. A nil next is http.DefaultTransport.
func (m *Main) counted(system string, next http.RoundTripper) http.RoundTripper {
	return m.metrics().Transport(system, next)
}

// slackHTTP is the client for Slack's Web API: bot.HTTPClient's timeout,
// with every call counted.
func (m *Main) slackHTTP(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: m.counted("slack", nil)}
}

// terraformLog is where Terraform's output goes: debug entries naming the
// run and step the command works for.
func (m *Main) terraformLog(ctx context.Context) io.Writer {
	log := m.Log.Named("terraform")
	if w, ok := steps.WhereOf(ctx); ok {
		log = log.With(zap.String("run_id", w.RunID), zap.String("service", w.Service), zap.String("step", w.Step))
	}
	return zapWriter{log}
}

// readiness says why the bot cannot take work now, "" when it can: Slack
// must be connected and the store must answer a query.
func (m *Main) readiness(ctx context.Context) string {
	if m.ready == nil || !m.ready() {
		return "not connected to Slack"
	}
	if m.Store == nil {
		return "no store"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := m.Store.Ping(ctx); err != nil {
		return "the store does not answer: " + redact.ScrubString(err.Error())
	}
	return ""
}

func (m *Main) serveHTTP() error {
	addr := m.Config.HTTPAddr
	if addr == "" || addr == "off" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("http_addr %s: %w", addr, err)
	}
	m.httpAddr = ln.Addr().String()

	mx := m.metrics()
	mx.Waiting(m.Engine.Waiting)
	mx.Gauge("deploybot_open_runs", "Runs not yet ended.", func() float64 { return float64(len(m.Engine.OpenRuns())) })
	mx.Gauge("deploybot_slack_connected", "1 while a Socket Mode connection is up.", func() float64 {
		if m.ready != nil && m.ready() {
			return 1
		}
		return 0
	})
	mx.OutboxDepth(func() (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return m.Store.OutboxDepth(ctx)
	})

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if why := m.readiness(r.Context()); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/metrics", mx.Handler())
	m.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = m.http.Serve(ln) }()
	return nil
}

// healthcheck asks the running bot's /readyz, on the loopback when it
// listens on every interface: the image's HEALTHCHECK, with no curl needed.
func (m *Main) healthcheck(ctx context.Context) error {
	addr := m.Config.HTTPAddr
	if addr == "" || addr == "off" {
		return errors.New("http_addr is off, so there is nothing to ask; set http_addr (or DEPLOYBOT_HTTP_ADDR) to check the bot's health")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("http_addr %s: %w", addr, err)
	}
	if port == "0" {
		return fmt.Errorf("http_addr %s picks a free port at random, so there is no known address to ask; set a fixed port (or DEPLOYBOT_HTTP_ADDR) to check the bot's health", addr)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	url := "http://" + net.JoinHostPort(host, port) + "/readyz"
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("deploybot does not answer on %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	text := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d: %s", url, resp.StatusCode, text)
	}
	fmt.Fprintln(m.Stdout, text)
	return nil
}
