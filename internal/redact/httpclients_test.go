package redact

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// noDefaultClient finds HTTP calls without a timeout: http.DefaultClient,
// the package-level helpers that use it, a client literal with no fields,
// and slack-go's webhook helper that uses it.
var noDefaultClient = regexp.MustCompile(`http\.DefaultClient|http\.(Get|Head|Post|PostForm)\(|&http\.Client\{\}|slack\.PostWebhook(Context)?\(`)

// A vet-style check over every non-test Go file of the module: a call
// through a client without a timeout can hang a deploy step (or shutdown)
// for ever when the other side stops answering.
func TestNoHTTPClientWithoutTimeout(t *testing.T) {
	root := moduleRoot(t)
	var bad []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n != "." && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor") && p != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if code, _, _ := strings.Cut(line, "//"); noDefaultClient.MatchString(code) {
				rel, _ := filepath.Rel(root, p)
				bad = append(bad, fmt.Sprintf("%s:%d: %s", rel, i+1, strings.TrimSpace(line)))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("HTTP calls without a timeout (use a client with Timeout, slack.PostWebhookCustomHTTPContext with bot.HTTPClient):\n%s", strings.Join(bad, "\n"))
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}
