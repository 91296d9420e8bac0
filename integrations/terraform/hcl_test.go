package terraform

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

const (
	oldTag = "rel-2023.07.03.17.52.00"
	newTag = "rel-2024.09.09.05.40.20"
)

func prodFile(t *testing.T) string {
	t.Helper()
	return filepath.Join(copyExample(t), "environments", "prod", "ingestion-server.tf")
}

func TestSetModuleAttributeKeepsCommentsAndLayout(t *testing.T) {
	path := prodFile(t)
	orig := readFile(t, path)
	if got := strings.Split(orig, "\n")[8]; got != "  data_refresh_cleared = false" {
		t.Fatalf("line 9 of the prod declaration is %q, the runbook expects the flag there", got)
	}

	changed, err := SetModuleAttribute(path, "ingestion-server", "image_tag", cty.StringVal(newTag))
	if err != nil || !changed {
		t.Fatalf("bump: changed=%v err=%v", changed, err)
	}
	bumped := readFile(t, path)
	want := strings.Replace(orig, `image_tag     = "`+oldTag+`" # last released image`, `image_tag     = "`+newTag+`" # last released image`, 1)
	if bumped != want {
		t.Fatalf("bump changed more than the tag:\n--- got\n%s\n--- want\n%s", bumped, want)
	}

	// Same value again: a no-op that leaves the file alone.
	info1, _ := os.Stat(path)
	changed, err = SetModuleAttribute(path, "ingestion-server", "image_tag", cty.StringVal(newTag))
	if err != nil || changed {
		t.Fatalf("repeat bump: changed=%v err=%v, want a no-op", changed, err)
	}
	info2, _ := os.Stat(path)
	if readFile(t, path) != bumped || !info1.ModTime().Equal(info2.ModTime()) {
		t.Fatal("a no-op bump rewrote the file")
	}

	// The runbook's flag round trip restores the file byte for byte.
	if changed, err := SetModuleAttribute(path, "ingestion-server", "data_refresh_cleared", cty.True); err != nil || !changed {
		t.Fatalf("set flag: changed=%v err=%v", changed, err)
	}
	if got := strings.Split(readFile(t, path), "\n")[8]; got != "  data_refresh_cleared = true" {
		t.Fatalf("line 9 after setting the flag: %q", got)
	}
	if v, err := ReadModuleAttribute(path, "ingestion-server", "data_refresh_cleared"); err != nil || !v.True() {
		t.Fatalf("read flag: %#v %v", v, err)
	}
	if _, err := SetModuleAttribute(path, "ingestion-server", "data_refresh_cleared", cty.False); err != nil {
		t.Fatal(err)
	}
	if readFile(t, path) != bumped {
		t.Fatal("restoring data_refresh_cleared = false did not give back the bumped file")
	}
}

func TestSetModuleAttributeFormatsLikeTerraformFmt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "main.tf")
	writeFile(t, path, `# keep me
module "api" {
  source = "./m"
  tag = "a" # trailing
  replicas = 2
}
`)
	if _, err := SetModuleAttribute(path, "api", "tag", cty.StringVal("b")); err != nil {
		t.Fatal(err)
	}
	want := `# keep me
module "api" {
  source   = "./m"
  tag      = "b" # trailing
  replicas = 2
}
`
	if got := readFile(t, path); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if _, err := SetModuleAttribute(path, "api", "replicas", cty.NumberIntVal(3)); err != nil {
		t.Fatal(err)
	}
	if v, err := ReadModuleAttribute(path, "api", "replicas"); err != nil || !v.Equals(cty.NumberIntVal(3)).True() {
		t.Fatalf("replicas = %#v, %v", v, err)
	}
}

func TestSetModuleAttributeErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ingestion-server.tf")
	writeFile(t, path, `module "ingestion-server" {
  source      = "../../modules/ingestion-server"
  image_tag   = var.image_tag
  templated   = "rel-${local.date}"
  environment = "production"
  cleared     = false
}

module "api" {
  source = "x"
}
`)
	cases := []struct {
		name        string
		path        string
		module      string
		attr        string
		value       cty.Value
		wantInError []string
	}{
		{"file missing", filepath.Join(dir, "nope.tf"), "ingestion-server", "image_tag", cty.StringVal(newTag),
			[]string{"nope.tf", "does not exist"}},
		{"no module block", path, "frontend", "image_tag", cty.StringVal(newTag),
			[]string{path, `no module "frontend" block`, `"api", "ingestion-server"`}},
		{"no attribute", path, "ingestion-server", "image", cty.StringVal(newTag),
			[]string{path, `module "ingestion-server" has no attribute "image"`}},
		{"reference expression", path, "ingestion-server", "image_tag", cty.StringVal(newTag),
			[]string{path, "image_tag", "var.image_tag", "not a literal"}},
		{"template expression", path, "ingestion-server", "templated", cty.StringVal(newTag),
			[]string{path, "templated", "${local.date}", "not a literal"}},
		{"type mismatch", path, "ingestion-server", "cleared", cty.StringVal("true"),
			[]string{path, "cleared", "bool", "string"}},
		{"unknown value", path, "ingestion-server", "environment", cty.UnknownVal(cty.String),
			[]string{path, "environment", "known"}},
	}
	before := readFile(t, path)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			changed, err := SetModuleAttribute(c.path, c.module, c.attr, c.value)
			if err == nil || changed {
				t.Fatalf("changed=%v err=%v, want an error", changed, err)
			}
			for _, s := range c.wantInError {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
	if readFile(t, path) != before {
		t.Fatal("a failed bump modified the file")
	}

	empty := filepath.Join(dir, "empty.tf")
	writeFile(t, empty, "# nothing here\n")
	if _, err := ReadModuleAttribute(empty, "ingestion-server", "image_tag"); err == nil || !strings.Contains(err.Error(), "declares no modules") {
		t.Fatalf("empty file: %v", err)
	}
	broken := filepath.Join(dir, "broken.tf")
	writeFile(t, broken, "module \"x\" {\n")
	if _, err := ReadModuleAttribute(broken, "x", "y"); err == nil || !strings.Contains(err.Error(), "broken.tf") {
		t.Fatalf("broken file: %v", err)
	}
}

func TestReadModuleAttribute(t *testing.T) {
	path := prodFile(t)
	v, err := ReadModuleAttribute(path, "ingestion-server", "image_tag")
	if err != nil || v.AsString() != oldTag {
		t.Fatalf("image_tag = %#v, %v", v, err)
	}
	v, err = ReadModuleAttribute(path, "ingestion-server", "data_refresh_cleared")
	if err != nil || v.True() {
		t.Fatalf("data_refresh_cleared = %#v, %v; the committed prod file must keep it false", v, err)
	}
}

func TestFileSHA256(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	writeFile(t, path, "abc")
	got, err := FileSHA256(path)
	if err != nil || got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("FileSHA256 = %s, %v", got, err)
	}
	if _, err := FileSHA256(path + ".missing"); err == nil {
		t.Fatal("no error for a missing file")
	}
}
