//go:build !crashtest

package crashpoint

import (
	"os"
	"os/exec"
	"testing"
)

// A production build cannot be made to crash: the hook is compiled out,
// whatever the environment says. (The crash matrix shows the tagged build
// does crash, at every point.)
func TestProductionBuildHasNoCrashHook(t *testing.T) {
	if Enabled {
		t.Fatal("the crash hook is compiled into a build without the crashtest tag")
	}
	if os.Getenv("CRASHPOINT_CHILD") == "1" {
		for range 100 {
			Hit("write")
		}
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestProductionBuildHasNoCrashHook$")
	cmd.Env = append(os.Environ(), "CRASHPOINT_CHILD=1", "DEPLOYBOT_CRASH_AT=1", "DEPLOYBOT_CRASH_LOG="+t.TempDir()+"/log")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("a production build armed with DEPLOYBOT_CRASH_AT=1 died: %v\n%s", err, out)
	}
}
