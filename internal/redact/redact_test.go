package redact

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestScrubString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`Post "https://hooks.slack.com/commands/T0001/1234/abcdefSECRET": context deadline exceeded`,
			`Post "https://hooks.slack.com/[redacted]": context deadline exceeded`},
		{`Post "https://hooks.slack.com/actions/T0001/99/XYZsecret": EOF`, `Post "https://hooks.slack.com/[redacted]": EOF`},
		{`Post "http://127.0.0.1:4321/actions/T1/2/s3cr3t": connection refused`, `Post "http://127.0.0.1:4321/[redacted]": connection refused`},
		{`Get "https://api.example.com/v1/x?token=abc123&page=2": EOF`, `Get "https://api.example.com/v1/x?page=2&token=[redacted]": EOF`},
		{`PUT https://bucket.s3.amazonaws.com/f?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA1%2F2&X-Amz-Security-Token=zz failed`,
			`PUT https://bucket.s3.amazonaws.com/f?X-Amz-Credential=[redacted]&X-Amz-Security-Token=[redacted]&X-Amz-Signature=[redacted] failed`},
		{`files.slack.com/upload?sig=abc&Key=k1&password=pw&access_token=at`, `files.slack.com/upload?sig=[redacted]&Key=[redacted]&password=[redacted]&access_token=[redacted]`}, // no scheme: parameters still masked
		{`see https://files.slack.com/upload/v1/abc?sig=abc&KEY=k1&password=pw&access_token=at.`,
			`see https://files.slack.com/upload/v1/abc?KEY=[redacted]&access_token=[redacted]&password=[redacted]&sig=[redacted].`},
		{`clone https://x-access-token:ghs_abc@github.com/o/r.git failed`, `clone https://[redacted]@github.com/o/r.git failed`},
		{`Get "https://slack.com/api/chat.postMessage": 503`, `Get "https://slack.com/api/chat.postMessage": 503`},
		{`no url here, key=value stays`, `no url here, key=value stays`},
	} {
		if got := ScrubString(tc.in); got != tc.want {
			t.Errorf("ScrubString(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestScrubRealURLError(t *testing.T) {
	// A real *url.Error from net/http, as a response_url post that timed out
	// produces it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://hooks.slack.com/commands/T0001/1234/abcdefSECRET?token=tok", nil)
	_, err := (&http.Client{}).Do(req)
	if err == nil {
		t.Fatal("request with an expired context succeeded")
	}
	wrapped := fmt.Errorf("answering /deploy: %w", err)
	s := Scrub(wrapped)
	if strings.Contains(s.Error(), "abcdefSECRET") || strings.Contains(s.Error(), "tok") || !strings.Contains(s.Error(), "hooks.slack.com") {
		t.Errorf("Scrub = %q", s)
	}
	if !errors.Is(s, context.DeadlineExceeded) {
		t.Errorf("scrubbed error lost its cause: %v", s)
	}
	if Scrub(nil) != nil {
		t.Error("Scrub(nil) != nil")
	}
	clean := errors.New("plain")
	if Scrub(clean) != clean {
		t.Error("a clean error was rewrapped")
	}
	var ue *url.Error
	if !errors.As(Scrub(err), &ue) || strings.Contains(ue.URL, "SECRET") {
		t.Errorf("errors.As finds %v", ue)
	}
}
