package terraform

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
)

const (
	module         = "ingestion-server"
	target         = "module.ingestion-server"
	taskDefAddress = "module.ingestion-server.terraform_data.task_definition"
	serviceAddress = "module.ingestion-server.terraform_data.service"
	imageRepo      = "ghcr.io/wordpress/openverse-ingestion_server:"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// deployedImage reads the image of the task definition from state.
func deployedImage(t *testing.T, ctx context.Context, r *Runner) string {
	t.Helper()
	vals, err := r.ResourceValues(ctx, taskDefAddress)
	if err != nil {
		t.Fatal(err)
	}
	input, _ := vals["input"].(map[string]any)
	image, _ := input["image"].(string)
	return image
}

func planAndApply(t *testing.T, ctx context.Context, r *Runner, planFile string) {
	t.Helper()
	if _, err := r.Plan(ctx, planFile, target); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, planFile, nil); err != nil {
		t.Fatal(err)
	}
}

func findLine(t *testing.T, d Diff, address string) Line {
	t.Helper()
	for _, l := range d.Lines {
		if l.Address == address {
			return l
		}
	}
	t.Fatalf("no line for %s in %+v", address, d.Lines)
	return Line{}
}

func findAttr(t *testing.T, l Line, name string) AttrChange {
	t.Helper()
	for _, a := range l.Attrs {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("%s: no attribute %s in %+v", l.Address, name, l.Attrs)
	return AttrChange{}
}

func TestDevBumpPlanApply(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	repo := copyExample(t)
	dir := filepath.Join(repo, "environments", "dev")
	r, log := newRunner(t, dir)

	if v, err := r.Version(ctx); err != nil || v != "1.5.7" {
		t.Fatalf("Version = %q, %v", v, err)
	}
	if err := r.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "Terraform has been successfully initialized") {
		t.Errorf("init output did not reach Log:\n%s", log.String())
	}
	// The currently released version is what is in state before the deploy.
	planAndApply(t, ctx, r, filepath.Join(t.TempDir(), "initial.tfplan"))
	if got := deployedImage(t, ctx, r); got != imageRepo+oldTag {
		t.Fatalf("initial image %q", got)
	}

	if changed, err := SetModuleAttribute(filepath.Join(dir, "ingestion-server.tf"), module, "image_tag", cty.StringVal(newTag)); err != nil || !changed {
		t.Fatalf("bump: %v %v", changed, err)
	}
	planFile := filepath.Join(t.TempDir(), "dev.tfplan")
	hasChanges, err := r.Plan(ctx, planFile, target)
	if err != nil || !hasChanges {
		t.Fatalf("plan: hasChanges=%v err=%v", hasChanges, err)
	}
	plan, err := r.ShowJSON(ctx, planFile)
	if err != nil {
		t.Fatal(err)
	}
	d := Summarize(plan)
	if d.Add != 0 || d.Change != 2 || d.Destroy != 0 || d.Replace != 0 || d.NoChanges {
		t.Fatalf("counts %+v", d)
	}
	if got := d.SummaryLine(); got != "+0 to add, ~2 to change, -0 to destroy, ±0 to replace" {
		t.Fatalf("summary %q", got)
	}
	taskDef := findLine(t, d, taskDefAddress)
	if taskDef.Action != ActionUpdate || taskDef.Warning {
		t.Fatalf("task definition line %+v", taskDef)
	}
	image := findAttr(t, taskDef, "input.image")
	if image.Before != `"`+imageRepo+oldTag+`"` || image.After != `"`+imageRepo+newTag+`"` {
		t.Fatalf("image change %+v", image)
	}
	if a := findAttr(t, findLine(t, d, serviceAddress), "input.task_definition"); a.After != UnknownValue {
		t.Fatalf("service task_definition after = %q, want %q", a.After, UnknownValue)
	}
	text, complete := d.Render(3000)
	wantLine := `    input.image: "` + imageRepo + oldTag + `" → "` + imageRepo + newTag + `"`
	if !complete || !strings.Contains(text, "~ "+taskDefAddress+" (update)\n") || !strings.Contains(text, wantLine) || strings.Contains(text, warningMark) {
		t.Fatalf("render (complete=%v):\n%s", complete, text)
	}

	// The attached file is made from the same decoded plan, values whole.
	if full := d.Text(); !strings.Contains(full, "~ "+taskDefAddress+" (update)\n") || !strings.Contains(full, wantLine) {
		t.Fatalf("full text:\n%s", full)
	}

	// The approved plan is applied unchanged.
	sum, err := FileSHA256(planFile)
	if err != nil {
		t.Fatal(err)
	}
	var progress testLog
	if err := r.Apply(ctx, planFile, &progress); err != nil {
		t.Fatal(err)
	}
	if after, _ := FileSHA256(planFile); after != sum {
		t.Fatal("apply modified the plan file")
	}
	if !strings.Contains(progress.String(), "Apply complete! Resources: 0 added, 2 changed, 0 destroyed.") {
		t.Fatalf("apply progress:\n%s", progress.String())
	}
	if got := deployedImage(t, ctx, r); got != imageRepo+newTag {
		t.Fatalf("image in state after apply %q, want the new tag", got)
	}

	// Nothing left to do afterwards.
	again := filepath.Join(t.TempDir(), "again.tfplan")
	hasChanges, err = r.Plan(ctx, again, target)
	if err != nil || hasChanges {
		t.Fatalf("re-plan: hasChanges=%v err=%v", hasChanges, err)
	}
	plan, err = r.ShowJSON(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if d := Summarize(plan); !d.NoChanges {
		t.Fatalf("re-plan diff %+v", d)
	}
}

func TestProdApplyRequiresDataRefreshCleared(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	repo := copyExample(t)
	dir := filepath.Join(repo, "environments", "prod")
	file := filepath.Join(dir, "ingestion-server.tf")
	r, _ := newRunner(t, dir)
	if err := r.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := SetModuleAttribute(file, module, "image_tag", cty.StringVal(newTag)); err != nil {
		t.Fatal(err)
	}
	bumped := readFile(t, file)

	// Flag false: Terraform checks the precondition while planning, so the
	// deploy stops before any plan file exists to be applied.
	planFile := filepath.Join(t.TempDir(), "prod.tfplan")
	writeFile(t, planFile, "stale plan from an earlier run")
	_, err := r.Plan(ctx, planFile, target)
	var tfErr *Error
	if !errors.As(err, &tfErr) {
		t.Fatalf("plan with data_refresh_cleared=false: err = %v, want *Error", err)
	}
	for _, s := range []string{"Resource precondition failed", "data_refresh_cleared"} {
		if !strings.Contains(tfErr.Stderr, s) || !strings.Contains(err.Error(), s) {
			t.Errorf("error does not carry %q:\n%v", s, err)
		}
	}
	if tfErr.Command != "plan" || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("error %v", err)
	}
	if _, statErr := os.Stat(planFile); !errors.Is(statErr, os.ErrNotExist) {
		t.Fatal("a failed plan left a plan file behind")
	}
	if err := r.Apply(ctx, planFile, nil); err == nil {
		t.Fatal("apply without a plan file succeeded")
	}
	if st, err := r.State(ctx); err != nil || FindResource(st, taskDefAddress) != nil {
		t.Fatalf("state after refused deploy: %v %v", st, err)
	}

	// Flag true: plan and apply go through.
	if _, err := SetModuleAttribute(file, module, "data_refresh_cleared", cty.True); err != nil {
		t.Fatal(err)
	}
	hasChanges, err := r.Plan(ctx, planFile, target)
	if err != nil || !hasChanges {
		t.Fatalf("plan with flag set: %v %v", hasChanges, err)
	}
	if err := r.Apply(ctx, planFile, nil); err != nil {
		t.Fatal(err)
	}
	if got := deployedImage(t, ctx, r); got != imageRepo+newTag {
		t.Fatalf("image in state %q", got)
	}

	// Restoring the flag gives back exactly the bumped file for the PR, and
	// the gate is closed again.
	if _, err := SetModuleAttribute(file, module, "data_refresh_cleared", cty.False); err != nil {
		t.Fatal(err)
	}
	if readFile(t, file) != bumped {
		t.Fatal("restoring the flag changed the file")
	}
	if _, err := r.Plan(ctx, planFile, target); err == nil {
		t.Fatal("plan succeeded after the flag was restored to false")
	}
}

func TestRenderRealDestroyAndReplace(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dir := t.TempDir()
	main := filepath.Join(dir, "main.tf")
	writeFile(t, main, `variable "generation" {
  type    = number
  default = 1
}

resource "terraform_data" "kept" {
  triggers_replace = var.generation
  input            = "kept"
}

resource "terraform_data" "removed" {
  input = "bye"
}
`)
	r, _ := newRunner(t, dir)
	if err := r.Init(ctx); err != nil {
		t.Fatal(err)
	}
	planFile := filepath.Join(dir, "p.tfplan")
	if _, err := r.Plan(ctx, planFile, ""); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, planFile, nil); err != nil {
		t.Fatal(err)
	}
	writeFile(t, main, `resource "terraform_data" "kept" {
  triggers_replace = 2
  input            = "kept"
}
`)
	if _, err := r.Plan(ctx, planFile, ""); err != nil {
		t.Fatal(err)
	}
	plan, err := r.ShowJSON(ctx, planFile)
	if err != nil {
		t.Fatal(err)
	}
	d := Summarize(plan)
	if d.Replace != 1 || d.Destroy != 1 || d.Add != 0 || d.Change != 0 {
		t.Fatalf("counts %+v", d)
	}
	text, complete := d.Render(0)
	for _, want := range []string{
		"+0 to add, ~0 to change, -1 to destroy, ±1 to replace",
		warningMark + " -/+ terraform_data.kept (replace)",
		"    triggers_replace: 1 → 2 (forces replacement)",
		warningMark + " - terraform_data.removed (delete)",
	} {
		if !complete || !strings.Contains(text, want) {
			t.Errorf("render lacks %q:\n%s", want, text)
		}
	}
}

func TestApplyOnlySavedPlans(t *testing.T) {
	t.Parallel()
	r := &Runner{Bin: "/nonexistent/terraform", Dir: t.TempDir()}
	for _, p := range []string{"", r.Dir, filepath.Join(r.Dir, "missing.tfplan")} {
		if err := r.Apply(t.Context(), p, nil); err == nil {
			t.Errorf("Apply(%q) succeeded", p)
		}
	}
	if _, err := r.Plan(t.Context(), "", ""); err == nil {
		t.Error("Plan without a plan file succeeded")
	}
}

// fakeTerraform writes a shell script standing in for terraform, for the
// failure modes real Terraform cannot be made to show on demand.
func fakeTerraform(t *testing.T, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "terraform")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestErrorsCarryStderrTailWithoutSecrets(t *testing.T) {
	// t.Setenv: not parallel.
	t.Setenv("SLACK_BOT_TOKEN", "xoxb-must-not-leak-0000")
	bin := fakeTerraform(t, `
i=0
while [ $i -lt 100 ]; do echo "noise line $i" >&2; i=$((i+1)); done
printf '\033[31mError:\033[0m could not use key %s\n' "$AWS_SECRET_ACCESS_KEY" >&2
echo "slack token: ${SLACK_BOT_TOKEN:-withheld}" >&2
echo "automation: $TF_IN_AUTOMATION" >&2
exit 1
`)
	var log testLog
	r := &Runner{
		Bin: bin, Dir: t.TempDir(), Log: &log,
		Env: map[string]string{"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
	}
	_, err := r.Plan(t.Context(), filepath.Join(t.TempDir(), "p.tfplan"), "")
	var tfErr *Error
	if !errors.As(err, &tfErr) {
		t.Fatalf("err = %v", err)
	}
	msg := err.Error()
	for _, leak := range []string{"wJalrXUtnFEMI", "xoxb-must-not-leak", "\x1b"} {
		if strings.Contains(msg, leak) || strings.Contains(log.String(), leak) {
			t.Errorf("%q leaked:\n%s\nlog:\n%s", leak, msg, log.String())
		}
	}
	if strings.Contains(msg, "noise line 10\n") {
		t.Errorf("error carries all of stderr, not its tail:\n%s", msg)
	}
	for _, want := range []string{"terraform plan in ", "exit status 1", "Error: could not use key [redacted]", "slack token: withheld", "automation: 1", "noise line 99"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if n := strings.Count(tfErr.Stderr, "\n") + 1; n > 40 {
		t.Errorf("stderr tail has %d lines", n)
	}
	if !strings.Contains(log.String(), "noise line 0\n") {
		t.Error("Log did not receive stderr as it streamed")
	}

	r.Env = map[string]string{"TF_VAR_image_tag": "x"}
	if err := r.Init(t.Context()); err == nil || !strings.Contains(err.Error(), "TF_VAR_image_tag") || strings.Contains(err.Error(), "=x") {
		t.Fatalf("prohibited Env key: %v", err)
	}
}

func TestCancelInterruptsTerraform(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "interrupted")
	bin := fakeTerraform(t, `
sleep 30 >/dev/null 2>&1 &
pid=$!
trap 'echo "Interrupt received." >&2; touch `+marker+`; kill $pid; exit 130' INT
echo "Acquiring state lock."
wait
`)
	r := &Runner{Bin: bin, Dir: t.TempDir(), WaitDelay: 5 * time.Second}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	_, err := r.Plan(ctx, filepath.Join(t.TempDir(), "p.tfplan"), "")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("cancel took %v", elapsed)
	}
	if _, statErr := os.Stat(marker); statErr != nil {
		t.Fatal("terraform did not get SIGINT")
	}
	if !strings.Contains(err.Error(), "Interrupt received.") {
		t.Errorf("error lacks the interrupt message: %v", err)
	}
}
