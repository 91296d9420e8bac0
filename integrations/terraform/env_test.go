package terraform

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/internal/testtool"
)

// envCapture is a root module whose apply writes the environment a
// local-exec provisioner really gets, which is what Terraform itself got.
const envCapture = `
resource "terraform_data" "env" {
  provisioner "local-exec" {
    command = "env > ${path.module}/child.env"
  }
}
`

func TestTerraformChildEnvironmentIsAllowListed(t *testing.T) {
	// t.Setenv: not parallel.
	testtool.SetForbiddenEnv(t)
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("LANG", "C.UTF-8")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "main.tf"), envCapture)
	r, _ := newRunner(t, dir)
	// A careless list: the allowed AWS_* must arrive, the bot's own
	// variables must not, even when named (config validation refuses such
	// a list; the runner holds the line anyway).
	r.InheritEnv = []string{"AWS_*", "SLACK_*", "GITHUB_TOKEN", "DEPLOYBOT_*", "SENTRY_DSN", "AIRFLOW_PASSWORD"}
	r.Env = map[string]string{"EXPLICIT_SETTING": "from-runner-env"}
	ctx := t.Context()
	if err := r.Init(ctx); err != nil {
		t.Fatal(err)
	}
	plan := filepath.Join(t.TempDir(), "env.tfplan")
	if _, err := r.Plan(ctx, plan, ""); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, plan, nil); err != nil {
		t.Fatal(err)
	}
	env := readFile(t, filepath.Join(dir, "child.env"))
	for _, want := range []string{"AWS_REGION=eu-west-1\n", "LANG=C.UTF-8\n", "EXPLICIT_SETTING=from-runner-env\n", "PATH="} {
		if !strings.Contains(env, want) {
			t.Errorf("child environment lacks %q:\n%s", want, env)
		}
	}
	testtool.AssertNoForbidden(t, "Terraform's child", env)
}

func TestTerraformDefaultInheritEnv(t *testing.T) {
	t.Setenv("AWS_PROFILE", "deploy")
	t.Setenv("TF_TOKEN_app_terraform_io", "tok")
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "/k.json")
	t.Setenv("TF_VAR_image_tag", "x") // terraform-exec manages TF_VAR_*
	env, err := (&Runner{}).environ()
	if err != nil {
		t.Fatal(err)
	}
	if env["AWS_PROFILE"] != "deploy" || env["TF_TOKEN_app_terraform_io"] != "tok" {
		t.Errorf("default list (AWS_*, TF_TOKEN_*) not inherited: %v", env)
	}
	for _, k := range []string{"GOOGLE_APPLICATION_CREDENTIALS", "TF_VAR_image_tag"} {
		if _, ok := env[k]; ok {
			t.Errorf("%s inherited without being listed", k)
		}
	}
	env, _ = (&Runner{InheritEnv: []string{"GOOGLE_APPLICATION_CREDENTIALS"}}).environ()
	if env["GOOGLE_APPLICATION_CREDENTIALS"] != "/k.json" || env["AWS_PROFILE"] != "" {
		t.Errorf("explicit list not used as given: %v", env)
	}
}
