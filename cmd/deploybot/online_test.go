package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// checkOnline runs `deploybot check-config --online` with env on top of the
// world's, and returns what it printed and its error.
func (w *world) checkOnline(env map[string]string) (string, error) {
	w.t.Helper()
	var out bytes.Buffer
	m := NewMain()
	m.Stdout, m.Stderr = &out, &out
	m.Getenv = func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return w.env[k]
	}
	if err := m.ParseArgs([]string{"check-config", "--config", w.cfgPath, "--online"}); err != nil {
		w.t.Fatal(err)
	}
	err := m.Run(w.t.Context())
	return out.String(), err
}

// check-config --online tries every token and URL the way the bot will use
// them and names each one that is wrong, on a line of its own, without ever
// printing a credential.
func TestCheckConfigOnlineNamesWhatIsWrong(t *testing.T) {
	w := newWorld(t, sections{github: true, airflow: true, sentry: true})
	out, err := w.checkOnline(nil)
	if err != nil {
		t.Fatalf("a good configuration failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"ok   slack bot token (SLACK_BOT_TOKEN): auth.test: bot @",
		"ok   slack app token (SLACK_APP_TOKEN): apps.connections.open",
		"ok   github credentials (GITHUB_TOKEN)",
		"ok   github.monorepo " + monorepo + ": readable and writable",
		"ok   github.infra_repo " + infraRepo + ": readable and writable",
		"ok   airflow " + w.af.URL(),
		"ok   airflow credentials",
		"ok   sentry project",
		"all 8 online checks passed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	bad := map[string]string{
		"SLACK_BOT_TOKEN":   "xoxb-wrong-bot-token-1234",
		"SLACK_APP_TOKEN":   "xapp-wrong-app-token-5678",
		"GITHUB_TOKEN":      "ghp_wrongwrongwrongwrongwrongwrong0000",
		"AIRFLOW_PASSWORD":  "wrong-airflow-password",
		"SENTRY_AUTH_TOKEN": "sntrys_wrong_token_value",
	}
	out, err = w.checkOnline(bad)
	if err == nil || !strings.Contains(err.Error(), "online checks failed") {
		t.Fatalf("bad tokens: err = %v\n%s", err, out)
	}
	for _, want := range []string{
		"FAIL slack bot token (SLACK_BOT_TOKEN): Slack refused SLACK_BOT_TOKEN in auth.test (invalid_auth)",
		"FAIL slack app token (SLACK_APP_TOKEN): Slack refused SLACK_APP_TOKEN in apps.connections.open (invalid_auth)",
		"FAIL github credentials (GITHUB_TOKEN): GitHub did not accept GITHUB_TOKEN",
		"FAIL github.monorepo " + monorepo + ": GitHub refused GITHUB_TOKEN (401 Bad credentials)",
		"FAIL airflow credentials",
		"FAIL sentry project " + w.sn.Org() + "/ingestion-server (SENTRY_AUTH_TOKEN): Sentry refused SENTRY_AUTH_TOKEN (401)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "ok   airflow "+w.af.URL()+"/api/v1/health: healthy") {
		t.Errorf("the health endpoint needs no credentials, yet:\n%s", out)
	}
	for _, secret := range bad {
		if strings.Contains(out, secret) || strings.Contains(err.Error(), secret) {
			t.Errorf("a credential was printed:\n%s", out)
		}
	}

	// What the tokens may see and do is checked too.
	w.gh.SetReadOnly(true)
	w.af.SetSchedulerDown(true)
	w.writeConfigWith(func(s string) string {
		return strings.Replace(strings.Replace(s, "project: ingestion-server", "project: ingestion-servr", 1), "infra_repo: "+infraRepo, "infra_repo: WordPress/openverse-infra", 1)
	})
	out, _ = w.checkOnline(nil)
	for _, want := range []string{
		"FAIL github.monorepo " + monorepo + ": GITHUB_TOKEN can read " + monorepo + " but not write to it",
		"FAIL github.infra_repo WordPress/openverse-infra: GITHUB_TOKEN cannot see WordPress/openverse-infra (404)",
		"FAIL airflow " + w.af.URL() + "/api/v1/health: Airflow answers but scheduler is unhealthy",
		"FAIL sentry project " + w.sn.Org() + "/ingestion-servr (SENTRY_AUTH_TOKEN): Sentry has no project ingestion-servr",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// An answer that does not say the parts are healthy is not reported as
// healthy, and a check that was not made is not counted as passed.
func TestCheckConfigOnlineTakesNoSilenceForHealth(t *testing.T) {
	w := newWorld(t, sections{airflow: true})
	// A proxy in front of Airflow that answers 200 with an empty object.
	proxy := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		fmt.Fprint(rw, "{}")
	}))
	defer proxy.Close()
	w.writeConfigWith(func(s string) string { return strings.Replace(s, w.af.URL(), proxy.URL, 1) })
	out, err := w.checkOnline(map[string]string{"SLACK_BOT_TOKEN": ""})
	if err == nil {
		t.Fatalf("an empty health answer passed:\n%s", out)
	}
	for _, want := range []string{
		"FAIL airflow " + proxy.URL + "/api/v1/health: Airflow answers but it did not say whether the metadatabase is healthy, it did not say whether the scheduler is healthy",
		"skip slack bot token (SLACK_BOT_TOKEN): not set",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	w.writeConfigWith(func(s string) string { return strings.Replace(s, proxy.URL, w.af.URL(), 1) })
	out, err = w.checkOnline(map[string]string{"SLACK_BOT_TOKEN": ""})
	if err != nil {
		t.Fatalf("only a token not set, yet: %v\n%s", err, out)
	}
	if strings.Contains(out, "all ") || !strings.Contains(out, "online checks passed; 1 not made (see skip above)") {
		t.Errorf("a skipped check was counted as passed:\n%s", out)
	}
}

// writeConfigWith rewrites the config file through edit.
func (w *world) writeConfigWith(edit func(string) string) {
	w.t.Helper()
	b, err := readFile(w.cfgPath)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(w.cfgPath, []byte(edit(b)), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// With a GitHub App, the App's key and installation are what is tried;
// an installation token's repositories are readable (GitHub does not say
// what it may write).
func TestCheckConfigOnlineWithAGitHubApp(t *testing.T) {
	w := newWorld(t, sections{github: true})
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	w.gh.SetAppKey(4242, &key.PublicKey, 77)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	app := map[string]string{"GITHUB_TOKEN": "", "GITHUB_APP_ID": "4242", "GITHUB_APP_INSTALLATION_ID": "77", "GITHUB_APP_PRIVATE_KEY": pemKey}
	out, err := w.checkOnline(app)
	if err != nil || !strings.Contains(out, "ok   github.infra_repo "+infraRepo+": readable\n") {
		t.Errorf("a good App: %v\n%s", err, out)
	}
	app["GITHUB_APP_INSTALLATION_ID"] = "78"
	out, err = w.checkOnline(app)
	if err == nil || !strings.Contains(out, "FAIL github credentials (GITHUB_APP_ID, GITHUB_APP_INSTALLATION_ID, GITHUB_APP_PRIVATE_KEY): GitHub knows the App as deploybot[bot] but gives no token for installation 78") ||
		!strings.Contains(out, "FAIL github.monorepo "+monorepo+": no token from the GitHub App") {
		t.Errorf("an App with a wrong installation: %v\n%s", err, out)
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Errorf("the key was printed:\n%s", out)
	}
}
