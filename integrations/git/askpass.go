package git

import (
	"fmt"
	"os"
	"path/filepath"
)

// tokenUser is the user name sent with the token. GitHub accepts it for
// installation tokens and ignores the name for personal access tokens.
const tokenUser = "x-access-token"

// askpassScript holds no secret: it answers git's prompts from the
// environment of the git process that runs it, so the token is never on disk
// and never in any process's argv.
const askpassScript = `#!/bin/sh
# deploybot: answers git's credential prompts; the token comes from the
# environment of the calling git process only.
case "$1" in
[Uu]sername*) printf '%s\n' '` + tokenUser + `' ;;
*) printf '%s\n' "$` + tokenEnv + `" ;;
esac
`

// writeAskpass creates the script in a fresh private directory, so no other
// user can replace it between its creation and git running it.
func writeAskpass() (dir, path string, err error) {
	dir, err = os.MkdirTemp("", "deploybot-askpass-")
	if err != nil {
		return "", "", fmt.Errorf("git: askpass dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("git: askpass dir: %w", err)
	}
	path = filepath.Join(dir, "askpass.sh")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err == nil {
		_, err = f.WriteString(askpassScript)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Chmod(path, 0o700) // umask must not matter
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("git: askpass script: %w", err)
	}
	return dir, path, nil
}
