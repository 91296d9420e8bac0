package terraform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"sync"

	tfjson "github.com/hashicorp/terraform-json"
)

// ShowJSON decodes a saved plan, the input of Summarize: its resource and
// output changes, its variables and its configuration.
//
// It runs `terraform show -json` itself rather than through terraform-exec,
// whose ShowPlanFile first runs `terraform version` and then decodes the
// whole document, planned values and prior state included. For a plan of
// 10,000 changes that costs seconds on top of Terraform's own show, which
// is what a reviewer waits for between the plan and the chat message; the
// fields skipped here are never read.
func (r *Runner) ShowJSON(ctx context.Context, planFile string) (*tfjson.Plan, error) {
	return r.ShowPlan(ctx, planFile, nil)
}

// ShowPlan is ShowJSON for plans of any size: when each is not nil, it
// gets every resource change as it is decoded and the returned plan holds
// none, so a plan's changes never need to be in memory all at once (a
// Summarizer keeps only what the chat shows of each).
func (r *Runner) ShowPlan(ctx context.Context, planFile string, each func(*tfjson.ResourceChange)) (_ *tfjson.Plan, err error) {
	if r.Observe != nil {
		// Counted like every command that goes through terraform-exec.
		defer func() { r.Observe("show", err) }()
	}
	abs, err := existingFile(planFile)
	if err != nil {
		return nil, err
	}
	fail := func(err error) error { return &Error{Command: "show", Dir: r.Dir, msg: err.Error(), cause: err} }
	bin, err := r.bin()
	if err != nil {
		return nil, fail(err)
	}
	env, err := r.environ()
	if err != nil {
		return nil, fail(err)
	}
	// What terraform-exec sets for every command: automation mode, and no
	// logging that could mix into the output.
	env["TF_IN_AUTOMATION"] = "1"
	for _, k := range []string{"TF_LOG", "TF_LOG_CORE", "TF_LOG_PATH", "TF_LOG_PROVIDER"} {
		env[k] = ""
	}
	delete(env, "TF_WORKSPACE")
	envList := make([]string, 0, len(env))
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	sort.Strings(envList)

	delay := r.WaitDelay
	if delay <= 0 {
		delay = DefaultWaitDelay
	}
	cmd := exec.CommandContext(ctx, bin, "show", "-json", "-no-color", abs)
	cmd.Dir = r.Dir
	cmd.Env = envList
	// As terraform-exec does: SIGINT first, so Terraform can let go of
	// what it holds, and SIGKILL after the delay.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = delay
	setProcAttr(cmd)

	redact := r.redactor()
	tail := &tailBuffer{limit: 64 << 10}
	stderr := []io.Writer{lineWriter{mu: new(sync.Mutex), w: tail, redact: redact}}
	if r.Log != nil {
		stderr = append(stderr, lineWriter{mu: new(sync.Mutex), w: r.Log, redact: redact})
	}
	cmd.Stderr = io.MultiWriter(stderr...)
	// Decoded as it streams in. Through an io.Pipe rather than
	// cmd.StdoutPipe so that Wait, not a read, is what waits for the end:
	// with WaitDelay it gives up on output a stray grandchild holds open.
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		return nil, r.commandError(ctx, "show", tail, redact, err)
	}
	var doc planDoc
	var decErr error
	decoded := make(chan struct{})
	go func() {
		defer close(decoded)
		decErr = doc.decode(json.NewDecoder(pr), each)
		_, _ = io.Copy(io.Discard, pr) // let Terraform finish writing
	}()
	err = cmd.Wait()
	pw.Close()
	<-decoded
	if err != nil {
		return nil, r.commandError(ctx, "show", tail, redact, err)
	}
	if decErr != nil {
		return nil, fail(fmt.Errorf("reading the plan's JSON: %w", decErr))
	}
	p := &tfjson.Plan{FormatVersion: doc.FormatVersion, TerraformVersion: doc.TerraformVersion, Variables: doc.Variables,
		ResourceChanges: doc.ResourceChanges, OutputChanges: doc.OutputChanges, Config: doc.Config}
	if err := p.Validate(); err != nil {
		return nil, fail(err)
	}
	if p.Config == nil {
		return nil, fail(errors.New("the plan's JSON has no configuration"))
	}
	return p, nil
}

// planDoc is the part of `terraform show -json` that deploybot reads;
// json skips the rest (planned_values, prior_state, relevant_attributes)
// without building it.
type planDoc struct {
	FormatVersion    string                          `json:"format_version"`
	TerraformVersion string                          `json:"terraform_version"`
	Variables        map[string]*tfjson.PlanVariable `json:"variables"`
	ResourceChanges  []*tfjson.ResourceChange        `json:"resource_changes"`
	OutputChanges    map[string]*tfjson.Change       `json:"output_changes"`
	Config           *tfjson.Config                  `json:"configuration"`
}

// decode reads the document key by key, handing resource changes to each
// (when not nil) one at a time instead of keeping them.
func (doc *planDoc) decode(dec *json.Decoder, each func(*tfjson.ResourceChange)) error {
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		switch {
		case key == "resource_changes" && each != nil:
			if err := expectDelim(dec, '['); err != nil {
				return err
			}
			for dec.More() {
				rc := new(tfjson.ResourceChange)
				if err := dec.Decode(rc); err != nil {
					return err
				}
				each(rc)
			}
			err = expectDelim(dec, ']')
		case key == "format_version":
			err = dec.Decode(&doc.FormatVersion)
		case key == "terraform_version":
			err = dec.Decode(&doc.TerraformVersion)
		case key == "variables":
			err = dec.Decode(&doc.Variables)
		case key == "resource_changes":
			err = dec.Decode(&doc.ResourceChanges)
		case key == "output_changes":
			err = dec.Decode(&doc.OutputChanges)
		case key == "configuration":
			err = dec.Decode(&doc.Config)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	return expectDelim(dec, '}')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %v, found %v", want, tok)
	}
	return nil
}
