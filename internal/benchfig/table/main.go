// Command table prints the figures `make bench` collected as one Markdown
// table: figure, value, peer, ratio, goal, met.
//
//	go run ./internal/benchfig/table [dir]   (default bin/bench)
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/deploybot/deploybot/internal/benchfig"
)

func main() {
	dir := "bin/bench"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	figs, err := benchfig.Read(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench table:", err)
		os.Exit(1)
	}
	if len(figs) == 0 {
		fmt.Fprintf(os.Stderr, "bench table: no figures in %s: run `make bench` first\n", dir)
		os.Exit(1)
	}
	if missed := Print(os.Stdout, figs); missed > 0 {
		fmt.Printf("\n%d goal(s) not met.\n", missed)
	}
}

// Print writes the table and returns how many goals were missed.
func Print(w io.Writer, figs []benchfig.Figure) (missed int) {
	sort.SliceStable(figs, func(i, j int) bool { return figs[i].Order < figs[j].Order })
	fmt.Fprintln(w, "| figure | value | peer | ratio | goal | met? |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	var notes []string
	for _, f := range figs {
		peer, ratio := "—", "—"
		if f.Peer != 0 {
			peer = num(f.Peer) + " " + f.Unit
			if f.PeerName != "" {
				peer += " (" + f.PeerName + ")"
			}
			ratio = strconv.FormatFloat(f.Ratio(), 'f', 2, 64) + "×"
		}
		met := "—"
		if ok, checked := f.Met(); checked {
			met = "yes"
			if !ok {
				met, missed = "**no**", missed+1
			}
		}
		goal := f.Goal
		if goal == "" {
			goal = "—"
		}
		name := f.Name
		if f.Note != "" {
			notes = append(notes, f.Note)
			name += fmt.Sprintf(" [%d]", len(notes))
		}
		fmt.Fprintf(w, "| %s | %s %s | %s | %s | %s | %s |\n", name, num(f.Value), f.Unit, peer, ratio, goal, met)
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for i, n := range notes {
			fmt.Fprintf(w, "[%d] %s\n", i+1, strings.TrimSpace(n))
		}
	}
	return missed
}

// num prints three significant figures, enough for timings on a shared
// machine and short enough for a table.
func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100 || v <= -100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10 || v <= -10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}
