package terraform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
)

// Lock is a Terraform state lock as Terraform describes it (its LockInfo).
// A deploybot killed mid-apply takes its Terraform with it (terraform-exec
// sets Pdeathsig), which leaves the lock behind; people must see whose lock
// it is before they force it open.
type Lock struct {
	ID        string
	Path      string
	Operation string // "OperationTypeApply", …
	Who       string // user@host
	Version   string
	Created   time.Time
	Info      string
	// Held is false when the lock is only Terraform's record of it: with
	// the local backend the real lock is an fcntl lock that dies with its
	// process, while the .lock.info file next to the state stays.
	Held bool
	// Local: the lock of a local backend (read from its .lock.info file).
	Local bool
}

// lockInfo is the JSON Terraform writes next to local state.
type lockInfo struct {
	ID        string
	Operation string
	Info      string
	Who       string
	Version   string
	Created   time.Time
	Path      string
}

// backendFile is what `terraform init` records about the backend in
// .terraform/terraform.tfstate.
type backendFile struct {
	Backend *struct {
		Type   string         `json:"type"`
		Config map[string]any `json:"config"`
	} `json:"backend"`
}

// localStatePath returns the state file of an initialised root module that
// uses the local backend ("" for other backends, whose locks Terraform
// reports only when it fails to take them: see ParseLockError).
func (r *Runner) localStatePath() (string, error) {
	b, err := os.ReadFile(filepath.Join(r.Dir, ".terraform", "terraform.tfstate"))
	if errors.Is(err, os.ErrNotExist) {
		// Never initialised with a backend block: Terraform's implied
		// local backend and its default path.
		return filepath.Join(r.Dir, "terraform.tfstate"), nil
	}
	if err != nil {
		return "", fmt.Errorf("terraform: reading the backend of %s: %w", r.Dir, err)
	}
	var bf backendFile
	if err := json.Unmarshal(b, &bf); err != nil {
		return "", fmt.Errorf("terraform: reading the backend of %s: %w", r.Dir, err)
	}
	if bf.Backend == nil || bf.Backend.Type != "local" {
		if bf.Backend == nil {
			return filepath.Join(r.Dir, "terraform.tfstate"), nil
		}
		return "", nil
	}
	p, _ := bf.Backend.Config["path"].(string)
	if p == "" {
		p = "terraform.tfstate"
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(r.Dir, p)
	}
	return p, nil
}

// lockInfoPath is where Terraform's local backend writes its lock info:
// ".<state file name>.lock.info" beside the state.
func lockInfoPath(state string) string {
	dir, name := filepath.Split(state)
	return filepath.Join(dir, "."+strings.TrimPrefix(name, ".")+".lock.info")
}

// LockInfo reads the state lock of a local backend: nil when there is
// none, and nil for other backends too, whose locks show up as the error
// of the next command (ParseLockError).
func (r *Runner) LockInfo() (*Lock, error) {
	state, err := r.localStatePath()
	if err != nil || state == "" {
		return nil, err
	}
	b, err := os.ReadFile(lockInfoPath(state))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("terraform: reading the state lock of %s: %w", r.Dir, err)
	}
	var li lockInfo
	if err := json.Unmarshal(b, &li); err != nil {
		return nil, fmt.Errorf("terraform: the state lock info %s is not Terraform's JSON: %w", lockInfoPath(state), err)
	}
	l := &Lock{ID: li.ID, Path: li.Path, Operation: li.Operation, Who: li.Who, Version: li.Version, Created: li.Created, Info: li.Info, Local: true}
	l.Held, err = fileLocked(state)
	if err != nil {
		return nil, fmt.Errorf("terraform: checking the lock on %s: %w", state, err)
	}
	return l, nil
}

// ForceUnlock releases a state lock left behind by a Terraform that can no
// longer release it (`terraform force-unlock -force ID`). Terraform cannot
// unlock local state from another process; when the local lock is only a
// leftover record (its process is gone), the record is removed instead,
// which is what Terraform's own unlock would have done.
func (r *Runner) ForceUnlock(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("terraform: force-unlock needs the lock's ID")
	}
	err := r.run(ctx, "force-unlock", nil, func(tf *tfexec.Terraform) error {
		return tf.ForceUnlock(ctx, id)
	})
	if err == nil {
		return nil
	}
	l, lerr := r.LockInfo()
	if lerr != nil || l == nil || !l.Local {
		return err
	}
	if l.ID != id {
		return fmt.Errorf("terraform: the state of %s is now locked by %s (ID %s), not by the lock %s that was shown: look again before unlocking", r.Dir, l.Who, l.ID, id)
	}
	if l.Held {
		return fmt.Errorf("terraform: a running process (%s) still holds the local state lock of %s; stop it first: %w", l.Who, r.Dir, err)
	}
	state, serr := r.localStatePath()
	if serr != nil {
		return serr
	}
	if rerr := os.Remove(lockInfoPath(state)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		return fmt.Errorf("terraform: removing the stale lock record of %s: %w", r.Dir, rerr)
	}
	return nil
}

// lockFieldRE finds the Lock Info fields of Terraform's "Error acquiring the
// state lock" message, which is all other backends say about their locks.
var lockFieldRE = regexp.MustCompile(`(?m)^\s*(ID|Path|Operation|Who|Version|Created|Info):\s*(.*?)\s*$`)

// ParseLockError reads the lock out of Terraform's "Error acquiring the
// state lock" message; nil when msg is not about a lock.
func ParseLockError(msg string) *Lock {
	i := strings.Index(msg, "Error acquiring the state lock")
	if i < 0 {
		return nil
	}
	rest := msg[i:]
	if j := strings.Index(rest, "Lock Info:"); j >= 0 {
		rest = rest[j:]
	}
	l := &Lock{Held: true}
	for _, m := range lockFieldRE.FindAllStringSubmatch(rest, -1) {
		switch m[1] {
		case "ID":
			if l.ID == "" {
				l.ID = m[2]
			}
		case "Path":
			l.Path = m[2]
		case "Operation":
			l.Operation = m[2]
		case "Who":
			l.Who = m[2]
		case "Version":
			l.Version = m[2]
		case "Info":
			l.Info = m[2]
		case "Created":
			// Terraform prints Go's default time format.
			if t, err := time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", m[2]); err == nil {
				l.Created = t
			}
		}
	}
	if l.ID == "" {
		return nil
	}
	return l
}
