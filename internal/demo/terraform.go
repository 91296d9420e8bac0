package demo

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// WantTerraform is the release the example infrastructure is written for.
const WantTerraform = "Terraform v1.5.7"

// ErrNoTerraform says what to do when Terraform 1.5.7 cannot be found.
var ErrNoTerraform = errors.New("the demo runs Terraform 1.5.7 for real and cannot find it. " +
	"In the deploybot checkout run `make terraform` (it builds bin/terraform from the Go module proxy, a few minutes the first time), " +
	"or set DEPLOYBOT_TERRAFORM to a Terraform 1.5.7 binary")

// FindTerraform looks for Terraform 1.5.7: $DEPLOYBOT_TERRAFORM; bin/terraform
// beside the executable (`make build` puts both in bin/) or in the Go module
// the working directory is in (`go run`); else `terraform` on PATH, but only
// when it is 1.5.7, since other releases write state this one cannot read.
func FindTerraform(getenv func(string) string) (string, error) {
	if bin := getenv("DEPLOYBOT_TERRAFORM"); bin != "" {
		if v := tfVersion(bin); v != WantTerraform {
			return "", fmt.Errorf("DEPLOYBOT_TERRAFORM=%s is %s, not %s: %w", bin, describe(v), WantTerraform, ErrNoTerraform)
		}
		return bin, nil
	}
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "terraform"))
	}
	if dir, err := os.Getwd(); err == nil {
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				candidates = append(candidates, filepath.Join(dir, "bin", "terraform"))
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if p, err := exec.LookPath("terraform"); err == nil {
		candidates = append(candidates, p)
	}
	var seen []string
	for _, c := range candidates {
		if _, err := os.Stat(c); err != nil {
			continue
		}
		v := tfVersion(c)
		if v == WantTerraform {
			return c, nil
		}
		seen = append(seen, fmt.Sprintf("%s is %s", c, describe(v)))
	}
	if len(seen) > 0 {
		return "", fmt.Errorf("%s; %w", strings.Join(seen, "; "), ErrNoTerraform)
	}
	return "", ErrNoTerraform
}

func tfVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return ""
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(first)
}

func describe(v string) string {
	if v == "" {
		return "not a working Terraform"
	}
	return v
}
