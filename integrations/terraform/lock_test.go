package terraform

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A real apply held in flight: while it runs, LockInfo shows its lock as
// held, a second command fails with Terraform's own "Error acquiring the
// state lock" (which ParseLockError reads), and ForceUnlock refuses to
// touch a local lock a live process holds. Once the applying Terraform is
// gone but its lock record stays (as after a kill), the lock shows as not
// held, and ForceUnlock removes exactly that lock.
func TestStateLockSeenParsedAndForceUnlocked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	started, hold := filepath.Join(dir, "started"), filepath.Join(dir, "hold")
	root := filepath.Join(dir, "root")
	writeFile(t, filepath.Join(root, "main.tf"), fmt.Sprintf(`
terraform {
  backend "local" {}
}

resource "terraform_data" "slow" {
  provisioner "local-exec" {
    command = "touch '%s'; while [ -e '%s' ]; do sleep 0.1; done"
  }
}
`, started, hold))
	r, _ := newRunner(t, root)
	state := filepath.Join(dir, "state", "env.tfstate")
	if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := r.Init(ctx, "path="+state); err != nil {
		t.Fatal(err)
	}
	if l, err := r.LockInfo(); err != nil || l != nil {
		t.Fatalf("LockInfo before anything ran = %+v, %v", l, err)
	}
	plan := filepath.Join(dir, "p.tfplan")
	if _, err := r.Plan(ctx, plan, ""); err != nil {
		t.Fatal(err)
	}
	writeFile(t, hold, "")
	t.Cleanup(func() { os.Remove(hold) })
	applied := make(chan error, 1)
	go func() { applied <- r.Apply(ctx, plan, nil) }()
	for !exists(started) {
		select {
		case err := <-applied:
			t.Fatalf("apply ended early: %v", err)
		case <-ctx.Done():
			t.Fatal("the apply never started its provisioner")
		case <-time.After(50 * time.Millisecond):
		}
	}

	l, err := r.LockInfo()
	if err != nil || l == nil {
		t.Fatalf("LockInfo during apply = %+v, %v", l, err)
	}
	if !l.Held || !l.Local || l.Operation != "OperationTypeApply" || l.ID == "" || l.Who == "" || l.Version != "1.5.7" || l.Created.IsZero() {
		t.Errorf("lock during apply = %+v", l)
	}
	_, perr := r.Plan(ctx, filepath.Join(dir, "q.tfplan"), "")
	parsed := ParseLockError(fmt.Sprint(perr))
	if parsed == nil {
		t.Fatalf("plan during apply failed with %v, which ParseLockError does not read", perr)
	}
	if parsed.ID != l.ID || parsed.Operation != l.Operation || parsed.Who != l.Who || parsed.Version != "1.5.7" || !parsed.Created.Equal(l.Created) {
		t.Errorf("parsed lock %+v, want %+v", parsed, l)
	}
	if err := r.ForceUnlock(ctx, l.ID); err == nil || !strings.Contains(err.Error(), "still holds") {
		t.Errorf("ForceUnlock of a held local lock = %v, want a refusal", err)
	}

	// Keep the record, let the apply finish, then put the record back: a
	// lock whose Terraform is gone.
	record, err := os.ReadFile(lockInfoPath(state))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(hold)
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	if l, err := r.LockInfo(); err != nil || l != nil {
		t.Fatalf("LockInfo after the apply = %+v, %v", l, err)
	}
	writeFile(t, lockInfoPath(state), string(record))
	stale, err := r.LockInfo()
	if err != nil || stale == nil || stale.Held || stale.ID != l.ID {
		t.Fatalf("LockInfo of a left-over record = %+v, %v", stale, err)
	}
	if err := r.ForceUnlock(ctx, "not-"+l.ID); err == nil || !strings.Contains(err.Error(), l.ID) {
		t.Errorf("ForceUnlock of another ID = %v, want a refusal naming the real lock", err)
	}
	if err := r.ForceUnlock(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lockInfoPath(state)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the lock record is still there: %v", err)
	}
}

func TestParseLockErrorIgnoresOtherErrors(t *testing.T) {
	if l := ParseLockError("Error: Invalid reference\n  on main.tf line 3"); l != nil {
		t.Errorf("ParseLockError(other) = %+v", l)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
