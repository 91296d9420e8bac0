package testtool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgres is the server tests use when DEPLOYBOT_TEST_POSTGRES is
// unset: the development and CI machines' local PostgreSQL (trust auth).
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Postgres creates a database of its own for tb on the server named by
// DEPLOYBOT_TEST_POSTGRES (default DefaultPostgres), drops it when tb ends,
// and returns its DSN. An unreachable server fails tb in CI and skips it
// elsewhere.
func Postgres(tb testing.TB) string {
	tb.Helper()
	admin := os.Getenv("DEPLOYBOT_TEST_POSTGRES")
	if admin == "" {
		admin = DefaultPostgres
	}
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("DEPLOYBOT_TEST_POSTGRES is not a URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		Missing(tb, "PostgreSQL not reachable at "+u.Redacted()+" ("+err.Error()+"): start it or set DEPLOYBOT_TEST_POSTGRES to the DSN of a server where this user may CREATE DATABASE")
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "deploybot_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("creating test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Errorf("dropping test database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		// FORCE: a store the test left open must not keep the database.
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("dropping test database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
