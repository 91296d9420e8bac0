package terraform

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// SetModuleAttribute sets attr of the module block named module in the .tf file
// at path to value and writes the file back, formatted like `terraform fmt`.
//
// It goes through hclwrite rather than text substitution so that comments and
// every other line survive untouched: the result is a diff a reviewer can read
// in the infrastructure pull request. Only an attribute that already holds a
// literal string, number or bool of the same type as value is replaced; a bump
// must never silently overwrite an expression (a variable reference or a
// template) or invent an attribute the module may not declare.
//
// changed is false, and the file is left byte for byte as it was, when the
// attribute already holds value: re-running a deploy step is then harmless.
func SetModuleAttribute(path, module, attr string, value cty.Value) (changed bool, err error) {
	if !value.IsKnown() || value.IsNull() {
		return false, fmt.Errorf("terraform: set %s in module %q of %s: value must be a known, non-null literal", attr, module, path)
	}
	switch value.Type() {
	case cty.String, cty.Bool, cty.Number:
	default:
		return false, fmt.Errorf("terraform: set %s in module %q of %s: only string, number and bool values can be written, not %s", attr, module, path, value.Type().FriendlyName())
	}

	src, info, err := readTF(path)
	if err != nil {
		return false, err
	}
	file, a, err := findModuleAttr(path, src, module, attr)
	if err != nil {
		return false, err
	}
	current, err := literalValue(path, module, attr, a)
	if err != nil {
		return false, err
	}
	if !current.Type().Equals(value.Type()) {
		return false, fmt.Errorf("terraform: %s: attribute %s of module %q holds a %s, refusing to write a %s", path, attr, module, current.Type().FriendlyName(), value.Type().FriendlyName())
	}
	if current.Equals(value).True() {
		return false, nil
	}

	block := moduleBlock(file.Body(), module)
	block.Body().SetAttributeValue(attr, value)
	out := hclwrite.Format(file.Bytes())
	if err := writeFileAtomic(path, out, info.Mode().Perm()); err != nil {
		return false, err
	}
	return true, nil
}

// ReadModuleAttribute returns the literal value of attr in the module block
// named module, so callers can learn the version currently deployed (the
// rollback target) or check a flag without running Terraform.
func ReadModuleAttribute(path, module, attr string) (cty.Value, error) {
	src, _, err := readTF(path)
	if err != nil {
		return cty.NilVal, err
	}
	_, a, err := findModuleAttr(path, src, module, attr)
	if err != nil {
		return cty.NilVal, err
	}
	return literalValue(path, module, attr, a)
}

func readTF(path string) ([]byte, fs.FileInfo, error) {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("terraform: %s: file does not exist", path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("terraform: %w", err)
	}
	if info.IsDir() {
		return nil, nil, fmt.Errorf("terraform: %s: is a directory, want a .tf file", path)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("terraform: %w", err)
	}
	return src, info, nil
}

func findModuleAttr(path string, src []byte, module, attr string) (*hclwrite.File, *hclwrite.Attribute, error) {
	file, diags := hclwrite.ParseConfig(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, nil, fmt.Errorf("terraform: %s: not valid HCL: %s", path, diags.Error())
	}
	var names []string
	count := 0
	for _, b := range file.Body().Blocks() {
		if b.Type() != "module" || len(b.Labels()) != 1 {
			continue
		}
		names = append(names, fmt.Sprintf("%q", b.Labels()[0]))
		if b.Labels()[0] == module {
			count++
		}
	}
	switch {
	case count == 0 && len(names) == 0:
		return nil, nil, fmt.Errorf("terraform: %s: no module %q block (the file declares no modules)", path, module)
	case count == 0:
		sort.Strings(names)
		return nil, nil, fmt.Errorf("terraform: %s: no module %q block (modules here: %s)", path, module, strings.Join(names, ", "))
	case count > 1:
		return nil, nil, fmt.Errorf("terraform: %s: %d module %q blocks, expected exactly one", path, count, module)
	}
	a := moduleBlock(file.Body(), module).Body().GetAttribute(attr)
	if a == nil {
		return nil, nil, fmt.Errorf("terraform: %s: module %q has no attribute %q", path, module, attr)
	}
	return file, a, nil
}

func moduleBlock(body *hclwrite.Body, module string) *hclwrite.Block {
	for _, b := range body.Blocks() {
		if b.Type() == "module" && len(b.Labels()) == 1 && b.Labels()[0] == module {
			return b
		}
	}
	return nil
}

// literalValue accepts only what a person would call a literal: a quoted
// string without interpolation, a number, true or false. Anything that needs
// an evaluation context is reported rather than guessed at.
func literalValue(path, module, attr string, a *hclwrite.Attribute) (cty.Value, error) {
	raw := bytes.TrimSpace(a.Expr().BuildTokens(nil).Bytes())
	notLiteral := func() error {
		return fmt.Errorf("terraform: %s: attribute %s of module %q is the expression %s, not a literal string or bool; edit it by hand",
			path, attr, module, truncate(string(raw), 80))
	}
	expr, diags := hclsyntax.ParseExpression(raw, path, hcl.InitialPos)
	if diags.HasErrors() {
		return cty.NilVal, notLiteral()
	}
	switch e := expr.(type) {
	case *hclsyntax.LiteralValueExpr:
		v := e.Val
		if v.IsNull() || !(v.Type() == cty.Bool || v.Type() == cty.Number) {
			return cty.NilVal, notLiteral()
		}
		return v, nil
	case *hclsyntax.TemplateExpr:
		if !e.IsStringLiteral() {
			return cty.NilVal, notLiteral()
		}
		v, diags := e.Value(nil)
		if diags.HasErrors() || !v.IsWhollyKnown() || v.IsNull() {
			return cty.NilVal, notLiteral()
		}
		return v, nil
	default:
		return cty.NilVal, notLiteral()
	}
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// writeFileAtomic replaces path through a rename so that a crash or a full
// disk never leaves a half-written .tf file in the checkout.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("terraform: write %s: %w", path, err)
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("terraform: write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("terraform: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("terraform: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("terraform: write %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("terraform: write %s: %w", path, err)
	}
	return nil
}
