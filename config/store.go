package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Store settings: state lives in SQLite at state_path unless store.url (or
// DEPLOYBOT_DATABASE_URL) names a PostgreSQL database. The URL is not a
// secret; its password is, so it comes only from the environment:
// DEPLOYBOT_DATABASE_PASSWORD, else PGPASSWORD, else one written into
// DEPLOYBOT_DATABASE_URL itself.

// storeURL reads store.url and store.lease_ttl from the file.
func (w *walker) storeURL(f fieldSet) (string, time.Duration) {
	s, ok := w.section(f, "store", "url", "lease_ttl")
	if !ok {
		return "", DefaultLeaseTTL
	}
	return w.str(s, "url", false, "", func(v string) string {
		_, msg := splitStoreURL(v, "store.url")
		return msg
	}), w.leaseTTL(s)
}

// storeEnv applies DEPLOYBOT_DATABASE_URL (which wins over the file, like
// every deploy-time override) and reads the password.
func (w *walker) storeEnv(c *Config, getenv func(string) string) {
	var fromURL string
	if v := strings.TrimSpace(getenv("DEPLOYBOT_DATABASE_URL")); v != "" {
		u, msg := splitStoreURL(v, "")
		if msg != "" {
			w.env("DEPLOYBOT_DATABASE_URL", msg)
			return
		}
		if pw, ok := u.User.Password(); ok {
			fromURL = pw
			u.User = url.User(u.User.Username())
		}
		c.StoreURL = u.String()
	}
	for _, pw := range []string{getenv("DEPLOYBOT_DATABASE_PASSWORD"), getenv("PGPASSWORD"), fromURL} {
		if pw = strings.TrimRight(pw, "\r\n"); pw != "" {
			c.Secrets.DatabasePassword = Secret(pw)
			break
		}
	}
}

// splitStoreURL checks a PostgreSQL URL. from is the file key it came from,
// "" for the environment (where a password may be written in it). Messages
// never repeat the URL: it may hold a password.
func splitStoreURL(v, from string) (*url.URL, string) {
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" {
		return nil, "is not a URL; want postgres://USER@HOST:5432/DATABASE (leave it out to keep state in SQLite at state_path)"
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, fmt.Sprintf("unknown scheme %s: deploybot keeps state in PostgreSQL (postgres://USER@HOST:5432/DATABASE) or, without this setting, in SQLite at state_path", quote(u.Scheme))
	}
	if u.Host == "" {
		return nil, "names no host; want postgres://USER@HOST:5432/DATABASE"
	}
	_, pw := u.User.Password()
	if u.Query().Has("password") {
		pw = true
	}
	if pw && from != "" {
		return nil, "holds a password, and secrets never go in this file: remove it and set DEPLOYBOT_DATABASE_PASSWORD (or PGPASSWORD) in the environment"
	}
	if u.Query().Has("password") {
		return nil, "has a password query parameter; write it as postgres://USER:PASSWORD@HOST/… or set DEPLOYBOT_DATABASE_PASSWORD"
	}
	return u, ""
}

// DefaultLeaseTTL is store.lease_ttl when unset: a dead replica's runs are
// taken over within about this long, and a holder cut off from the
// database stops acting on them a little sooner.
const DefaultLeaseTTL = 15 * time.Second

// minLeaseTTL keeps renewals (every ttl/3) well clear of a busy database's
// answer time: a shorter lease would be lost under ordinary load.
const minLeaseTTL = 3 * time.Second

// leaseTTL reads store.lease_ttl: how long a replica's hold on a run lasts
// without renewal (PostgreSQL only; one SQLite process needs none).
func (w *walker) leaseTTL(s fieldSet) time.Duration {
	if s.vals["lease_ttl"] == nil {
		return DefaultLeaseTTL
	}
	d, ok := w.duration(s.vals["lease_ttl"], s.at("lease_ttl"))
	if !ok {
		return DefaultLeaseTTL
	}
	if d < minLeaseTTL {
		w.add(s.vals["lease_ttl"], s.at("lease_ttl"), fmt.Sprintf("must be at least %s (renewals every third of it must reach the database in time), got %s", minLeaseTTL, d))
		return DefaultLeaseTTL
	}
	return d
}
