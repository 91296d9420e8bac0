package bot

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
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
