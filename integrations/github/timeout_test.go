package github

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A GitHub that accepts the connection and never answers must not hang a
// deploy step: each attempt gives up on its own, the call reports an
// error, and the caller's context needs no deadline for that to happen.
func TestStalledGitHubTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := New(srv.URL+"/", Auth{Token: "t"}, WithAttempts(2), WithBackoff(time.Millisecond, time.Millisecond),
		func(o *options) { o.attemptTimeout = 200 * time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.ReleaseByTag(context.Background(), "o/r", "v1")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a stalled GitHub answered successfully")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("request to a stalled GitHub still hanging after 30s")
	}
}

func TestDefaultClientHasTimeouts(t *testing.T) {
	c, err := New("https://api.github.example/", Auth{Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	hc := c.gh.Client()
	if hc.Timeout <= 0 || hc.Timeout < 2*time.Minute {
		t.Errorf("Timeout = %v: want a bound that still covers the 2m rate-limit wait", hc.Timeout)
	}
}
