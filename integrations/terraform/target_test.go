package terraform

import (
	"strings"
	"testing"
)

// What Terraform 1.5.7 prints at the end of a targeted apply (-no-color).
const targetedApply = `module.ingestion-server.terraform_data.service: Creating...
module.ingestion-server.terraform_data.service: Creation complete after 0s [id=727602ea]

Warning: Applied changes may be incomplete

The plan was created with the -target option in effect, so some changes
requested in the configuration may have been ignored and the output values
may not be fully updated. Run the following command to verify that no other
changes are pending:
    terraform plan
	
Note that the -target option is not suitable for routine use, and is provided
only for exceptional situations such as recovering from errors or mistakes,
or when Terraform specifically suggests to use it as part of an error
message.

Apply complete! Resources: 2 added, 0 changed, 0 destroyed.

Outputs:

image = "ghcr.io/wordpress/openverse-ingestion_server:rel-2024.09.09.05.40.20"
`

func TestTargetNotesCollapseTheWarning(t *testing.T) {
	note := TargetNote("module.ingestion-server")
	framed := strings.ReplaceAll(strings.ReplaceAll(targetedApply, "\nWarning", "\n╷\n│ Warning"), "message.\n", "│ message.\n╵\n")
	for _, tc := range []struct {
		name, in, want string
	}{
		{"apply", targetedApply, `module.ingestion-server.terraform_data.service: Creating...
module.ingestion-server.terraform_data.service: Creation complete after 0s [id=727602ea]

` + note + `

Apply complete! Resources: 2 added, 0 changed, 0 destroyed.

Outputs:

image = "ghcr.io/wordpress/openverse-ingestion_server:rel-2024.09.09.05.40.20"
`},
		{"plan", "Warning: Resource targeting is in effect\n\nYou are creating a plan with the -target option, which means that the result\nof this plan may not represent all of the changes requested by the current\nconfiguration.\n\nThe -target option is not for routine use, and is provided only for\nexceptional situations such as recovering from errors or mistakes, or when\nTerraform specifically suggests to use it as part of an error message.\n", note + "\n"},
		{"cut short", "Warning: Applied changes may be incomplete\n\nThe plan was created", note + "\n"},
		{"other wording", "Warning: Applied changes may be incomplete\n\nSomething new.\nApply complete! Resources: 1 added.\n", note + "\nApply complete! Resources: 1 added.\n"},
		{"other warning", "Warning: Deprecated attribute\n\nuse x\n", "Warning: Deprecated attribute\n\nuse x\n"},
		{"no warning", "a\nb", "a\nb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Written in small pieces, as a pipe delivers it.
			var got strings.Builder
			f := TargetNotes(&got, "module.ingestion-server")
			for in := tc.in; in != ""; {
				n := min(7, len(in))
				if _, err := f.Write([]byte(in[:n])); err != nil {
					t.Fatal(err)
				}
				in = in[n:]
			}
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got.String(), tc.want)
			}
		})
	}
	t.Run("framed", func(t *testing.T) {
		var got strings.Builder
		f := TargetNotes(&got, "module.ingestion-server")
		_, _ = f.Write([]byte(framed))
		_ = f.Flush()
		if strings.Contains(got.String(), "-target option is not") || !strings.Contains(got.String(), note) || !strings.Contains(got.String(), "Apply complete!") {
			t.Errorf("framed warning:\n%s", got.String())
		}
	})
}
