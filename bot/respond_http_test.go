package bot

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A response_url that never answers must not hang the handler that replies:
// Respond goes through HTTPClient, whose timeout ends the wait, and not
// through http.DefaultClient, which has none. (Not parallel: it swaps
// HTTPClient, and parallel tests only start once it has put it back.)
func TestRespondGivesUpOnAStalledResponseURL(t *testing.T) {
	if HTTPClient.Timeout <= 0 {
		t.Fatalf("HTTPClient has no timeout")
	}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	saved := HTTPClient
	HTTPClient = &http.Client{Timeout: 200 * time.Millisecond}
	defer func() { HTTPClient = saved }()

	done := make(chan error, 1)
	go func() { done <- Respond(srv.URL+"/commands/T1/123/abc")(context.Background(), View{Text: "hi"}) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Respond to a stalled response_url succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Respond still waiting on a stalled response_url after 30s")
	}
}

// A failed answer on a response_url is logged without the response_url's
// path, which is a credential (anyone holding it may post as the bot into
// that conversation for 30 minutes), and without query-string secrets.
func TestFailedReplyLogsNoResponseURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	url := srv.URL + "/commands/T0001/1234/s3cretHookPath?token=s3cretToken"
	srv.Close() // connection refused: a *url.Error quoting the URL
	core, logs := observer.New(zap.DebugLevel)
	b := &Bot{log: zap.New(core)}
	b.replyView(context.Background(), Respond(url), View{Text: "hi"})
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("logged %d entries, want the failed reply", len(entries))
	}
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	out, err := enc.EncodeEntry(entries[0].Entry, entries[0].Context)
	if err != nil {
		t.Fatal(err)
	}
	buf.Write(out.Bytes())
	if s := buf.String(); strings.Contains(s, "s3cret") || !strings.Contains(s, "[redacted]") {
		t.Errorf("log entry:\n%s", s)
	}
}
