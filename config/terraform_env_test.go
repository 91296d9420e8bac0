package config

import (
	"slices"
	"strings"
	"testing"
)

func TestInfraTerraformEnv(t *testing.T) {
	c := mustParse(t, minimal+"infra: { clone_url: /srv/infra }\n", noEnv)
	if !slices.Equal(c.Infra.TerraformEnv, []string{"AWS_*", "TF_TOKEN_*"}) {
		t.Errorf("default terraform_env = %v, want [AWS_* TF_TOKEN_*]", c.Infra.TerraformEnv)
	}
	c = mustParse(t, minimal+"infra:\n  clone_url: /srv/infra\n  terraform_env: [AWS_*, GOOGLE_APPLICATION_CREDENTIALS]\n", noEnv)
	if !slices.Equal(c.Infra.TerraformEnv, []string{"AWS_*", "GOOGLE_APPLICATION_CREDENTIALS"}) {
		t.Errorf("terraform_env = %v", c.Infra.TerraformEnv)
	}
	c = mustParse(t, minimal+"infra:\n  clone_url: /srv/infra\n  terraform_env: []\n", noEnv)
	if c.Infra.TerraformEnv == nil || len(c.Infra.TerraformEnv) != 0 {
		t.Errorf("explicit empty terraform_env = %#v, want an empty list (baseline only)", c.Infra.TerraformEnv)
	}

	for pattern, want := range map[string]string{
		"GITHUB_TOKEN": "would pass deploybot's own credentials to Terraform",
		"SLACK_*":      "would pass deploybot's own credentials to Terraform",
		"GIT*":         "would pass deploybot's own credentials to Terraform",
		`"*"`:          "would pass deploybot's own credentials to Terraform",
		"DEPLOYBOT_X":  "would pass deploybot's own credentials to Terraform",
		"AWS-*":        "is not a variable name or a prefix ending in *",
	} {
		p := problems(t, minimal+"infra:\n  clone_url: /srv/infra\n  terraform_env: [AWS_REGION, "+pattern+"]\n", noEnv)
		if len(p) != 1 || p[0].Path != "infra.terraform_env[1]" || !strings.Contains(p[0].Message, want) {
			t.Errorf("%s: problems %v, want one at infra.terraform_env[1] saying %q", pattern, p, want)
		}
	}
}
