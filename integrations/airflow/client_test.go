package airflow_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/integrations/airflow"
	"github.com/deploybot/deploybot/integrations/airflow/airflowtest"
)

const (
	user = "deploybot"
	pass = "s3cret-Airflow-pass"
)

var refreshDAGs = []string{"image_data_refresh", "audio_data_refresh", "create_filtered_image_index", "create_filtered_audio_index"}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newServer(t *testing.T, version int) *airflowtest.Server {
	t.Helper()
	s := airflowtest.NewServer(version, user, pass)
	t.Cleanup(s.Close)
	s.AddDAG(refreshDAGs...)
	return s
}

// noSecrets fails the test when an error shows any form of a credential.
func noSecrets(t *testing.T, err error, extra ...string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, sec := range append([]string{pass, base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}, extra...) {
		if sec != "" && strings.Contains(msg, sec) {
			t.Fatalf("error leaks a secret %q: %s", sec, msg)
		}
	}
}

var t0 = time.Date(2024, 9, 9, 5, 40, 20, 123456000, time.UTC)

func TestV1BasicAuthNoRuns(t *testing.T) {
	s := newServer(t, 2)
	s.SetRuns("image_data_refresh",
		airflowtest.DagRun{RunID: "scheduled__2024-09-01T00:00:00+00:00", State: "success", StartDate: t0.Add(-48 * time.Hour)},
		airflowtest.DagRun{RunID: "manual__x", State: "failed", StartDate: t0.Add(-24 * time.Hour)})
	c := airflow.New(s.URL(), 2, user, pass)
	runs, err := c.ActiveRuns(testCtx(t), refreshDAGs)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 0 {
		t.Fatalf("finished runs reported as active: %+v", runs)
	}
	if n := s.Requests("/api/v1/dags/image_data_refresh/dagRuns"); n != 1 {
		t.Fatalf("dagRuns requests = %d, want 1", n)
	}
	if n := s.TokenRequests(); n != 0 {
		t.Fatalf("Airflow 2 client asked for a token %d times", n)
	}
}

func TestV1RunningRun(t *testing.T) {
	s := newServer(t, 2)
	runID := "manual__2024-09-09T05:40:20.123456+00:00"
	s.SetRuns("audio_data_refresh", airflowtest.DagRun{RunID: runID, State: "running", StartDate: t0})
	c := airflow.New(s.URL()+"/", 2, user, pass)
	runs, err := c.ActiveRuns(testCtx(t), refreshDAGs)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 {
		t.Fatalf("runs = %+v, want one", runs)
	}
	r := runs[0]
	if r.DagID != "audio_data_refresh" || r.RunID != runID || r.State != "running" || !r.StartDate.Equal(t0) {
		t.Fatalf("run = %+v", r)
	}
	want := s.URL() + "/dags/audio_data_refresh/grid?dag_run_id=manual__2024-09-09T05%3A40%3A20.123456%2B00%3A00"
	if r.URL != want {
		t.Fatalf("URL = %s\nwant  %s", r.URL, want)
	}
}

func TestV1WrongPassword(t *testing.T) {
	s := newServer(t, 2)
	c := airflow.New(s.URL(), 2, user, "wrong-password-xyz")
	_, err := c.ActiveRuns(testCtx(t), refreshDAGs)
	if !errors.Is(err, airflow.ErrUnauthorized) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
	if err.Error() != "airflow refused the credentials (401)" {
		t.Fatalf("err = %q", err)
	}
	noSecrets(t, err, "wrong-password-xyz")
}

func TestV2TokenAndRefresh(t *testing.T) {
	s := newServer(t, 3)
	s.SetRuns("image_data_refresh", airflowtest.DagRun{RunID: "manual__a", State: "queued", QueuedAt: t0})
	c := airflow.New(s.URL(), 3, user, pass)
	ctx := testCtx(t)

	runs, err := c.ActiveRuns(ctx, refreshDAGs)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].State != "queued" || !runs[0].StartDate.IsZero() {
		t.Fatalf("runs = %+v", runs)
	}
	if want := s.URL() + "/dags/image_data_refresh/runs/manual__a"; runs[0].URL != want {
		t.Fatalf("URL = %s, want %s", runs[0].URL, want)
	}
	if n := s.TokenRequests(); n != 1 {
		t.Fatalf("token requests = %d, want 1 (cached across DAGs)", n)
	}
	if n := s.Requests("/api/v2/dags/audio_data_refresh/dagRuns"); n != 1 {
		t.Fatalf("v2 dagRuns requests = %d", n)
	}

	// Cached: a second check costs no token.
	if _, err := c.ActiveRuns(ctx, refreshDAGs); err != nil {
		t.Fatal(err)
	}
	if n := s.TokenRequests(); n != 1 {
		t.Fatalf("token requests = %d after second check, want 1", n)
	}

	s.ExpireTokens()
	before := s.Requests("/api/v2/dags/image_data_refresh/dagRuns")
	runs, err = c.ActiveRuns(ctx, refreshDAGs)
	if err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if len(runs) != 1 {
		t.Fatalf("runs after refresh = %+v", runs)
	}
	if n := s.TokenRequests(); n != 2 {
		t.Fatalf("token requests = %d after expiry, want 2", n)
	}
	if n := s.Requests("/api/v2/dags/image_data_refresh/dagRuns") - before; n != 2 {
		t.Fatalf("requests after expiry = %d, want 2 (401 then retry)", n)
	}
}

func TestV2WrongPassword(t *testing.T) {
	s := newServer(t, 3)
	c := airflow.New(s.URL(), 3, user, "nope-nope-nope")
	_, err := c.ActiveRuns(testCtx(t), refreshDAGs)
	if !errors.Is(err, airflow.ErrUnauthorized) || !strings.Contains(err.Error(), "airflow refused the credentials (401)") {
		t.Fatalf("err = %v", err)
	}
	noSecrets(t, err, "nope-nope-nope")
}

// A server that keeps rejecting fresh tokens must not be hammered: one
// refresh, then the credentials are reported as refused.
func TestV2TokenRejectedTwice(t *testing.T) {
	tokens := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/auth/token" {
			tokens++
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"access_token":"tok-` + string(rune('a'+tokens)) + `-long-enough"}`))
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"detail":"Invalid JWT token ` + r.Header.Get("Authorization") + `"}`))
	}))
	defer srv.Close()
	c := airflow.New(srv.URL, 3, user, pass)
	_, err := c.ActiveRuns(testCtx(t), []string{"image_data_refresh"})
	if !errors.Is(err, airflow.ErrUnauthorized) {
		t.Fatalf("err = %v", err)
	}
	if tokens != 2 {
		t.Fatalf("token requests = %d, want 2", tokens)
	}
	noSecrets(t, err, "tok-b-long-enough", "tok-c-long-enough")
}

func TestUnknownDAG(t *testing.T) {
	for _, v := range []int{2, 3} {
		t.Run(map[int]string{2: "airflow2", 3: "airflow3"}[v], func(t *testing.T) {
			s := newServer(t, v)
			c := airflow.New(s.URL(), v, user, pass)
			_, err := c.ActiveRuns(testCtx(t), []string{"image_data_refresh", "imag_data_refresh"})
			if !errors.Is(err, airflow.ErrDAGNotFound) {
				t.Fatalf("err = %v, want ErrDAGNotFound", err)
			}
			if err.Error() != "DAG imag_data_refresh not found in Airflow" {
				t.Fatalf("err = %q", err)
			}
			if v == 2 && s.Requests("/api/v1/dags/imag_data_refresh") != 1 {
				t.Fatal("Airflow 2 lists no runs for an unknown DAG: the DAG must be looked up")
			}
		})
	}
}

func TestWrongAPIVersion(t *testing.T) {
	s := newServer(t, 3) // Airflow 3 has no /api/v1
	c := airflow.New(s.URL(), 2, user, pass)
	_, err := c.ActiveRuns(testCtx(t), refreshDAGs)
	if err == nil || errors.Is(err, airflow.ErrDAGNotFound) {
		t.Fatalf("err = %v, want an API-version error, not DAG not found", err)
	}
	if !strings.Contains(err.Error(), "api_version 2") {
		t.Fatalf("err = %q", err)
	}

	s2 := newServer(t, 2) // Airflow 2 has no /auth/token
	_, err = airflow.New(s2.URL(), 3, user, pass).ActiveRuns(testCtx(t), refreshDAGs)
	if err == nil || !strings.Contains(err.Error(), "/auth/token") {
		t.Fatalf("err = %v", err)
	}
}

func TestMultipleDAGsOrdered(t *testing.T) {
	for _, v := range []int{2, 3} {
		t.Run(map[int]string{2: "airflow2", 3: "airflow3"}[v], func(t *testing.T) {
			s := newServer(t, v)
			s.SetMaxPageLimit(2) // force paging
			s.SetRuns("create_filtered_audio_index",
				airflowtest.DagRun{RunID: "late", State: "running", StartDate: t0.Add(time.Hour)},
				airflowtest.DagRun{RunID: "done", State: "success", StartDate: t0},
				airflowtest.DagRun{RunID: "waiting", State: "queued"},
				airflowtest.DagRun{RunID: "early", State: "running", StartDate: t0})
			s.SetRuns("image_data_refresh",
				airflowtest.DagRun{RunID: "img-2", State: "queued", StartDate: t0.Add(2 * time.Minute)},
				airflowtest.DagRun{RunID: "img-1", State: "running", StartDate: t0.Add(time.Minute)})
			c := airflow.New(s.URL(), v, user, pass)
			runs, err := c.ActiveRuns(testCtx(t), refreshDAGs)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range runs {
				got = append(got, r.DagID+"/"+r.RunID)
			}
			want := []string{
				"image_data_refresh/img-1", "image_data_refresh/img-2",
				"create_filtered_audio_index/early", "create_filtered_audio_index/late", "create_filtered_audio_index/waiting",
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("runs = %v\nwant   %v", got, want)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	// A port nothing listens on: taken, then released.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	l.Close()

	c := airflow.New(addr, 2, user, pass)
	_, err = c.ActiveRuns(testCtx(t), refreshDAGs)
	if !errors.Is(err, airflow.ErrUnreachable) {
		t.Fatalf("err = %v", err)
	}
	if !strings.HasPrefix(err.Error(), "airflow at "+addr+" unreachable: ") {
		t.Fatalf("err = %q", err)
	}
	noSecrets(t, err)
}

func TestServerDown(t *testing.T) {
	for _, v := range []int{2, 3} {
		s := newServer(t, v)
		c := airflow.New(s.URL(), v, user, pass)
		s.Down(true)
		_, err := c.ActiveRuns(testCtx(t), refreshDAGs)
		if !errors.Is(err, airflow.ErrUnreachable) {
			t.Fatalf("v%d down: err = %v", v, err)
		}
		noSecrets(t, err)
		s.Down(false)
		if _, err := c.ActiveRuns(testCtx(t), refreshDAGs); err != nil {
			t.Fatalf("v%d back up: %v", v, err)
		}
		s.Unavailable(true)
		_, err = c.ActiveRuns(testCtx(t), refreshDAGs)
		if err == nil || !strings.Contains(err.Error(), "503") {
			t.Fatalf("v%d 503: err = %v", v, err)
		}
	}
}

func TestTimeoutViaContext(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := airflow.New(srv.URL, 2, user, pass).ActiveRuns(ctx, refreshDAGs)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, airflow.ErrUnreachable) {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("took %v despite a 200ms deadline", el)
	}
}

// Airflow (or a proxy) echoing credentials back must not put them in an
// error that ends up in Slack.
func TestSecretsScrubbedFromEchoes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`{"detail":"boom: ` + r.Header.Get("Authorization") + ` / ` + pass + `"}`))
	}))
	defer srv.Close()
	_, err := airflow.New(srv.URL, 2, user, pass).ActiveRuns(testCtx(t), refreshDAGs)
	if err == nil || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
	noSecrets(t, err)

	// Credentials in the URL are dropped, never shown.
	_, err = airflow.New("http://admin:url-password-123@127.0.0.1:1", 2, user, pass).ActiveRuns(testCtx(t), refreshDAGs)
	if err == nil {
		t.Fatal("expected an error")
	}
	noSecrets(t, err, "url-password-123")
}

func TestBadArguments(t *testing.T) {
	ctx := testCtx(t)
	if _, err := airflow.New("http://x", 4, user, pass).ActiveRuns(ctx, refreshDAGs); err == nil || !strings.Contains(err.Error(), "api_version 4") {
		t.Fatalf("err = %v", err)
	}
	if _, err := airflow.New("ftp://x", 2, user, pass).ActiveRuns(ctx, refreshDAGs); err == nil {
		t.Fatal("ftp URL accepted")
	}
	if _, err := airflow.New("http://x", 2, user, pass).ActiveRuns(ctx, nil); err == nil {
		t.Fatal("no DAGs accepted: an empty check must not pass")
	}
}

func TestConcurrentChecksShareOneToken(t *testing.T) {
	s := newServer(t, 3)
	c := airflow.New(s.URL(), 3, user, pass)
	ctx := testCtx(t)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := c.ActiveRuns(ctx, refreshDAGs)
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := s.TokenRequests(); n != 1 {
		t.Fatalf("token requests = %d, want 1", n)
	}
}
