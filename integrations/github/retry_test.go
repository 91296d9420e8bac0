package github

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/integrations/github/githubtest"
)

func addDraft(f *fixture) int64 {
	return f.srv.AddRelease(monorepo, githubtest.Release{Tag: "ingestion_server-2024.09.09.05.40.20", Draft: true})
}

func TestServerErrorBurstIsRetried(t *testing.T) {
	f := newFixture(t)
	id := addDraft(f)
	f.srv.FailNext(3, http.StatusBadGateway)

	got, err := f.c.NewestDraft(ctxT(t), monorepo, "ingestion_server-")
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.ID != id {
		t.Fatalf("got %+v", got)
	}
	if n := f.srv.Requests("GET", "/repos/"); n != 4 {
		t.Errorf("%d requests, want 4", n)
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}; !reflect.DeepEqual(f.clock.Slept(), want) {
		t.Errorf("waits %v, want %v", f.clock.Slept(), want)
	}
}

func TestPersistentServerErrorFails(t *testing.T) {
	f := newFixture(t, WithBackoff(time.Second, 3*time.Second))
	addDraft(f)
	f.srv.FailNext(100, http.StatusServiceUnavailable)

	_, err := f.c.NewestDraft(ctxT(t), monorepo, "ingestion_server-")
	if err == nil {
		t.Fatal("no error")
	}
	want := "looking for the draft ingestion_server-* release of WordPress/openverse: GitHub answered 503: Service Unavailable; GitHub is having trouble, try again later"
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err, want)
	}
	if StatusCode(err) != 503 {
		t.Errorf("StatusCode = %d", StatusCode(err))
	}
	if n := f.srv.Requests("", "/repos/"); n != 5 {
		t.Errorf("%d attempts, want 5", n)
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}; !reflect.DeepEqual(f.clock.Slept(), want) {
		t.Errorf("waits %v, want %v (capped)", f.clock.Slept(), want)
	}
}

// A dispatch is never resent after a 5xx, a dropped connection or a
// timeout: each may follow a workflow that started, and a second dispatch
// deploys production again. The error says so (Ambiguous).
func TestPostRetryPolicy(t *testing.T) {
	const path = "/repos/WordPress/openverse-infrastructure/actions/workflows/" + deployWF + "/dispatches"
	inputs := map[string]any{"tag": "rel-2023.07.03.17.52.00"}

	for _, code := range []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout} {
		t.Run(http.StatusText(code)+" after the effect is not resent", func(t *testing.T) {
			f := newFixture(t)
			f.srv.AddWorkflow(infraRepo, deployWF)
			f.srv.FailAfterApply("POST", path, 1, code)
			_, err := f.c.Dispatch(ctxT(t), infraRepo, deployWF, "main", inputs)
			if StatusCode(err) != code || !Ambiguous(err) {
				t.Fatalf("err = %v, want an ambiguous %d", err, code)
			}
			if n := f.srv.Requests("POST", path); n != 1 {
				t.Errorf("%d POSTs, want 1", n)
			}
			if n := len(f.srv.Dispatches(infraRepo, deployWF)); n != 1 {
				t.Errorf("dispatched %d times, want exactly once", n)
			}
		})
	}
	t.Run("a dropped connection is not resent", func(t *testing.T) {
		f := newFixture(t)
		f.srv.AddWorkflow(infraRepo, deployWF)
		f.srv.DropAfterApply("POST", path, 1)
		_, err := f.c.Dispatch(ctxT(t), infraRepo, deployWF, "main", inputs)
		if err == nil || !Ambiguous(err) {
			t.Fatalf("err = %v, want an ambiguous error", err)
		}
		if n := f.srv.Requests("POST", path); n != 1 {
			t.Errorf("%d POSTs, want 1", n)
		}
	})
	t.Run("a timeout is not resent", func(t *testing.T) {
		f := newFixture(t)
		f.srv.AddWorkflow(infraRepo, deployWF)
		// GitHub gets the request but its answer does not arrive before
		// the deadline: the transport underneath sends it, then times out.
		late := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := http.DefaultTransport.RoundTrip(r)
			if err != nil || r.Method != "POST" {
				return resp, err
			}
			resp.Body.Close()
			return nil, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
		})}
		c, err := New(f.srv.URL(), Auth{Token: testToken}, WithHTTPClient(late), WithClock(f.clock))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Dispatch(ctxT(t), infraRepo, deployWF, "main", inputs)
		if err == nil || !Ambiguous(err) {
			t.Fatalf("err = %v, want an ambiguous timeout", err)
		}
		if n := f.srv.Requests("POST", path); n != 1 {
			t.Errorf("%d POSTs, want 1", n)
		}
	})
	t.Run("a refused connection is resent: nothing was sent", func(t *testing.T) {
		if !neverSent(&net.OpError{Op: "dial", Err: errors.New("connection refused")}) {
			t.Fatal("a failed dial is not recognised as never sent")
		}
		if Ambiguous(&url.Error{Op: "Post", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}) {
			t.Error("a failed dial is reported as ambiguous")
		}
	})
	t.Run("PATCH is resent on 500", func(t *testing.T) {
		f := newFixture(t)
		id := addDraft(f)
		f.srv.FailRequests("PATCH", "/repos/", 1, http.StatusInternalServerError)
		if _, err := f.c.Publish(ctxT(t), monorepo, id); err != nil {
			t.Fatal(err)
		}
		if n := f.srv.Requests("PATCH", "/repos/"); n != 2 {
			t.Errorf("%d PATCHes, want 2", n)
		}
	})
}

func TestSecondaryRateLimitIsWaitedOut(t *testing.T) {
	for _, kind := range []string{"secondary", "secondary-429"} {
		t.Run(kind, func(t *testing.T) {
			// A secondary limit is a refusal: even a dispatch, which is
			// never resent after a 5xx, is resent after it.
			f := newFixture(t)
			f.srv.AddWorkflow(infraRepo, deployWF)
			f.srv.RateLimitNext(kind, 7*time.Second)
			f.srv.RateLimitNext(kind, time.Second)

			if _, err := f.c.Dispatch(ctxT(t), infraRepo, deployWF, "main", nil); err != nil {
				t.Fatal(err)
			}
			if want := []time.Duration{7 * time.Second, time.Second}; !reflect.DeepEqual(f.clock.Slept(), want) {
				t.Errorf("waits %v, want Retry-After %v", f.clock.Slept(), want)
			}
			if got := len(f.srv.Dispatches(infraRepo, deployWF)); got != 1 {
				t.Errorf("%d dispatches, want 1", got)
			}
		})
	}
}

func TestSecondaryRateLimitBeyondMaxWaitFails(t *testing.T) {
	f := newFixture(t, WithMaxWait(time.Minute))
	addDraft(f)
	f.srv.RateLimitNext("secondary", 5*time.Minute)
	_, err := f.c.NewestDraft(ctxT(t), monorepo, "ingestion_server-")
	if err == nil || !strings.Contains(err.Error(), "GitHub secondary rate limit hit; try again after 5m0s") {
		t.Fatalf("err = %v", err)
	}
	if len(f.clock.Slept()) != 0 {
		t.Errorf("waited %v", f.clock.Slept())
	}
}

func TestPrimaryRateLimitNearResetIsWaited(t *testing.T) {
	for _, kind := range []string{"primary", "primary-429"} {
		t.Run(kind, func(t *testing.T) {
			f := newFixture(t)
			id := addDraft(f)
			f.srv.RateLimitNext(kind, 90*time.Second)

			rel, err := f.c.Publish(ctxT(t), monorepo, id)
			if err != nil {
				t.Fatal(err)
			}
			if rel.Draft {
				t.Error("still a draft")
			}
			if total := f.clock.TotalSlept(); total < 90*time.Second || total > 92*time.Second {
				t.Errorf("waited %v, want the 90s until reset (plus a second)", total)
			}
			if n := f.srv.Requests("PATCH", "/repos/"); n != 2 {
				t.Errorf("%d PATCHes, want 2", n)
			}
		})
	}
}

func TestPrimaryRateLimitFarResetFails(t *testing.T) {
	for _, kind := range []string{"primary", "primary-429"} {
		t.Run(kind, func(t *testing.T) {
			f := newFixture(t)
			id := addDraft(f)
			f.srv.RateLimitNext(kind, time.Hour)

			_, err := f.c.Publish(ctxT(t), monorepo, id)
			var rl *RateLimitError
			if !errors.As(err, &rl) {
				t.Fatalf("err = %v, want a *RateLimitError", err)
			}
			if want := f.clock.Now().Add(time.Hour); !rl.Reset.Equal(want) {
				t.Errorf("Reset = %v, want %v", rl.Reset, want)
			}
			if want := "publishing release " + itoa(int(id)) + " of WordPress/openverse: GitHub rate limit exhausted until 06:40 UTC"; err.Error() != want {
				t.Errorf("error = %q\nwant    %q", err, want)
			}
			if len(f.clock.Slept()) != 0 {
				t.Errorf("waited %v before failing", f.clock.Slept())
			}
			if n := f.srv.Requests("PATCH", "/repos/"); n != 1 {
				t.Errorf("%d PATCHes, want 1", n)
			}
			if f.srv.Release(monorepo, id).Draft != true {
				t.Error("published despite the rate limit")
			}
		})
	}
}

func TestPrimaryRateLimitMaxWaitIsConfigurable(t *testing.T) {
	f := newFixture(t, WithMaxWait(10*time.Second))
	addDraft(f)
	f.srv.RateLimitNext("primary", 30*time.Second)
	_, err := f.c.NewestDraft(ctxT(t), monorepo, "ingestion_server-")
	var rl *RateLimitError
	if !errors.As(err, &rl) {
		t.Fatalf("err = %v", err)
	}
}

func TestContextEndsWaits(t *testing.T) {
	f := newFixture(t)
	addDraft(f)
	f.srv.FailNext(100, http.StatusBadGateway)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.c.NewestDraft(ctx, monorepo, "ingestion_server-")
	if !errors.Is(err, context.Canceled) || !strings.HasSuffix(err.Error(), ": cancelled") {
		t.Fatalf("err = %v", err)
	}
}

// A deadline sooner than the reset makes the client answer at once rather
// than sleep into the deadline.
func TestDeadlineShorterThanResetAnswersAtOnce(t *testing.T) {
	f := newFixture(t)
	addDraft(f)
	f.srv.RateLimitNext("primary", 90*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := f.c.NewestDraft(ctx, monorepo, "ingestion_server-")
	var rl *RateLimitError
	if !errors.As(err, &rl) {
		t.Fatalf("err = %v", err)
	}
	if len(f.clock.Slept()) != 0 {
		t.Errorf("waited %v", f.clock.Slept())
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	t.Run("bad credentials", func(t *testing.T) {
		f := newFixture(t)
		c, err := New(f.srv.URL(), Auth{Token: "ghp_wrongTOKEN0123456789abcdefXYZ"}, WithClock(f.clock))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.NewestDraft(ctxT(t), monorepo, "ingestion_server-")
		if err == nil || StatusCode(err) != 401 {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), "ghp_wrong") {
			t.Errorf("token in error: %q", err)
		}
		if !strings.Contains(err.Error(), "GitHub answered 401: Bad credentials; check the GitHub token or App credentials") {
			t.Errorf("error = %q", err)
		}
	})

	// A server (or proxy) that echoes credentials into its messages, for
	// every kind of failure the client reports.
	t.Run("echoed by the server", func(t *testing.T) {
		const installation = "ghs_abcdefghijklmnopqrstuvwxyz0123456789"
		for _, status := range []int{400, 401, 403, 404, 422, 500, 502} {
			echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				msg := `{"message":"you sent ` + r.Header.Get("Authorization") + ` and ` + installation + `","errors":[{"message":"` + testToken + `"}]}`
				_, _ = w.Write([]byte(msg))
			}))
			clock := newFakeClock()
			c, err := New(echo.URL+"/", Auth{Token: testToken}, WithClock(clock))
			if err != nil {
				t.Fatal(err)
			}
			for name, call := range map[string]func() error{
				"draft":    func() error { _, err := c.NewestDraft(ctxT(t), monorepo, "x-"); return err },
				"publish":  func() error { _, err := c.Publish(ctxT(t), monorepo, 1); return err },
				"dispatch": func() error { _, err := c.Dispatch(ctxT(t), infraRepo, deployWF, "main", nil); return err },
				"approve":  func() error { _, err := c.Approve(ctxT(t), monorepo, 1, "abc", ""); return err },
				"pr":       func() error { _, err := c.CreatePR(ctxT(t), infraRepo, "h", "main", "t", "b"); return err },
			} {
				err := call()
				if err == nil {
					t.Fatalf("%s %d: no error", name, status)
				}
				if msg := err.Error(); strings.Contains(msg, testToken) || strings.Contains(msg, installation) || !strings.Contains(msg, "[redacted]") {
					t.Errorf("%s %d: error %q leaks or hides nothing", name, status, msg)
				}
			}
			echo.Close()
		}
	})
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  string
		auth Auth
		want string
	}{
		{"no credentials", "https://api.github.com/", Auth{}, "no credentials"},
		{"token and partial app", "https://api.github.com/", Auth{Token: "t", AppID: 1}, "installation id"},
		{"partial app", "https://api.github.com/", Auth{AppID: 1, PrivateKey: []byte("x")}, "installation id"},
		{"bad key", "https://api.github.com/", Auth{AppID: 1, InstallationID: 2, PrivateKey: []byte("not a key")}, "private key"},
		{"bad url", "ftp://x/", Auth{Token: "t"}, "not an http(s) URL"},
		{"token with newline", "https://api.github.com/", Auth{Token: "secret\n"}, "whitespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.url, tc.auth)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "not a key") {
				t.Errorf("credential in error %q", err)
			}
		})
	}
	// A missing trailing slash is forgiven.
	srv := githubtest.NewServer()
	defer srv.Close()
	c, err := New(strings.TrimSuffix(srv.URL(), "/"), Auth{Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Dispatch(ctxT(t), "o/r", "w.yml", "main", nil); StatusCode(err) != 404 {
		t.Errorf("err = %v, want a 404 from the server", err)
	}
	if _, err := c.NewestDraft(ctxT(t), "not-a-repo", "x"); err == nil || !strings.Contains(err.Error(), "owner/name") {
		t.Errorf("bad repo: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
