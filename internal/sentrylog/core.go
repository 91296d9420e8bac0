// Package sentrylog sends the bot's error-level log entries to Sentry: a
// zapcore.Core to tee beside the one that writes the log. sentry-go's own
// zap integration is a separate module that is not available here, and
// what deploybot needs is small: one event per error entry, grouped by what
// went wrong rather than by the changing details of each occurrence.
package sentrylog

import (
	"fmt"
	"strings"
	"time"

	"github.com/getsentry/sentry-go"
	"go.uber.org/zap/zapcore"
)

// maxTag is Sentry's limit on a tag value; longer strings are context.
const maxTag = 200

// Core is a zapcore.Core that reports entries at or above error level.
type Core struct {
	hub    *sentry.Hub // nil: sentry.CurrentHub() at the time of writing
	redact []string
	fields []zapcore.Field
}

// Option configures a Core.
type Option func(*Core)

// Hub reports to hub instead of sentry.CurrentHub().
func Hub(hub *sentry.Hub) Option { return func(c *Core) { c.hub = hub } }

// Redact replaces each non-empty secret (tokens, the DSN) wherever it would
// appear in an event: an error message may quote a URL or a header.
func Redact(secrets ...string) Option {
	return func(c *Core) {
		for _, s := range secrets {
			if s != "" {
				c.redact = append(c.redact, s)
			}
		}
	}
}

// New returns the core.
func New(opts ...Option) *Core {
	c := &Core{}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Enabled reports whether entries at level l go to Sentry: errors and worse.
func (c *Core) Enabled(l zapcore.Level) bool { return l >= zapcore.ErrorLevel }

// With carries fields over to every later entry, like any zap core.
func (c *Core) With(fs []zapcore.Field) zapcore.Core {
	d := *c
	d.fields = append(append([]zapcore.Field(nil), c.fields...), fs...)
	return &d
}

// Check adds the core when the entry is reported.
func (c *Core) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// Write sends the entry as one event. It runs on the logging goroutine, so
// when the entry is written inside a deferred recover the stack trace it
// takes still holds the panic site (sentry-go cuts it at runtime.gopanic).
func (c *Core) Write(e zapcore.Entry, fs []zapcore.Field) error {
	ev := sentry.NewEvent()
	ev.Level = sentry.LevelError
	if e.Level >= zapcore.DPanicLevel {
		ev.Level = sentry.LevelFatal
	}
	ev.Message = c.clean(e.Message)
	ev.Logger = e.LoggerName
	if !e.Time.IsZero() {
		ev.Timestamp = e.Time
	}
	// One kind of failure is one Sentry issue, whatever its details.
	ev.Fingerprint = []string{e.Message}
	extra := map[string]any{}
	for _, f := range append(append([]zapcore.Field(nil), c.fields...), fs...) {
		switch {
		case f.Type == zapcore.ErrorType && f.Key == "error" && ev.Exception == nil:
			if err, ok := f.Interface.(error); ok && err != nil {
				ev.SetException(err, 10)
			}
		case f.Type == zapcore.StringType && f.String == "":
			// Sentry drops an event's empty tag values as invalid (a run
			// with no step left has step "").
		case f.Type == zapcore.StringType && len(f.String) <= maxTag && !strings.ContainsAny(f.String, "\n\r"):
			ev.Tags[f.Key] = c.clean(f.String)
		case f.Key == "stack":
			// The exception's stack trace says it better.
		default:
			enc := zapcore.NewMapObjectEncoder()
			f.AddTo(enc)
			for k, v := range enc.Fields {
				extra[k] = c.value(v)
			}
		}
	}
	for i := range ev.Exception {
		x := &ev.Exception[i]
		x.Value = c.clean(x.Value)
		if x.Stacktrace != nil {
			x.Stacktrace.Frames = trimLogging(x.Stacktrace.Frames)
		}
	}
	if len(ev.Exception) == 0 {
		// No error to carry a stack: say where the entry was logged.
		st := sentry.NewStacktrace()
		st.Frames = trimLogging(st.Frames)
		ev.Threads = []sentry.Thread{{Stacktrace: st, Current: true}}
	}
	if len(extra) > 0 {
		ev.Contexts["log"] = extra
	}
	hub := c.hub
	if hub == nil {
		hub = sentry.CurrentHub()
	}
	hub.CaptureEvent(ev)
	if e.Level > zapcore.ErrorLevel {
		// Panic and Fatal end the goroutine or the process right after
		// writing: the event must be on its way first.
		hub.Flush(2 * time.Second)
	}
	return nil
}

// Sync waits briefly for events in flight, as a log sync waits for writes.
func (c *Core) Sync() error {
	hub := c.hub
	if hub == nil {
		hub = sentry.CurrentHub()
	}
	hub.Flush(2 * time.Second)
	return nil
}

func (c *Core) clean(s string) string {
	for _, secret := range c.redact {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	return s
}

func (c *Core) value(v any) any {
	switch v := v.(type) {
	case string:
		return c.clean(v)
	case error:
		return c.clean(v.Error())
	case fmt.Stringer:
		return c.clean(v.String())
	case []byte:
		return c.clean(string(v))
	}
	return v
}

// trimLogging drops the innermost frames that belong to the logging itself
// (zap and this package), so the trace ends where the error was logged.
// Frames are ordered outermost first.
func trimLogging(frames []sentry.Frame) []sentry.Frame {
	n := len(frames)
	for n > 0 {
		m := frames[n-1].Module
		if !strings.HasPrefix(m, "go.uber.org/zap") && !strings.HasSuffix(m, "internal/sentrylog") {
			break
		}
		n--
	}
	return frames[:n]
}
