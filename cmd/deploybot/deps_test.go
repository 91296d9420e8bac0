package main

import (
	"bufio"
	"bytes"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/internal/testtool"
)

const module = "github.com/deploybot/deploybot"

// testOnly are packages made for tests and the demo: test servers,
// test tools, the demo's world. Production code must never link them.
func testOnly(pkg string) bool {
	return strings.HasSuffix(pkg, "test") || pkg == module+"/internal/testtool" || pkg == module+"/internal/demo"
}

// The test servers are linked only into the demo command: no production
// package (bot, steps, config, the integrations, ...) imports a test server
// or the demo world, directly or through another package; in
// cmd/deploybot only the demo's files import internal/demo, and nothing
// there imports a test server directly.
func TestProductionCodeDoesNotLinkTestServers(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		testtool.Missing(t, "go not in PATH")
	}
	cmd := exec.Command(goBin, "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"/...")
	cmd.Dir = testtool.ModuleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{} // non-test imports, as `go list` gives them
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			imports[f[0]] = f[1:]
		}
	}
	if len(imports) < 10 {
		t.Fatalf("go list found only %d packages:\n%s", len(imports), out)
	}
	// path returns a chain of imports from pkg to a test-only package.
	var path func(pkg string, seen map[string]bool) []string
	path = func(pkg string, seen map[string]bool) []string {
		if seen[pkg] {
			return nil
		}
		seen[pkg] = true
		for _, imp := range imports[pkg] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			if testOnly(imp) {
				return []string{pkg, imp}
			}
			if p := path(imp, seen); p != nil {
				return append([]string{pkg}, p...)
			}
		}
		return nil
	}
	checked := 0
	for pkg := range imports {
		if testOnly(pkg) || pkg == module+"/cmd/deploybot" {
			continue
		}
		checked++
		if p := path(pkg, map[string]bool{}); p != nil {
			t.Errorf("production package %s links a test-only package: %s", pkg, strings.Join(p, " → "))
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d production packages", checked)
	}
	// The program itself reaches the test servers only through the demo.
	demoFiles := []string{"demo.go", "demo_summary.go"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !strings.HasPrefix(p, module) || !testOnly(p) {
				continue
			}
			if p != module+"/internal/demo" || !slices.Contains(demoFiles, name) {
				t.Errorf("%s imports %s: only the demo's files may, and only internal/demo", name, p)
			}
		}
	}
	// And the demo world is what brings them in: without it, the program
	// would import none.
	for _, imp := range imports[module+"/cmd/deploybot"] {
		if testOnly(imp) && imp != module+"/internal/demo" {
			t.Errorf("cmd/deploybot imports %s directly", imp)
		}
	}
	if _, err := os.Stat("demo.go"); err != nil {
		t.Errorf("the demo wiring moved: %v", err)
	}
}
