//go:build unix

package infra

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/testtool"
	"github.com/deploybot/deploybot/steps"
)

const localStateTF = `
terraform {
  backend "local" {}
}

variable "password" {
  type      = string
  sensitive = true
  default   = "state-holds-me-in-clear"
}

resource "terraform_data" "app" {
  input = var.password
}
`

// Everything the bot writes under infra.workdir is for its user only, even
// under a umask that would make it world-readable: the workdir, the run
// checkouts, the plan files and the local state hold secrets in clear.
func TestWorkdirPlanAndStateAreOwnerOnly(t *testing.T) {
	// Not parallel: the umask is the process's.
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	bin := testtool.Terraform(t)
	remote := infraRepo(t, localStateTF)
	workdir := filepath.Join(t.TempDir(), "work")
	if err := os.Mkdir(workdir, 0o777); err != nil { // an operator's mkdir
		t.Fatal(err)
	}
	in := New(&config.Infra{CloneURL: remote, BaseBranch: "main", Workdir: workdir, TerraformBin: bin, TerraformEnv: config.DefaultTerraformEnv}, nil)
	t.Cleanup(func() { in.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	tree, err := in.Tree(ctx, &steps.Run{ID: "run-7", Service: "ingestion-server", Version: "rel-1"})
	if err != nil {
		t.Fatal(err)
	}
	env := &config.Environment{Name: "dev", Dir: "environments/dev", BackendConfig: map[string]string{"path": "{workdir}/state/dev.tfstate"}}
	if _, err := tree.Plan(ctx, env, 3000); err != nil {
		t.Fatal(err)
	}
	if err := tree.Apply(ctx, env, nil); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]fs.FileMode{
		workdir:                                                0o700,
		filepath.Join(workdir, "runs"):                         0o700,
		filepath.Join(workdir, "runs", "run-7"):                0o700,
		filepath.Join(workdir, "plans", "run-7"):               0o700,
		filepath.Join(workdir, "plans"):                        0o700,
		filepath.Join(workdir, "state"):                        0o700,
		filepath.Join(workdir, "plans", "run-7", "dev.tfplan"): 0o600,
		filepath.Join(workdir, "state", "dev.tfstate"):         0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
	}
}
