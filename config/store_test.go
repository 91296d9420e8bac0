package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestStoreURL(t *testing.T) {
	c := mustParse(t, minimal, noEnv)
	if c.StoreURL != "" || !strings.HasSuffix(c.StatePath, "deploybot.db") {
		t.Errorf("default store: url %q, state_path %q; want SQLite at deploybot.db", c.StoreURL, c.StatePath)
	}

	c = mustParse(t, minimal+"store:\n  url: postgres://deploybot@db.internal:5432/deploybot?sslmode=require\n",
		envMap(map[string]string{"PGPASSWORD": "from-pgpassword"}))
	if c.StoreURL != "postgres://deploybot@db.internal:5432/deploybot?sslmode=require" || c.Secrets.DatabasePassword.Reveal() != "from-pgpassword" {
		t.Errorf("store.url %q, password set %v", c.StoreURL, c.Secrets.DatabasePassword.IsSet())
	}
	if !strings.HasSuffix(c.StatePath, "deploybot.db") {
		t.Errorf("state_path changed to %q", c.StatePath)
	}

	// The environment's URL wins and may carry the password, which moves
	// to the secrets; DEPLOYBOT_DATABASE_PASSWORD wins over both.
	c = mustParse(t, minimal+"store:\n  url: postgres://a@file-host/db\n", envMap(map[string]string{
		"DEPLOYBOT_DATABASE_URL": "postgresql://bot:in-url@env-host:6432/state",
	}))
	if c.StoreURL != "postgresql://bot@env-host:6432/state" || c.Secrets.DatabasePassword.Reveal() != "in-url" {
		t.Errorf("env url: %q, password %q", c.StoreURL, c.Secrets.DatabasePassword.Reveal())
	}
	c = mustParse(t, minimal, envMap(map[string]string{
		"DEPLOYBOT_DATABASE_URL":      "postgres://bot:in-url@env-host/state",
		"DEPLOYBOT_DATABASE_PASSWORD": "explicit",
		"PGPASSWORD":                  "libpq",
	}))
	if c.Secrets.DatabasePassword.Reveal() != "explicit" {
		t.Errorf("password %q, want DEPLOYBOT_DATABASE_PASSWORD's", c.Secrets.DatabasePassword.Reveal())
	}
	// A secret like any other: masked wherever secrets are.
	if fmt.Sprintf("%+v", c) == "" || strings.Contains(fmt.Sprintf("%+v %#v", c, c.Secrets), "explicit") {
		t.Error("the database password prints")
	}
	found := false
	for _, v := range c.Secrets.Values() {
		found = found || v == "explicit"
	}
	if !found {
		t.Error("the database password is not among Secrets.Values, so it would not be masked")
	}
}

func TestBadStoreURL(t *testing.T) {
	for _, tc := range []struct {
		url, want string
	}{
		{"mysql://bot@db/x", `unknown scheme "mysql"`},
		{"sqlite:///var/lib/deploybot.db", `unknown scheme "sqlite"`},
		{"db.internal:5432", "unknown scheme"},
		{"postgres:///deploybot", "names no host"},
		{"postgres://bot:hunter2@db/x", "secrets come from the environment (DEPLOYBOT_DATABASE_PASSWORD)"},
		{"postgres://bot@db/x?password=hunter2", "set DEPLOYBOT_DATABASE_PASSWORD"},
	} {
		ps := problems(t, minimal+"store:\n  url: "+tc.url+"\n", noEnv)
		if !hasProblem(ps, "store.url", tc.want) {
			t.Errorf("store.url %s: %v, want a problem saying %q", tc.url, ps, tc.want)
		}
		if strings.Contains(ps.Error(), "hunter2") {
			t.Errorf("the problem repeats the password: %v", ps)
		}
	}
	ps := problems(t, minimal, envMap(map[string]string{"DEPLOYBOT_DATABASE_URL": "mongodb://x:hunter2@h/db"}))
	if !hasProblem(ps, "env DEPLOYBOT_DATABASE_URL", `unknown scheme "mongodb"`) || strings.Contains(ps.Error(), "hunter2") {
		t.Errorf("env url problems: %v", ps)
	}
	ps = problems(t, minimal+"store:\n  path: x\n", noEnv)
	if !hasProblem(ps, "store.path", "") {
		t.Errorf("unknown key under store: %v", ps)
	}
}

func TestLeaseTTL(t *testing.T) {
	if c := mustParse(t, minimal, noEnv); c.LeaseTTL != DefaultLeaseTTL {
		t.Errorf("default lease ttl %v, want %v", c.LeaseTTL, DefaultLeaseTTL)
	}
	if c := mustParse(t, minimal+"store:\n  url: postgres://bot@db/x\n  lease_ttl: 30s\n", noEnv); c.LeaseTTL.Seconds() != 30 {
		t.Errorf("lease_ttl 30s read as %v", c.LeaseTTL)
	}
	for _, tc := range []struct{ v, want string }{
		{"1s", "must be at least 3s"},
		{"soon", "want a duration like"},
	} {
		ps := problems(t, minimal+"store:\n  url: postgres://bot@db/x\n  lease_ttl: "+tc.v+"\n", noEnv)
		if !hasProblem(ps, "store.lease_ttl", tc.want) {
			t.Errorf("lease_ttl %s: %v, want a problem saying %q", tc.v, ps, tc.want)
		}
	}
}
