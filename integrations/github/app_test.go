package github

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/integrations/github/githubtest"
)

func newKey(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return key, pemOf(key)
}

func pemOf(key *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func TestAppAuthEndToEnd(t *testing.T) {
	key, pemKey := newKey(t)
	srv := githubtest.NewServer()
	defer srv.Close()
	clock := newFakeClock()
	srv.SetClock(clock.Now)
	srv.SetAppKey(12345, &key.PublicKey, 678)
	id := srv.AddRelease(monorepo, githubtest.Release{Tag: "ingestion_server-2024.09.09.05.40.20", Draft: true})
	n := srv.AddPR(monorepo, githubtest.PR{Title: "Changelog", Head: changelogBranch})

	// A stray static token beside complete App credentials is ignored.
	c, err := New(srv.URL(), Auth{Token: "ghp_strayTOKEN0123456789abcdef", AppID: 12345, InstallationID: 678, PrivateKey: pemKey}, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	rel, err := c.NewestDraft(ctx, monorepo, "ingestion_server-")
	if err != nil {
		t.Fatal(err)
	}
	if rel == nil || rel.ID != id {
		t.Fatalf("NewestDraft = %+v", rel)
	}
	p, err := c.PR(ctx, monorepo, n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Approve(ctx, monorepo, n, p.HeadSHA, "lgtm"); err != nil {
		t.Fatal(err)
	}
	// The App acts as "<slug>[bot]", read with its JWT.
	if actor, err := c.Actor(ctx); err != nil || actor != githubtest.DefaultUser {
		t.Errorf("Actor = %q, %v; want %q", actor, err, githubtest.DefaultUser)
	}
	if got := srv.InstallationTokens(); got != 1 {
		t.Errorf("%d installation tokens issued, want 1 reused", got)
	}
	if got := srv.Requests("POST", "/app/installations/678/access_tokens"); got != 1 {
		t.Errorf("%d token requests, want 1", got)
	}

	// A static token is not accepted once only the App is configured.
	other, err := New(srv.URL(), Auth{Token: "ghp_notTheAppToken0123456789"}, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.NewestDraft(ctx, monorepo, "x"); StatusCode(err) != 401 {
		t.Errorf("static token: %v, want 401", err)
	}
}

func TestAppAuthRejected(t *testing.T) {
	key, rightPEM := newKey(t)
	_, wrongPEM := newKey(t)
	srv := githubtest.NewServer()
	defer srv.Close()
	srv.SetAppKey(12345, &key.PublicKey, 678)
	srv.AddRepo(monorepo)

	for _, tc := range []struct {
		name   string
		auth   Auth
		status string
	}{
		{"wrong key", Auth{AppID: 12345, InstallationID: 678, PrivateKey: wrongPEM}, "401 Unauthorized"},
		{"unknown app", Auth{AppID: 999, InstallationID: 678, PrivateKey: rightPEM}, "401 Unauthorized"},
		{"unknown installation", Auth{AppID: 12345, InstallationID: 1, PrivateKey: rightPEM}, "404 Not Found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(srv.URL(), tc.auth, WithClock(newFakeClock()))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.NewestDraft(ctxT(t), monorepo, "x")
			if err == nil {
				t.Fatal("no error")
			}
			want := "looking for the draft x* release of WordPress/openverse: GitHub refused the App installation token (" + tc.status + "); check the app id, installation id and private key"
			if err.Error() != want {
				t.Errorf("error = %q\nwant    %q", err, want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Error("key material in error")
			}
		})
	}
}
