package terraform

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	tfjson "github.com/hashicorp/terraform-json"
)

// Placeholders shown instead of values that must not, or cannot, be shown.
const (
	SensitiveValue = "(sensitive)"
	UnknownValue   = "(known after apply)"
)

// Actions as they appear in Line.Action.
const (
	ActionCreate  = "create"
	ActionUpdate  = "update"
	ActionDelete  = "delete"
	ActionReplace = "replace"
	ActionRead    = "read"
	ActionNoop    = "no-op"
	ActionForget  = "forget"
	// ActionImport and ActionMove are changes with no effect on the object
	// itself that apply still makes to the state (an import block, a moved
	// block). People approve them too, so they are shown, and a plan made
	// only of them is not "no changes".
	ActionImport = "import"
	ActionMove   = "move"
)

// warningMark flags lines that destroy something, so that a reviewer
// skimming a long plan in chat cannot miss them.
const warningMark = "⚠️"

// maxValueRunes bounds one value in Render: a multi-kilobyte policy document
// would otherwise crowd every other change out of the chat message. The full
// value is in the attached plan file.
const maxValueRunes = 200

// Diff is a plan reduced to what a reviewer approves in chat.
type Diff struct {
	Add, Change, Destroy, Replace int
	// Lines has one entry per resource instance that the plan touches, in
	// plan order, then one per changed root output ("output.NAME"). Resources
	// left as they are (no-op) are omitted: nothing happens to them.
	Lines []Line
	// NoChanges is true when applying the plan would change nothing, neither
	// resources nor outputs.
	NoChanges bool
}

// Line is one changed resource instance or output.
type Line struct {
	Address string
	Action  string // create, update, delete, replace, read, forget
	// Warning marks destroy and replace: the change loses an existing object.
	Warning bool
	// Attrs are the leaf attributes that change, by dotted path
	// ("input.image", "tags[0]"); for a create, every known non-null one.
	// Deletes and reads carry none.
	Attrs []AttrChange
}

// AttrChange is one attribute's change. Values are rendered HCL-like
// (strings quoted); a sensitive value is SensitiveValue and a value Terraform
// will only know after apply is UnknownValue. Before is empty for creates.
type AttrChange struct {
	Name, Before, After string
	// ForcesReplacement marks the attributes that make Terraform replace the
	// resource instead of updating it in place.
	ForcesReplacement bool
}

// Summarize reduces a plan to counts and per-resource attribute changes,
// masking sensitive values so nothing secret can reach the chat.
func Summarize(p *tfjson.Plan) Diff {
	if p == nil {
		return Diff{NoChanges: true}
	}
	var s Summarizer
	s.d.Lines = make([]Line, 0, len(p.ResourceChanges))
	for _, rc := range p.ResourceChanges {
		s.Add(rc)
	}
	return s.Diff(p)
}

// Summarizer is Summarize one resource change at a time (Add, in plan
// order, then Diff once), for changes streamed from Runner.ShowPlan: only what
// the Diff shows of each change is kept.
type Summarizer struct {
	d Diff
	// One walker for the whole plan: its slice is an arena each Line takes
	// a capacity-capped window of, instead of one small slice per resource.
	w walker
}

// Add summarizes one resource change.
func (s *Summarizer) Add(rc *tfjson.ResourceChange) {
	if rc == nil || rc.Change == nil {
		return
	}
	d := &s.d
	c := rc.Change
	action := actionOf(c.Actions)
	switch action {
	case ActionNoop:
		switch {
		case c.Importing != nil:
			action = ActionImport
		case rc.PreviousAddress != "" && rc.PreviousAddress != rc.Address:
			action = ActionMove
		default:
			return
		}
	case ActionCreate:
		d.Add++
	case ActionUpdate:
		d.Change++
	case ActionDelete:
		d.Destroy++
	case ActionReplace:
		d.Replace++
	}
	l := Line{
		Address: rc.Address,
		Action:  action,
		Warning: action == ActionDelete || action == ActionReplace,
	}
	if rc.DeposedKey != "" {
		l.Address += " (deposed object " + rc.DeposedKey + ")"
	}
	// Whatever else the change does, an import or a move is part of it.
	if c.Importing != nil {
		l.Address += " (imported from id " + strconv.Quote(c.Importing.ID) + ")"
	}
	if rc.PreviousAddress != "" && rc.PreviousAddress != rc.Address {
		l.Address += " (moved from " + rc.PreviousAddress + ")"
	}
	if action == ActionCreate || action == ActionUpdate || action == ActionReplace {
		l.Attrs = s.w.attrs(action, "", c)
		if action == ActionReplace && len(c.ReplacePaths) > 0 {
			markReplacePaths(l.Attrs, c.ReplacePaths)
		}
	}
	d.Lines = append(d.Lines, l)
}

// Diff adds p's output changes (p's resource changes are not read: they
// went through Add) and returns the result.
func (s *Summarizer) Diff(p *tfjson.Plan) Diff {
	d := s.d
	var outputs map[string]*tfjson.Change
	if p != nil {
		outputs = p.OutputChanges
	}
	names := make([]string, 0, len(outputs))
	for name, c := range outputs {
		if c != nil && !c.Actions.NoOp() && len(c.Actions) > 0 {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		c := outputs[name]
		action := actionOf(c.Actions)
		l := Line{Address: "output." + name, Action: action}
		if action != ActionDelete {
			l.Attrs = s.w.attrs(action, "value", c)
		}
		d.Lines = append(d.Lines, l)
	}
	d.NoChanges = len(d.Lines) == 0
	return d
}

func actionOf(a tfjson.Actions) string {
	switch {
	case a.Replace():
		return ActionReplace
	case a.Create():
		return ActionCreate
	case a.Update():
		return ActionUpdate
	case a.Delete():
		return ActionDelete
	case a.Read():
		return ActionRead
	case a.Forget():
		return ActionForget
	case a.NoOp(), len(a) == 0:
		return ActionNoop
	default:
		// A combination this package does not know yet: show it verbatim
		// rather than pretend it is harmless.
		parts := make([]string, len(a))
		for i, x := range a {
			parts[i] = string(x)
		}
		return strings.Join(parts, "+")
	}
}

// walker flattens before/after values into leaf AttrChanges, following the
// sensitive and unknown markers Terraform gives as parallel structures.
type walker struct {
	create bool
	out    []AttrChange
}

func (w *walker) attrs(action, root string, c *tfjson.Change) []AttrChange {
	w.create = action == ActionCreate
	start := len(w.out)
	w.walk(root, c.Before, c.After, c.BeforeSensitive, c.AfterSensitive, c.AfterUnknown)
	if len(w.out) == start {
		return nil
	}
	return w.out[start:len(w.out):len(w.out)]
}

func (w *walker) emit(path string, before, after string) {
	if path == "" {
		path = "(value)"
	}
	if w.create {
		before = ""
	}
	w.out = append(w.out, AttrChange{Name: path, Before: before, After: after})
}

func (w *walker) walk(path string, before, after, bSens, aSens, unk any) {
	if isTrue(unk) {
		w.emit(path, showValue(before, bSens), UnknownValue)
		return
	}
	if isTrue(bSens) || isTrue(aSens) {
		if !sameValue(before, after) {
			w.emit(path, showValue(before, bSens), showValue(after, aSens))
		}
		return
	}
	switch a := after.(type) {
	case map[string]any:
		b, ok := before.(map[string]any)
		if !ok && before != nil {
			break
		}
		if len(a) == 0 && len(b) == 0 {
			if before == nil {
				w.emit(path, "null", "{}")
			}
			return
		}
		keys := make([]string, 0, len(a)+len(b))
		for k := range a {
			keys = append(keys, k)
		}
		for k := range b {
			if _, dup := a[k]; !dup {
				keys = append(keys, k)
			}
		}
		// after_unknown may name attributes absent from after.
		if um, ok := unk.(map[string]any); ok {
			for k := range um {
				_, inA := a[k]
				_, inB := b[k]
				if !inA && !inB {
					keys = append(keys, k)
				}
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			w.walk(joinPath(path, k), b[k], a[k], child(bSens, k), child(aSens, k), child(unk, k))
		}
		return
	case []any:
		b, ok := before.([]any)
		if !ok && before != nil {
			break
		}
		if len(a) == 0 && len(b) == 0 {
			if before == nil {
				w.emit(path, "null", "[]")
			}
			return
		}
		n := max(len(a), len(b))
		if ul, ok := unk.([]any); ok {
			n = max(n, len(ul))
		}
		for i := range n {
			w.walk(path+"["+strconv.Itoa(i)+"]", index(b, i), index(a, i), indexAny(bSens, i), indexAny(aSens, i), indexAny(unk, i))
		}
		return
	case nil:
		// Deleted attribute (or one that stays null): walk the before side so
		// each removed leaf is listed.
		switch b := before.(type) {
		case map[string]any, []any:
			if isEmpty(b) {
				w.emit(path, showValue(before, bSens), "null")
				return
			}
			w.walkRemoved(path, before, bSens)
			return
		}
	}
	if !sameValue(before, after) {
		w.emit(path, showValue(before, bSens), showValue(after, aSens))
	}
}

func (w *walker) walkRemoved(path string, before, bSens any) {
	if isTrue(bSens) {
		w.emit(path, SensitiveValue, "null")
		return
	}
	switch b := before.(type) {
	case map[string]any:
		keys := make([]string, 0, len(b))
		for k := range b {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			w.walkRemoved(joinPath(path, k), b[k], child(bSens, k))
		}
	case []any:
		for i, v := range b {
			w.walkRemoved(path+"["+strconv.Itoa(i)+"]", v, indexAny(bSens, i))
		}
	case nil:
	default:
		w.emit(path, showValue(before, nil), "null")
	}
}

func joinPath(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func isTrue(v any) bool {
	b, ok := v.(bool)
	return ok && b
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

func child(v any, k string) any {
	if m, ok := v.(map[string]any); ok {
		return m[k]
	}
	return nil
}

func index(l []any, i int) any {
	if i < len(l) {
		return l[i]
	}
	return nil
}

func indexAny(v any, i int) any {
	if l, ok := v.([]any); ok {
		return index(l, i)
	}
	return nil
}

func sameValue(a, b any) bool {
	return showValue(a, nil) == showValue(b, nil)
}

// showValue renders a value HCL-like, masking whatever sens marks sensitive,
// however deep.
func showValue(v, sens any) string {
	if isTrue(sens) {
		return SensitiveValue
	}
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return quote(x)
	case bool:
		return strconv.FormatBool(x)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case json.Number:
		return x.String()
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k)
			b.WriteString(" = ")
			b.WriteString(showValue(x[k], child(sens, k)))
		}
		b.WriteByte('}')
		return b.String()
	case []any:
		var b strings.Builder
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(showValue(e, indexAny(sens, i)))
		}
		b.WriteByte(']')
		return b.String()
	default:
		return fmt.Sprint(x)
	}
}

// quote renders a string as Terraform shows it: double quotes, escapes for
// quotes, backslashes and control characters, and non-ASCII text left
// readable. Escaping controls also defuses any terminal escape sequence.
func quote(s string) string {
	simple := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == 0x7f {
			simple = false
			break
		}
	}
	if simple {
		return `"` + s + `"`
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// markReplacePaths flags the attributes under any of Terraform's
// replace_paths (lists of attribute names and indexes).
func markReplacePaths(attrs []AttrChange, paths []any) {
	var prefixes []string
	for _, p := range paths {
		steps, ok := p.([]any)
		if !ok || len(steps) == 0 {
			continue
		}
		var b strings.Builder
		for _, s := range steps {
			switch x := s.(type) {
			case string:
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(x)
			case float64:
				fmt.Fprintf(&b, "[%d]", int64(x))
			case json.Number:
				b.WriteString("[" + x.String() + "]")
			case int:
				fmt.Fprintf(&b, "[%d]", x)
			}
		}
		prefixes = append(prefixes, b.String())
	}
	for i := range attrs {
		for _, p := range prefixes {
			n := attrs[i].Name
			if n == p || strings.HasPrefix(n, p+".") || strings.HasPrefix(n, p+"[") {
				attrs[i].ForcesReplacement = true
				break
			}
		}
	}
}

// SummaryLine counts the changes the way the chat headline shows them.
func (d Diff) SummaryLine() string {
	return fmt.Sprintf("+%d to add, ~%d to change, -%d to destroy, ±%d to replace", d.Add, d.Change, d.Destroy, d.Replace)
}

func symbol(action string) string {
	switch action {
	case ActionCreate:
		return "+"
	case ActionUpdate:
		return "~"
	case ActionDelete:
		return "-"
	case ActionReplace:
		return "-/+"
	case ActionRead:
		return "<="
	case ActionForget:
		return "."
	case ActionImport:
		return "=>"
	case ActionMove:
		return "->"
	default:
		return "?"
	}
}

// priority orders lines for truncation: what loses data first, then what
// changes running things, then additions, then the rest.
func priority(l Line) int {
	switch {
	case l.Warning:
		return 0
	case l.Action == ActionUpdate && !strings.HasPrefix(l.Address, "output."):
		return 1
	case l.Action == ActionCreate && !strings.HasPrefix(l.Address, "output."):
		return 2
	case !strings.HasPrefix(l.Address, "output."):
		return 3
	default:
		return 4
	}
}

func writeHeader(b *strings.Builder, l Line) {
	if l.Warning {
		b.WriteString(warningMark)
		b.WriteByte(' ')
	}
	b.WriteString(symbol(l.Action))
	b.WriteByte(' ')
	b.WriteString(l.Address)
	b.WriteString(" (")
	b.WriteString(l.Action)
	b.WriteByte(')')
}

const (
	attrIndent = "\n    "
	arrow      = " → "
	forcesNote = " (forces replacement)"
)

func writeBlock(b *strings.Builder, l Line) { writeBlockWith(b, l, clip) }

func writeBlockWith(b *strings.Builder, l Line, value func(string) string) {
	writeHeader(b, l)
	for _, a := range l.Attrs {
		b.WriteString(attrIndent)
		b.WriteString(a.Name)
		b.WriteString(": ")
		if l.Action != ActionCreate {
			b.WriteString(value(a.Before))
			b.WriteString(arrow)
		}
		b.WriteString(value(a.After))
		if a.ForcesReplacement {
			b.WriteString(forcesNote)
		}
	}
}

func unclipped(s string) string { return s }

// headerRunes and blockRunes measure what writeHeader and writeBlock write,
// in characters, without building it: truncation then only renders the lines
// it keeps.
func headerRunes(l Line) int {
	n := utf8.RuneCountInString(symbol(l.Action)) + 1 + utf8.RuneCountInString(l.Address) + 2 + len(l.Action) + 1
	if l.Warning {
		n += utf8.RuneCountInString(warningMark) + 1
	}
	return n
}

func blockRunes(l Line) int {
	n := headerRunes(l)
	for _, a := range l.Attrs {
		n += len(attrIndent) + utf8.RuneCountInString(a.Name) + 2 + clipRunes(a.After)
		if l.Action != ActionCreate {
			n += clipRunes(a.Before) + utf8.RuneCountInString(arrow)
		}
		if a.ForcesReplacement {
			n += len(forcesNote)
		}
	}
	return n
}

func clip(s string) string {
	if len(s) <= maxValueRunes || utf8.RuneCountInString(s) <= maxValueRunes {
		return s
	}
	n := 0
	for i := range s {
		if n == maxValueRunes {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

func clipRunes(s string) int {
	return min(utf8.RuneCountInString(s), maxValueRunes+1)
}

// Render lays the diff out as plain text for chat: the summary line, then
// per resource a header ("~ module.x.terraform_data.y (update)") and indented
// attribute lines ("    input.image: \"a\" → \"b\""). Deletes and replaces
// carry ⚠️. Text is not escaped for any markup: that is the chat layer's job.
//
// maxChars (in characters, as chat platforms count them; <= 0 for no limit)
// bounds the result. When the whole diff does not fit, the summary line stays
// and the most important lines are kept, destroys and replaces first, then
// updates, then creates, each whole or cut down to its header; the text ends
// with "… N more changes in the attached file" and complete is false.
func (d Diff) Render(maxChars int) (text string, complete bool) {
	summary := d.SummaryLine()
	if d.NoChanges {
		s := summary + "\nNo changes."
		if maxChars > 0 && utf8.RuneCountInString(s) > maxChars {
			return truncateRunes(s, maxChars), false
		}
		return s, true
	}

	summaryRunes := utf8.RuneCountInString(summary)
	sizes := make([]int, len(d.Lines))
	total := summaryRunes
	for i, l := range d.Lines {
		sizes[i] = blockRunes(l)
		total += 1 + sizes[i]
	}
	if maxChars <= 0 || total <= maxChars {
		var b strings.Builder
		b.Grow(len(summary) + total + total/4)
		b.WriteString(summary)
		for _, l := range d.Lines {
			b.WriteByte('\n')
			writeBlock(&b, l)
		}
		return b.String(), true
	}

	footer := func(omitted int, partial bool) string {
		switch {
		case omitted == 1:
			return "… 1 more change in the attached file"
		case omitted > 1:
			return "… " + strconv.Itoa(omitted) + " more changes in the attached file"
		case partial:
			return "… all attribute changes in the attached file"
		}
		return ""
	}
	reserve := utf8.RuneCountInString(footer(len(d.Lines), false)) + 1
	budget := maxChars - summaryRunes - reserve
	if budget < 0 {
		return truncateRunes(summary+"\n"+footer(len(d.Lines), false), maxChars), false
	}

	order := make([]int, len(d.Lines))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return priority(d.Lines[order[a]]) < priority(d.Lines[order[b]]) })

	const (
		omitted = iota
		whole
		headerOnly
	)
	state := make([]uint8, len(d.Lines))
	kept, partial := 0, false
	for _, i := range order {
		if n := sizes[i] + 1; n <= budget {
			state[i], budget, kept = whole, budget-n, kept+1
			continue
		}
		if n := headerRunes(d.Lines[i]) + 1; n <= budget {
			state[i], budget, kept, partial = headerOnly, budget-n, kept+1, true
			continue
		}
		// Lower-priority lines must not take the place of this one.
		break
	}

	var out strings.Builder
	out.Grow(maxChars + maxChars/2)
	out.WriteString(summary)
	for i, l := range d.Lines {
		switch state[i] {
		case whole:
			out.WriteByte('\n')
			writeBlock(&out, l)
		case headerOnly:
			out.WriteByte('\n')
			writeHeader(&out, l)
		}
	}
	out.WriteByte('\n')
	out.WriteString(footer(len(d.Lines)-kept, partial))
	return out.String(), false
}

// Text is the whole diff for the file attached to the chat message: what
// Render(0) gives, with every value whole instead of clipped. It is made
// from the plan already decoded for the summary, so a plan is read by
// Terraform once (`terraform show -json`), not a second time as text;
// sensitive values are masked as in Render.
func (d Diff) Text() string {
	summary := d.SummaryLine()
	if d.NoChanges {
		return summary + "\nNo changes.\n"
	}
	n := len(summary) + 1
	for _, l := range d.Lines {
		n += len(l.Address) + 32
		for _, a := range l.Attrs {
			n += len(a.Name) + len(a.Before) + len(a.After) + 16
		}
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(summary)
	for _, l := range d.Lines {
		b.WriteByte('\n')
		writeBlockWith(&b, l, unclipped)
	}
	b.WriteByte('\n')
	return b.String()
}

func truncateRunes(s string, n int) string {
	if n <= 0 {
		return ""
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}
