package sentry_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/deploybot/deploybot/integrations/sentry"
)

func TestZZPrint(t *testing.T) {
	s := newServer(t)
	ctx := testCtx(t)
	c := newClient(s, sentry.WithMaxRetries(1))
	_, err := sentry.New(s.URL(), org, "bad-token-xxxx").Issues(ctx, slug, prod, base)
	fmt.Println(err)
	_, err = sentry.New(s.URL(), "nope", token).Issues(ctx, slug, prod, base)
	fmt.Println(err)
	_, err = c.Issues(ctx, "nope", prod, base)
	fmt.Println(err)
	s.FailNext(5, http.StatusBadGateway)
	_, err = c.Issues(ctx, "4242", prod, base)
	fmt.Println(err)
	s.RateLimitNext(5, 0)
	_, err = c.Issues(ctx, "4242", prod, base)
	fmt.Println(err)
	s.RateLimitNext(1, time.Hour)
	_, err = c.Issues(ctx, "4242", prod, base)
	fmt.Println(err)
	err = c.CreateDeploy(ctx, "nope", sentry.Deploy{Version: "v1", Environment: "x"})
	fmt.Println(err)
	_, err = sentry.New("http://127.0.0.1:1/", org, token, sentry.WithMaxRetries(0)).Issues(ctx, "1", prod, base)
	fmt.Println(err)
	fmt.Println(s.RequestURIs()[len(s.RequestURIs())-3])
}
