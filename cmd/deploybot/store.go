package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"

	"go.uber.org/zap"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/integrations/postgres"
	"github.com/deploybot/deploybot/integrations/sqlite"
	"github.com/deploybot/deploybot/steps"
)

// Store is the state the program runs on: SQLite at state_path (one
// machine), or PostgreSQL at store.url (several replicas).
type Store interface {
	steps.Store
	// Ping says whether the store answers (readiness).
	Ping(ctx context.Context) error
	// SchemaVersion is the newest migration applied.
	SchemaVersion(ctx context.Context) (int, error)
	// OutboxDepth counts the messages not yet delivered (a metric).
	OutboxDepth(ctx context.Context) (int, error)
}

// openStore opens, and migrates, the store cfg names. where says which,
// without a password, for logs and messages.
func openStore(ctx context.Context, cfg *config.Config) (s Store, where string, err error) {
	if cfg.StoreURL == "" {
		db, err := sqlite.Open(cfg.StatePath)
		if err != nil {
			return nil, cfg.StatePath, fmt.Errorf("opening state %s: %w", cfg.StatePath, err)
		}
		return db, cfg.StatePath, nil
	}
	where = postgres.Redact(cfg.StoreURL)
	db, err := postgres.Open(ctx, cfg.StoreURL, postgres.WithPassword(cfg.Secrets.DatabasePassword.Reveal()))
	if err != nil {
		return nil, where, fmt.Errorf("opening state %s: %w", where, err)
	}
	return db, where, nil
}

// migrateStore is `deploybot migrate`: bring the configured store's schema
// up to date (opening it does) and say where it stands.
func (m *Main) migrateStore(ctx context.Context) error {
	s, where, err := openStore(ctx, m.Config)
	if err != nil {
		return err
	}
	defer s.Close()
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("reading the schema version of %s: %w", where, err)
	}
	fmt.Fprintf(m.Stdout, "%s: schema up to date (migration %d)\n", where, v)
	return nil
}

// exportStore is `deploybot export --to postgres://…`: copy the SQLite
// state at state_path into an empty PostgreSQL database, ids and order
// kept, for a team moving to replicas. The password comes from the
// environment, as for store.url.
func (m *Main) exportStore(ctx context.Context) error {
	to := m.ExportTo
	if to == "" {
		to = m.Config.StoreURL
	}
	if to == "" {
		return errors.New("export needs a target: --to postgres://USER@HOST:5432/DATABASE (the password from DEPLOYBOT_DATABASE_PASSWORD or PGPASSWORD)")
	}
	u, err := url.Parse(to)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return errors.New("--to: want postgres://USER@HOST:5432/DATABASE")
	}
	if _, pw := u.User.Password(); pw || u.Query().Has("password") {
		return errors.New("--to holds a password, which the process list and shell history would keep: remove it and set DEPLOYBOT_DATABASE_PASSWORD (or PGPASSWORD)")
	}
	if _, err := os.Stat(m.Config.StatePath); err != nil {
		return fmt.Errorf("no SQLite state to export at %s (state_path): %w", m.Config.StatePath, err)
	}
	src, err := sqlite.Open(m.Config.StatePath)
	if err != nil {
		return fmt.Errorf("opening state %s: %w", m.Config.StatePath, err)
	}
	defer src.Close()
	where := postgres.Redact(to)
	dst, err := postgres.Open(ctx, to, postgres.WithPassword(m.Config.Secrets.DatabasePassword.Reveal()))
	if err != nil {
		return fmt.Errorf("opening %s: %w", where, err)
	}
	defer dst.Close()
	tables, err := dst.Import(ctx, src)
	if err != nil {
		return fmt.Errorf("exporting %s to %s: %w", m.Config.StatePath, where, err)
	}
	fmt.Fprintf(m.Stdout, "exported %s to %s:", m.Config.StatePath, where)
	for _, t := range tables {
		fmt.Fprintf(m.Stdout, " %d %s", t.Rows, t.Name)
	}
	fmt.Fprintf(m.Stdout, "\nset store.url: %s (or DEPLOYBOT_DATABASE_URL) to run on it\n", where)
	return nil
}

// setReplica makes the engine one replica among several when the store is
// shared (PostgreSQL): it then executes only the runs whose lease it holds.
// SQLite is one process's file, and its engine runs as before.
func (m *Main) setReplica() {
	leases, ok := m.Store.(steps.Leases)
	if m.Config.StoreURL == "" || !ok {
		return
	}
	owner := replicaName()
	m.Engine.SetReplica(leases, owner, m.Config.LeaseTTL)
	m.Log.Info("running as a replica", zap.String("owner", owner), zap.Duration("lease_ttl", m.Config.LeaseTTL))
}

// replicaName names this process in lease rows: the host and pid say where
// to look, the random part keeps a restarted process with a reused pid from
// renewing its predecessor's leases.
func replicaName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}
