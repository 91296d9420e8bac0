package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/integrations/airflow"
	"github.com/deploybot/deploybot/integrations/github"
	"github.com/deploybot/deploybot/integrations/infra"
	sentryweb "github.com/deploybot/deploybot/integrations/sentry"
	"github.com/deploybot/deploybot/internal/metrics"
	"github.com/deploybot/deploybot/internal/redact"
	"github.com/deploybot/deploybot/internal/sentrylog"
	"github.com/deploybot/deploybot/steps"
)

// Main is the program, as a value: end-to-end tests start the real bot
// in-process through it.
type Main struct {
	Mode       string // "bot", "console", "demo", "check-config", "healthcheck", "migrate" or "export"
	ConfigPath string
	As         string // console: the Slack user id to act as
	ExportTo   string // export: the PostgreSQL URL to copy the SQLite state into
	Online     bool   // check-config: also try each token and URL (online.go)

	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string

	// SocketOptions are passed to the Socket Mode client (tests shorten the
	// ping interval).
	SocketOptions []socketmode.Option

	Config *config.Config
	Log    *zap.Logger
	Store  Store
	Engine *steps.Engine
	Bot    *bot.Bot
	Socket *bot.Socket
	// Metrics are served on /metrics (ops.go); made by Run when nil.
	Metrics *metrics.Metrics
	// LogTee, when set, also receives every log entry at its own level
	// (tests observe the log).
	LogTee zapcore.Core

	// SentryTransport replaces the Sentry transport (tests use a
	// sentry.MockTransport to see what would be reported).
	SentryTransport sentry.Transport

	// Customize, when set, is called with the runbooks once every
	// integration has registered its steps, before any run is built or
	// resumed. BeforeHandle, when set, becomes the Socket Mode adapter's
	// bot.Socket.BeforeHandle. Both are nil in the real program: they exist
	// so end-to-end tests can make a step or a handler panic and watch the
	// whole program survive it.
	Customize    func(rb *steps.Runbooks)
	BeforeHandle func(kind string)

	demo     demoState // deploybot demo (demo.go)
	infra    *infra.Infra
	http     *http.Server
	httpAddr string
	sentry   bool
	ready    func() bool
}

// NewMain returns a Main reading the process environment.
func NewMain() *Main {
	return &Main{Mode: "bot", Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

const usage = `usage:
  deploybot [--config FILE]                       run the Slack Socket Mode bot
  deploybot console --config FILE --as USER_ID    run the bot in this terminal
  deploybot demo [--auto] [--scenario happy|failed-apply] [--dir DIR]
                                                  the whole runbook against built-in test servers:
                                                  no account, no network (--auto clicks by itself)
  deploybot check-config --config FILE [--online] validate the configuration (--online: and try each token and URL) and exit
  deploybot healthcheck --config FILE             exit 0 when the running bot's /readyz answers 200 (the image's HEALTHCHECK)
  deploybot migrate --config FILE                 apply the store's migrations and exit
  deploybot export --config FILE --to postgres://USER@HOST/DB
                                                  copy the SQLite state (state_path) into an empty PostgreSQL database
The config file may also be named by $DEPLOYBOT_CONFIG.`

// ParseArgs reads the subcommand and flags.
func (m *Main) ParseArgs(args []string) error {
	if len(args) > 0 && args[0] == "demo" {
		m.Mode = "demo"
		return m.parseDemoArgs(args[1:])
	}
	if len(args) > 0 && (args[0] == "console" || args[0] == "check-config" || args[0] == "healthcheck" || args[0] == "migrate" || args[0] == "export") {
		m.Mode, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("deploybot", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&m.ConfigPath, "config", "", "configuration file")
	fs.StringVar(&m.As, "as", "", "console: the Slack user id to act as")
	fs.StringVar(&m.ExportTo, "to", "", "export: the PostgreSQL URL to copy into")
	fs.BoolVar(&m.Online, "online", false, "check-config: also check each token and URL")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return m.askedForHelp()
		}
		return fmt.Errorf("%v\n%s", err, usage)
	}
	if fs.NArg() > 0 {
		if m.Mode == "bot" && fs.NArg() == 1 && fs.Arg(0) == "help" {
			return m.askedForHelp()
		}
		return fmt.Errorf("unexpected argument %q\n%s", fs.Arg(0), usage)
	}
	if m.ConfigPath == "" {
		m.ConfigPath = m.Getenv("DEPLOYBOT_CONFIG")
	}
	if m.ConfigPath == "" {
		return fmt.Errorf("no configuration: pass --config FILE or set DEPLOYBOT_CONFIG\n%s", usage)
	}
	if m.ExportTo != "" && m.Mode != "export" {
		return fmt.Errorf("--to is for export only\n%s", usage)
	}
	if m.Online && m.Mode != "check-config" {
		return fmt.Errorf("--online goes with check-config: deploybot check-config --config FILE --online\n%s", usage)
	}
	if m.Mode == "console" && m.As == "" {
		return fmt.Errorf("the console needs --as USER_ID: the Slack user id you act as (one of slack.deployers)\n%s", usage)
	}
	return nil
}

// Run starts the program and blocks until ctx ends (or, for the console,
// until its input ends).
func (m *Main) Run(ctx context.Context) error {
	if m.Mode == "demo" {
		return m.runDemo(ctx)
	}
	return m.run(ctx)
}

func (m *Main) run(ctx context.Context) error {
	cfg, err := config.Load(m.ConfigPath, m.Getenv)
	if err != nil {
		return err
	}
	m.Config = cfg
	if m.Mode == "check-config" {
		fmt.Fprintf(m.Stdout, "%s: ok (%s)\n", m.ConfigPath, plural(len(cfg.Services), "service"))
		for _, name := range cfg.Secrets.Shorter(redact.MinSecret) {
			fmt.Fprintf(m.Stdout, "note: %s is shorter than %d characters, too short to be masked in the text deploybot passes on (an outside system's error that quotes it would show it): use a longer one\n", name, redact.MinSecret)
		}
		if m.Online {
			return m.checkOnline(ctx)
		}
		return nil
	}
	switch m.Mode {
	case "healthcheck":
		return m.healthcheck(ctx)
	case "migrate":
		return m.migrateStore(ctx)
	case "export":
		return m.exportStore(ctx)
	}
	if m.Mode == "bot" {
		if err := cfg.RequireSlackSecrets(); err != nil {
			return err
		}
	}
	if err := m.setupLog(); err != nil {
		return err
	}
	var storeAt string
	m.Store, storeAt, err = openStore(ctx, cfg)
	if err != nil {
		return err
	}
	rb := steps.NewRunbooks(cfg)
	var token func() string
	if cfg.GitHub != nil {
		gh, err := github.New(cfg.GitHub.APIURL, github.Auth{Token: cfg.Secrets.GitHubToken.Reveal(), AppID: cfg.Secrets.GitHubAppID,
			InstallationID: cfg.Secrets.GitHubAppInstallationID, PrivateKey: []byte(cfg.Secrets.GitHubAppPrivateKey.Reveal())},
			// Per attempt, not per call: the client's own retries and
			// rate-limit waits must not be cut short by it.
			github.WithHTTPClient(&http.Client{Transport: m.counted("github", perAttemptTimeout(cfg.HTTPTimeout))}))
		if err != nil {
			return err
		}
		base := "main"
		if cfg.Infra != nil {
			base = cfg.Infra.BaseBranch
		}
		rb.AutomateGitHub(github.Steps{Client: gh}, cfg.GitHub, base)
		token = func() string {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			t, err := gh.GitToken(ctx)
			if err != nil {
				m.Log.Error("no GitHub token for git", zap.Error(redact.Scrub(err)))
			}
			return t
		}
	} else if cfg.Secrets.GitHubToken.IsSet() {
		token = cfg.Secrets.GitHubToken.Reveal
	}
	if cfg.Infra != nil {
		m.infra = infra.New(cfg.Infra, token)
		m.infra.LogFor, m.infra.Observe = m.terraformLog, m.metrics().Terraform
		m.infra.Secrets = cfg.Secrets.Values() // masked in everything posted
		rb.AutomateInfra(m.infra)
	}

	if cfg.Airflow != nil {
		af := airflow.New(cfg.Airflow.URL, cfg.Airflow.APIVersion, cfg.Secrets.AirflowUsername, cfg.Secrets.AirflowPassword.Reveal(),
			airflow.WithHTTPClient(&http.Client{Timeout: cfg.HTTPTimeout, Transport: m.counted("airflow", nil)}))
		rb.AutomateAirflow(airflow.Steps{Client: af}, cfg.Airflow.DataRefreshDAGs)
	}
	if cfg.Sentry != nil {
		sn := sentryweb.New(cfg.Sentry.URL, cfg.Sentry.Org, cfg.Secrets.SentryAuthToken.Reveal(),
			sentryweb.WithHTTPClient(&http.Client{Timeout: cfg.HTTPTimeout, Transport: m.counted("sentry", nil)}))
		rb.AutomateSentry(sentryweb.Steps{Client: sn, Project: cfg.Sentry.Project}, cfg.Sentry)
	}

	var chat bot.Chat
	var groups bot.Groups
	var channels bot.Channels
	var dir steps.Directory
	var console *bot.Console
	var api *slack.Client
	switch m.Mode {
	case "console", "demo":
		console = bot.NewConsole(m.Stdout, m.As, cfg.Slack.DeployChannels[0])
		chat = console
		m.ready = func() bool { return true }
	default:
		api = slack.New(cfg.Secrets.SlackBotToken.Reveal(), slack.OptionAPIURL(cfg.Slack.APIURL), slack.OptionAppLevelToken(cfg.Secrets.SlackAppToken.Reveal()), slack.OptionHTTPClient(m.slackHTTP(bot.HTTPClient.Timeout)))
		sc := bot.NewSlackChat(api, m.Log)
		chat, groups, channels, dir = sc, sc, sc, sc
	}
	rb.AutomateIncidents(&bot.Announcer{Chat: chat, Channels: channels, Groups: groups}, cfg)
	if m.Customize != nil {
		m.Customize(rb)
	}
	m.Bot = bot.New(cfg, chat, m.Log, bot.Options{BareDeploy: cfg.GitHub != nil})
	roles := bot.NewRoles(cfg.Slack.Deployers, cfg.Slack.Approvers, groups, cfg.Slack.GroupCacheMaxStale)
	m.Engine = steps.NewEngine(m.Store, m.notifier(), roles, rb, m.Log)
	m.Engine.SetMask(redact.NewValues(cfg.Secrets.Values()...).String)
	m.Engine.SetObserver(m.metrics().Runs())
	if dir != nil {
		m.Engine.SetDirectory(dir)
	}
	m.Bot.SetEngine(m.Engine)
	m.setReplica()
	// What the last process left owed is delivered first (and looked for
	// in Slack before it is sent), then runs resume.
	if err := m.Bot.DeliverPending(ctx); err != nil {
		return err
	}
	if err := m.Engine.Resume(ctx); err != nil {
		return err
	}
	if console == nil {
		m.Socket = bot.NewSocket(api, m.Bot, m.Store, m.Log, m.SocketOptions...)
		m.Socket.BeforeHandle = m.BeforeHandle
		m.Socket.Observer = m.metrics().Socket()
		m.ready = m.Socket.Connected
	}
	if err := m.serveHTTP(); err != nil {
		return err
	}
	m.Log.Info("deploybot started", zap.String("mode", m.Mode), zap.String("store", storeAt), zap.Int("open_runs", len(m.Engine.OpenRuns())))

	if console != nil {
		console.Attach(m.Bot)
		if m.demo.started != nil {
			m.demo.started()
		}
		return console.Run(ctx, m.Stdin)
	}
	return m.Socket.Run(ctx)
}

// Close shuts down: it takes no new work, lets a running terraform apply
// finish for up to shutdown_grace (CloseContext with a context that ends
// sooner cuts that short), then stops the engine (steps still running stay
// recorded as running and resume on the next start), flushes messages and
// closes the store.
func (m *Main) Close() error { return m.CloseContext(context.Background()) }

// CloseContext is Close where ctx ending (a second SIGTERM) ends the grace
// period early.
func (m *Main) CloseContext(ctx context.Context) error {
	var errs []error
	if m.Engine != nil && m.Config != nil {
		// Slack is already disconnected (Run returned), so no clicks
		// arrive; the engine refuses any that were in flight.
		grace, cancel := context.WithTimeout(ctx, m.Config.ShutdownGrace)
		if !m.Engine.Drain(grace) {
			m.Log.Warn("shutdown grace over: a running apply was cancelled; it will show as interrupted on the next start",
				zap.Duration("shutdown_grace", m.Config.ShutdownGrace))
		}
		cancel()
	}
	if m.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, m.http.Shutdown(ctx))
		cancel()
	}
	if m.Engine != nil {
		m.Engine.Close()
	}
	if m.Bot != nil {
		m.Bot.Flush(10 * time.Second)
		m.Bot.Close()
	}
	if m.Store != nil {
		errs = append(errs, m.Store.Close())
	}
	if m.infra != nil {
		errs = append(errs, m.infra.Close())
	}
	if m.sentry {
		sentry.Flush(2 * time.Second)
	}
	if m.Log != nil {
		_ = m.Log.Sync()
	}
	return errors.Join(errs...)
}

// HTTPAddr is where /healthz, /readyz and /metrics listen (after Run starts).
func (m *Main) HTTPAddr() string { return m.httpAddr }

func (m *Main) setupLog() error {
	level, err := zapcore.ParseLevel(m.Config.Log.Level)
	if err != nil {
		return err
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	var encoder zapcore.Encoder = zapcore.NewJSONEncoder(enc)
	if m.Config.Log.Format == "console" {
		encoder = zapcore.NewConsoleEncoder(enc)
	}
	// The console prints the conversation on stdout; logs go to stderr.
	// The configured secrets' values are masked in every line, whatever
	// quoted them (an outside system's answer in an error).
	core := zapcore.NewCore(encoder, zapcore.AddSync(redact.NewValues(m.Config.Secrets.Values()...).Writer(m.Stderr)), level)
	if dsn := m.Config.Secrets.SentryDSN; dsn.IsSet() {
		if err := sentry.Init(sentry.ClientOptions{Dsn: dsn.Reveal(), AttachStacktrace: true, Transport: m.SentryTransport}); err != nil {
			return errors.New("SENTRY_DSN is not a valid DSN")
		}
		m.sentry = true
		// The bot's own errors go to Sentry: every error-level log entry,
		// with its error as the exception and its run_id, service and step
		// as tags. No credential may ride along in an error's text.
		core = zapcore.NewTee(core, sentrylog.New(sentrylog.Redact(m.Config.Secrets.Values()...)))
	}
	if m.LogTee != nil {
		core = zapcore.NewTee(core, m.LogTee)
	}
	m.Log = zap.New(core)
	return nil
}

// zapWriter sends tool output (Terraform's) to the log at debug level, one
// entry per write.
type zapWriter struct{ log *zap.Logger }

func (w zapWriter) Write(p []byte) (int, error) {
	w.log.Debug(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// perAttemptTimeout is a transport whose every request must start answering
// within d: a GitHub that accepts the connection and says nothing fails the
// attempt, which the client's retry policy then judges.
func perAttemptTimeout(d time.Duration) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = d
	return t
}
