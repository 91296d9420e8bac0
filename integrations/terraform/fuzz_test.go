package terraform

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	tfjson "github.com/hashicorp/terraform-json"
	"github.com/zclconf/go-cty/cty"
)

// shape flattens a file to what a bump must preserve: every attribute of
// every block, by path, as its tokens without spacing (formatting may move
// spaces, never anything else).
func shape(t *testing.T, src []byte) map[string]string {
	f, diags := hclwrite.ParseConfig(src, "x.tf", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("the bumped file is not valid HCL: %s\n%s", diags.Error(), src)
	}
	out := map[string]string{}
	var walk func(prefix string, b *hclwrite.Body)
	walk = func(prefix string, b *hclwrite.Body) {
		for name, a := range b.Attributes() {
			var sb strings.Builder
			for _, tok := range a.Expr().BuildTokens(nil) {
				sb.Write(tok.Bytes)
			}
			out[prefix+"."+name] = sb.String()
		}
		for i, bl := range b.Blocks() {
			walk(prefix+"/"+bl.Type()+"("+strings.Join(bl.Labels(), ",")+")#"+string(rune('0'+i%10)), bl.Body())
		}
	}
	walk("", f.Body())
	return out
}

// HCL bumping of arbitrary .tf input: nothing panics, and a bump changes
// only the one attribute, to the new value.
func FuzzBump(f *testing.F) {
	f.Add("module \"ingestion-server\" {\n  source    = \"../../modules/ingestion-server\"\n  image_tag = \"rel-2023.07.03.17.52.00\" # deployed\n  data_refresh_cleared = false\n}\n", "rel-2024.09.09.05.40.20")
	f.Add("module \"ingestion-server\" {\n  image_tag = var.tag\n}\n", "rel-1")
	f.Add("module \"a\" {}\nmodule \"ingestion-server\" {\n  image_tag = 3\n}\n", "x")
	f.Add("module \"ingestion-server\" {\n  image_tag = \"a\"\n  nested {\n    image_tag = \"b\"\n  }\n}\nmodule \"ingestion-server\" {}\n", "c")
	f.Add("/* c */ module \"ingestion-server\" { image_tag = \"${x}\" }", "y\"z")
	f.Fuzz(func(t *testing.T, src, version string) {
		if !utf8.ValidString(version) {
			return
		}
		path := filepath.Join(t.TempDir(), "x.tf")
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		changed, err := SetModuleAttribute(path, "ingestion-server", "image_tag", cty.StringVal(version))
		after, _ := os.ReadFile(path)
		if err != nil || !changed {
			if string(after) != src {
				t.Fatalf("a refused or empty bump changed the file (err %v)", err)
			}
			return
		}
		before, got := shape(t, []byte(src)), shape(t, after)
		for k, v := range before {
			if strings.HasSuffix(k, ".image_tag") && strings.HasPrefix(k, "/module(ingestion-server)#") && strings.Count(k, "/") == 1 {
				continue
			}
			if got[k] != v {
				t.Fatalf("the bump changed %s: %q → %q", k, v, got[k])
			}
		}
		if len(got) != len(before) {
			t.Fatalf("the bump added or removed attributes: %d → %d", len(before), len(got))
		}
		v, err := ReadModuleAttribute(path, "ingestion-server", "image_tag")
		if err != nil || v.AsString() != version {
			t.Fatalf("after the bump image_tag reads %#v (%v), want %q", v, err, version)
		}
	})
}

// Plan rendering of arbitrary plan JSON: nothing panics and the rendered
// text stays within the budget asked for (a Slack section).
func FuzzRenderPlan(f *testing.F) {
	f.Add(`{"format_version":"1.2","resource_changes":[{"address":"module.x.terraform_data.y","mode":"managed","type":"terraform_data","name":"y","change":{"actions":["update"],"before":{"input":"a"},"after":{"input":"b"},"after_unknown":{},"before_sensitive":{},"after_sensitive":{}}}]}`, 3000)
	f.Add(`{"format_version":"1.2","resource_changes":[{"address":"a.b","change":{"actions":["delete","create"],"before":{"s":"x"},"after":{"s":null},"after_unknown":{"s":true},"before_sensitive":{"s":true},"after_sensitive":{"s":true}}}]}`, 100)
	f.Add(`{"resource_changes":[{"address":"<!channel>","change":{"actions":["create"],"after":{"k":["<@U1>",{"n":1}]}}}]}`, 40)
	f.Fuzz(func(t *testing.T, planJSON string, budget int) {
		var p tfjson.Plan
		if json.Unmarshal([]byte(planJSON), &p) != nil {
			return
		}
		budget = max(1, min(budget, 40000))
		text, _ := Summarize(&p).Render(budget)
		if n := utf8.RuneCountInString(text); n > budget {
			t.Fatalf("rendered %d characters for a budget of %d", n, budget)
		}
	})
}
