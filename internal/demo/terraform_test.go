package demo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTerraform writes a script named terraform that reports version v.
func fakeTerraform(t *testing.T, v string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "terraform")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho '"+v+"'\necho 'on linux_amd64'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// Terraform on PATH is used only when it is 1.5.7; anything else gets an
// answer that says what to do.
func TestFindTerraform(t *testing.T) {
	t.Chdir(t.TempDir()) // outside the module: no bin/terraform to find
	none := func(string) string { return "" }

	t.Setenv("PATH", filepath.Dir(fakeTerraform(t, "Terraform v1.5.7")))
	if bin, err := FindTerraform(none); err != nil || filepath.Base(bin) != "terraform" {
		t.Errorf("1.5.7 on PATH: %q, %v", bin, err)
	}

	t.Setenv("PATH", filepath.Dir(fakeTerraform(t, "Terraform v1.9.8")))
	_, err := FindTerraform(none)
	if !errors.Is(err, ErrNoTerraform) || !strings.Contains(err.Error(), "is Terraform v1.9.8") || !strings.Contains(err.Error(), "make terraform") {
		t.Errorf("another release on PATH: %v", err)
	}

	t.Setenv("PATH", t.TempDir())
	if _, err := FindTerraform(none); !errors.Is(err, ErrNoTerraform) {
		t.Errorf("no Terraform at all: %v", err)
	}

	// DEPLOYBOT_TERRAFORM wins, and is checked too.
	good := fakeTerraform(t, "Terraform v1.5.7")
	if bin, err := FindTerraform(func(k string) string { return map[string]string{"DEPLOYBOT_TERRAFORM": good}[k] }); err != nil || bin != good {
		t.Errorf("DEPLOYBOT_TERRAFORM: %q, %v", bin, err)
	}
	bad := fakeTerraform(t, "Terraform v1.6.0")
	if _, err := FindTerraform(func(k string) string { return map[string]string{"DEPLOYBOT_TERRAFORM": bad}[k] }); err == nil || !strings.Contains(err.Error(), "DEPLOYBOT_TERRAFORM="+bad+" is Terraform v1.6.0") {
		t.Errorf("DEPLOYBOT_TERRAFORM of another release: %v", err)
	}
}
