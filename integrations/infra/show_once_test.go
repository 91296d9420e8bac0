package infra

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/testtool"
	"github.com/deploybot/deploybot/steps"
)

// Terraform's show of a large plan takes seconds: a plan is shown once,
// and the message, the attached file and apply's masking all come from
// that one `terraform show -json`.
func TestAPlanIsShownOnce(t *testing.T) {
	t.Parallel()
	bin := testtool.Terraform(t)
	calls := filepath.Join(t.TempDir(), "calls")
	wrapper := filepath.Join(t.TempDir(), "terraform")
	script := "#!/bin/sh\necho \"$1\" >> '" + calls + "'\nexec '" + bin + "' \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	remote := infraRepo(t, `
variable "token" {
  type      = string
  sensitive = true
  default   = "tok-0123456789-secret"
}

resource "terraform_data" "app" {
  input = {
    image = "rel-2"
    token = var.token
  }
}
`)
	in := New(&config.Infra{CloneURL: remote, BaseBranch: "main", Workdir: t.TempDir(), TerraformBin: wrapper, TerraformEnv: config.DefaultTerraformEnv}, nil)
	t.Cleanup(func() { in.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	tree, err := in.Tree(ctx, &steps.Run{ID: "run-1", Service: "app", Version: "rel-2"})
	if err != nil {
		t.Fatal(err)
	}
	env := &config.Environment{Name: "dev", Dir: "environments/dev"}
	plan, err := tree.Plan(ctx, env, 3000)
	if err != nil {
		t.Fatal(err)
	}
	var progress syncBuf
	if err := tree.Apply(ctx, env, &progress); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(calls)
	// (terraform-exec asks `terraform version` before init.)
	if got := strings.Join(strings.Fields(string(b)), " "); strings.Count(got, "show") != 1 || !strings.HasSuffix(got, "init plan show apply") {
		t.Errorf("terraform ran %q, want init, plan, one show and apply", got)
	}
	// The attached file is the whole plan, the secret masked.
	for _, want := range []string{"+1 to add", "+ terraform_data.app (create)", `input.image: "rel-2"`} {
		if !strings.Contains(plan.Full, want) {
			t.Errorf("attached plan lacks %q:\n%s", want, plan.Full)
		}
	}
	if strings.Contains(plan.Full+plan.Rendered+progress.String(), "tok-0123456789-secret") {
		t.Errorf("the sensitive value reached the chat:\n%s\n%s", plan.Full, progress.String())
	}
}
