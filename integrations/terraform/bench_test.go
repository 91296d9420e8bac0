package terraform

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/deploybot/deploybot/internal/testtool"
)

// benchChanges is the size of the generated plan: far beyond any real deploy,
// so that the cost of the chat rendering path shows up clearly.
const benchChanges = 10_000

var (
	benchOnce   sync.Once
	benchDir    string
	benchRunner *Runner
	benchPlan   string
	benchJSON   *tfjson.Plan
	benchErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// benchSetup plans a root module of benchChanges terraform_data resources
// once per process (about half a minute) and decodes the plan once.
func benchSetup(b *testing.B) {
	b.Helper()
	bin := testtool.Terraform(b)
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "deploybot-tf-bench-")
		if benchErr != nil {
			return
		}
		main := fmt.Sprintf(`resource "terraform_data" "r" {
  count = %d
  input = {
    image = "ghcr.io/wordpress/openverse-ingestion_server:rel-2024.09.09.05.40.20"
    index = count.index
  }
}
`, benchChanges)
		if benchErr = os.WriteFile(filepath.Join(benchDir, "main.tf"), []byte(main), 0o644); benchErr != nil {
			return
		}
		ctx := context.Background()
		benchRunner = &Runner{Bin: bin, Dir: benchDir}
		benchPlan = filepath.Join(benchDir, "bench.tfplan")
		if benchErr = benchRunner.Init(ctx); benchErr != nil {
			return
		}
		if _, benchErr = benchRunner.Plan(ctx, benchPlan, ""); benchErr != nil {
			return
		}
		benchJSON, benchErr = benchRunner.ShowJSON(ctx, benchPlan)
		if benchErr == nil && len(benchJSON.ResourceChanges) != benchChanges {
			benchErr = fmt.Errorf("plan has %d resource changes, want %d", len(benchJSON.ResourceChanges), benchChanges)
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
}

func BenchmarkSummarizeRender(b *testing.B) {
	benchSetup(b)
	for _, bc := range []struct {
		name     string
		maxChars int
	}{
		{"chat3000", 3000}, // one Slack section
		{"full", 0},        // the attached file
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				d := Summarize(benchJSON)
				var text string
				if bc.maxChars > 0 {
					text, _ = d.Render(bc.maxChars)
				} else {
					text = d.Text()
				}
				n = len(text)
			}
			b.ReportMetric(float64(n), "bytes/render")
		})
	}
}

func BenchmarkShowJSON(b *testing.B) {
	benchSetup(b)
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		if _, err := benchRunner.ShowJSON(ctx, benchPlan); err != nil {
			b.Fatal(err)
		}
	}
}
