// Package benchfig carries the figures of deploybot's end-to-end
// benchmarks from `go test -bench` to the one table `make bench` prints:
// each benchmark writes its figures, beside their peers from the same run,
// to a JSON file, and ./internal/benchfig/table reads them all.
package benchfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// Figure is one row of the table.
type Figure struct {
	// Order sorts the rows; Name says what was measured.
	Order int     `json:"order"`
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Peer is what Value is compared with, measured in the same run
	// (PeerName says what it is); zero when the goal is absolute.
	Peer     float64 `json:"peer,omitempty"`
	PeerName string  `json:"peer_name,omitempty"`
	// Goal says the target in words. It is met when Value ≤ Max, or,
	// with a peer, when Value/Peer ≤ MaxRatio. A figure with neither is
	// for information.
	Goal     string  `json:"goal,omitempty"`
	Max      float64 `json:"max,omitempty"`
	MaxRatio float64 `json:"max_ratio,omitempty"`
	// Note qualifies the figure (sample size, what was excluded).
	Note string    `json:"note,omitempty"`
	At   time.Time `json:"at"`
}

// Ratio is Value/Peer, or 0 without a peer.
func (f Figure) Ratio() float64 {
	if f.Peer == 0 {
		return 0
	}
	return f.Value / f.Peer
}

// Met reports whether the goal is met; ok is false when there is no goal
// to check.
func (f Figure) Met() (met, ok bool) {
	switch {
	case f.MaxRatio > 0 && f.Peer > 0:
		return f.Ratio() <= f.MaxRatio, true
	case f.Max > 0:
		return f.Value <= f.Max, true
	}
	return false, false
}

// EnvDir names the directory figures go to (make bench sets it to bin/bench).
const EnvDir = "DEPLOYBOT_BENCH_OUT"

// Dir is where figures are written: $DEPLOYBOT_BENCH_OUT, or bin/bench at
// the module's root (found from the working directory, as `go test` runs
// each package in its own directory).
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "bin", "bench"), nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("benchfig: no go.mod above " + wd)
		}
	}
}

// Write replaces name.json in Dir with figs.
func Write(name string, figs ...Figure) error {
	dir, err := Dir()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	now := time.Now().UTC()
	for i := range figs {
		if figs[i].At.IsZero() {
			figs[i].At = now
		}
	}
	b, err := json.MarshalIndent(figs, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+name+".json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name+".json"))
}

// Read returns every figure in dir's *.json files.
func Read(dir string) ([]Figure, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var all []Figure
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var figs []Figure
		if err := json.Unmarshal(b, &figs); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		all = append(all, figs...)
	}
	return all, nil
}

// Median of xs (0 for none); xs is sorted in place.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

// EnvReps overrides how many times a benchmark repeats a measurement
// (each side alternately); DEPLOYBOT_BENCH_REPS=1 for a quick check.
const EnvReps = "DEPLOYBOT_BENCH_REPS"

// Reps is $DEPLOYBOT_BENCH_REPS, or def when unset or not a positive number.
func Reps(def int) int {
	if n, err := strconv.Atoi(os.Getenv(EnvReps)); err == nil && n > 0 {
		return n
	}
	return def
}
