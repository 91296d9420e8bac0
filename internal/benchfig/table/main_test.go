package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/internal/benchfig"
)

func TestTableShowsEachFigureBesideItsPeerAndGoal(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(benchfig.EnvDir, dir)
	if err := benchfig.Write("b",
		benchfig.Figure{Order: 2, Name: "Plan to Slack", Value: 6.3, Unit: "s", Peer: 6, PeerName: "show alone", Goal: "≤ 1.05×", MaxRatio: 1.05},
		benchfig.Figure{Order: 3, Name: "Idle RSS", Value: 52, Unit: "MB", Goal: "< 40 MB", Max: 40, Note: "the binary, connected"},
	); err != nil {
		t.Fatal(err)
	}
	if err := benchfig.Write("a", benchfig.Figure{Order: 1, Name: "Ack p99", Value: 1.25, Unit: "ms", Goal: "< 5 ms", Max: 5}); err != nil {
		t.Fatal(err)
	}
	figs, err := benchfig.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	missed := Print(&out, figs)
	want := `| figure | value | peer | ratio | goal | met? |
|---|---|---|---|---|---|
| Ack p99 | 1.25 ms | — | — | < 5 ms | yes |
| Plan to Slack | 6.3 s | 6 s (show alone) | 1.05× | ≤ 1.05× | yes |
| Idle RSS [1] | 52.0 MB | — | — | < 40 MB | **no** |

[1] the binary, connected
`
	if out.String() != want || missed != 1 {
		t.Errorf("missed %d, table:\n%s\nwant:\n%s", missed, out.String(), want)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.json")); err != nil {
		t.Error(err)
	}
}
