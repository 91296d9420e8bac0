package terraform

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/deploybot/deploybot/internal/testtool"
)

// copyExample copies examples/infrastructure into a temp dir, leaving out
// anything a manual run may have left there (working dirs, state, plans).
func copyExample(tb testing.TB) string {
	tb.Helper()
	src := filepath.Join(testtool.ModuleRoot(tb), "examples", "infrastructure")
	dst := tb.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		name := d.Name()
		if d.IsDir() {
			if name == ".terraform" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if strings.Contains(name, ".tfstate") || strings.HasSuffix(name, ".tfplan") || name == ".terraform.lock.hcl" {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(filepath.Join(dst, rel))
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		tb.Fatal(err)
	}
	return dst
}

// testLog collects Runner.Log output and replays it on failure.
type testLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newRunner(tb testing.TB, dir string) (*Runner, *testLog) {
	tb.Helper()
	bin := testtool.Terraform(tb)
	log := &testLog{}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("terraform output in %s:\n%s", dir, log.String())
		}
	})
	return &Runner{Bin: bin, Dir: dir, Log: log}, log
}

func readFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}
