package terraform

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	tfjson "github.com/hashicorp/terraform-json"
)

// planFromJSON decodes plan JSON the way terraform-exec does, so tests see
// the same Go types (maps, []any, float64) as real plans.
func planFromJSON(t testing.TB, s string) *tfjson.Plan {
	t.Helper()
	var p tfjson.Plan
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func TestSummarizeMasksSensitiveAndUnknown(t *testing.T) {
	p := planFromJSON(t, `{
  "format_version": "1.2",
  "resource_changes": [{
    "address": "aws_db_instance.main",
    "type": "aws_db_instance", "name": "main", "mode": "managed",
    "change": {
      "actions": ["update"],
      "before": {"id": "db-1", "password": "hunter2-old", "engine_version": "15.3",
                 "endpoint": "db.internal:5432", "tags": {"team": "openverse", "token": "t-old"},
                 "params": ["a", "s3cret-old"], "config": {"user": "app", "pass": "p-old"}},
      "after":  {"id": "db-1", "password": "hunter2-new", "engine_version": "15.4",
                 "tags": {"team": "openverse", "token": "t-new"},
                 "params": ["a", "s3cret-new"], "config": {"user": "app2", "pass": "p-new"}},
      "after_unknown": {"endpoint": true, "tags": {}, "params": [false, false]},
      "before_sensitive": {"password": true, "tags": {"token": true}, "params": [false, true], "config": true},
      "after_sensitive":  {"password": true, "tags": {"token": true}, "params": [false, true], "config": true}
    }
  }, {
    "address": "random_password.api",
    "type": "random_password", "name": "api", "mode": "managed",
    "change": {
      "actions": ["create"],
      "before": null,
      "after": {"length": 32, "special": false, "keepers": {"a": "b"}, "labels": [], "empty": {}},
      "after_unknown": {"id": true, "result": true},
      "after_sensitive": {"result": true}
    }
  }],
  "output_changes": {
    "db_password": {"actions": ["update"], "before": "o-old", "after": "o-new", "before_sensitive": true, "after_sensitive": true},
    "endpoint": {"actions": ["create"], "before": null, "after_unknown": true},
    "same": {"actions": ["no-op"], "before": "x", "after": "x"}
  }
}`)
	d := Summarize(p)
	if d.Add != 1 || d.Change != 1 || d.NoChanges {
		t.Fatalf("counts %+v", d)
	}
	db := findLine(t, d, "aws_db_instance.main")
	want := []AttrChange{
		{Name: "config", Before: SensitiveValue, After: SensitiveValue},
		{Name: "endpoint", Before: `"db.internal:5432"`, After: UnknownValue},
		{Name: "engine_version", Before: `"15.3"`, After: `"15.4"`},
		{Name: "params[1]", Before: SensitiveValue, After: SensitiveValue},
		{Name: "password", Before: SensitiveValue, After: SensitiveValue},
		{Name: "tags.token", Before: SensitiveValue, After: SensitiveValue},
	}
	if fmt.Sprint(db.Attrs) != fmt.Sprint(want) {
		t.Fatalf("db attrs\n got %+v\nwant %+v", db.Attrs, want)
	}
	pw := findLine(t, d, "random_password.api")
	wantCreate := []AttrChange{
		{Name: "empty", After: "{}"},
		{Name: "id", After: UnknownValue},
		{Name: "keepers.a", After: `"b"`},
		{Name: "labels", After: "[]"},
		{Name: "length", After: "32"},
		{Name: "result", After: UnknownValue},
		{Name: "special", After: "false"},
	}
	if fmt.Sprint(pw.Attrs) != fmt.Sprint(wantCreate) {
		t.Fatalf("create attrs\n got %+v\nwant %+v", pw.Attrs, wantCreate)
	}
	out := findLine(t, d, "output.db_password")
	if len(out.Attrs) != 1 || out.Attrs[0].Before != SensitiveValue || out.Attrs[0].After != SensitiveValue {
		t.Fatalf("sensitive output %+v", out)
	}
	if ep := findLine(t, d, "output.endpoint"); ep.Attrs[0].After != UnknownValue {
		t.Fatalf("unknown output %+v", ep)
	}
	for _, l := range d.Lines {
		if l.Address == "output.same" {
			t.Fatal("no-op output listed")
		}
	}

	text, complete := d.Render(0)
	if !complete {
		t.Fatal("unlimited render incomplete")
	}
	file := d.Text()
	for _, secret := range []string{"hunter2", "s3cret", "t-old", "t-new", "p-old", "p-new", "o-old", "o-new"} {
		if strings.Contains(text, secret) || strings.Contains(file, secret) || strings.Contains(fmt.Sprint(d), secret) {
			t.Errorf("sensitive value %q in the diff:\n%s", secret, text)
		}
	}
	for _, line := range []string{
		"~ aws_db_instance.main (update)",
		`    engine_version: "15.3" → "15.4"`,
		`    endpoint: "db.internal:5432" → (known after apply)`,
		"    password: (sensitive) → (sensitive)",
		"+ random_password.api (create)",
		"    result: (known after apply)",
		"    length: 32",
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("render lacks line %q:\n%s", line, text)
		}
	}
}

func TestSummarizeNestedSensitiveInsideUnknownComposite(t *testing.T) {
	// A composite that becomes unknown is shown as a whole; sensitive leaves
	// inside it stay masked.
	p := planFromJSON(t, `{"format_version": "1.2", "resource_changes": [{"address": "x.y", "change": {
	  "actions": ["update"],
	  "before": {"output": {"user": "u", "key": "k-secret"}, "n": 1},
	  "after": {"n": 2},
	  "after_unknown": {"output": true},
	  "before_sensitive": {"output": {"key": true}}
	}}]}`)
	got := Summarize(p).Lines[0].Attrs
	want := `[{n 1 2 false} {output {key = (sensitive), user = "u"} (known after apply) false}]`
	if fmt.Sprint(got) != want {
		t.Fatalf("got %v\nwant %s", got, want)
	}
}

func TestRenderWarnsOnDestroyAndReplace(t *testing.T) {
	p := planFromJSON(t, `{"format_version": "1.2", "resource_changes": [
	  {"address": "a.replace_me", "change": {"actions": ["delete", "create"], "before": {"ami": "old", "id": "i-1"}, "after": {"ami": "new"}, "after_unknown": {"id": true}, "replace_paths": [["ami"]]}},
	  {"address": "a.cbd", "change": {"actions": ["create", "delete"], "before": {"v": 1}, "after": {"v": 2}}},
	  {"address": "a.gone", "change": {"actions": ["delete"], "before": {"id": "x"}, "after": null}},
	  {"address": "a.same", "change": {"actions": ["no-op"], "before": {"id": "x"}, "after": {"id": "x"}}},
	  {"address": "data.a.read", "change": {"actions": ["read"], "before": null, "after": {}}}
	]}`)
	d := Summarize(p)
	if d.Replace != 2 || d.Destroy != 1 || d.Add != 0 || d.Change != 0 || len(d.Lines) != 4 {
		t.Fatalf("diff %+v", d)
	}
	text, _ := d.Render(0)
	want := strings.Join([]string{
		"+0 to add, ~0 to change, -1 to destroy, ±2 to replace",
		"⚠️ -/+ a.replace_me (replace)",
		`    ami: "old" → "new" (forces replacement)`,
		`    id: "i-1" → (known after apply)`,
		"⚠️ -/+ a.cbd (replace)",
		"    v: 1 → 2",
		"⚠️ - a.gone (delete)",
		"<= data.a.read (read)",
	}, "\n")
	if text != want {
		t.Fatalf("got:\n%s\nwant:\n%s", text, want)
	}
}

func TestRenderNoChanges(t *testing.T) {
	d := Summarize(planFromJSON(t, `{"format_version": "1.2", "resource_changes": [{"address": "a.b", "change": {"actions": ["no-op"]}}]}`))
	text, complete := d.Render(3000)
	if !d.NoChanges || !complete || text != "+0 to add, ~0 to change, -0 to destroy, ±0 to replace\nNo changes." {
		t.Fatalf("%+v %q %v", d, text, complete)
	}
	if !Summarize(nil).NoChanges {
		t.Fatal("nil plan has changes")
	}
}

// generatedPlan builds a plan with n resource changes: every 50th replaced,
// every 100th deleted, every 3rd updated, the rest created.
func generatedPlan(n int) *tfjson.Plan {
	p := &tfjson.Plan{FormatVersion: "1.2"}
	for i := range n {
		addr := "module.app.terraform_data.r[" + strconv.Itoa(i) + "]"
		c := &tfjson.Change{}
		switch {
		case i%100 == 0:
			c.Actions = tfjson.Actions{tfjson.ActionDelete}
			c.Before = map[string]any{"id": "id-" + strconv.Itoa(i)}
		case i%50 == 0:
			c.Actions = tfjson.Actions{tfjson.ActionDelete, tfjson.ActionCreate}
			c.Before = map[string]any{"id": "id", "triggers_replace": float64(1)}
			c.After = map[string]any{"triggers_replace": float64(2)}
			c.AfterUnknown = map[string]any{"id": true}
			c.ReplacePaths = []any{[]any{"triggers_replace"}}
		case i%3 == 0:
			c.Actions = tfjson.Actions{tfjson.ActionUpdate}
			c.Before = map[string]any{"id": "id", "input": map[string]any{"image": "img:rel-1", "n": float64(i)}}
			c.After = map[string]any{"id": "id", "input": map[string]any{"image": "img:rel-2", "n": float64(i)}}
			c.AfterUnknown = map[string]any{"output": true}
		default:
			c.Actions = tfjson.Actions{tfjson.ActionCreate}
			c.After = map[string]any{"input": map[string]any{"image": "img:rel-2", "n": float64(i)}, "triggers_replace": nil}
			c.AfterUnknown = map[string]any{"id": true, "output": true}
		}
		p.ResourceChanges = append(p.ResourceChanges, &tfjson.ResourceChange{Address: addr, Change: c})
	}
	return p
}

func TestRenderTruncatesKeepingMostImportant(t *testing.T) {
	d := Summarize(generatedPlan(1000))
	// 10 deletes, 10 replaces, 327 updates (multiples of 3 that are not
	// multiples of 50), the rest creates.
	if d.Destroy != 10 || d.Replace != 10 || d.Change != 327 || d.Add != 653 {
		t.Fatalf("counts %s", d.SummaryLine())
	}
	full, complete := d.Render(0)
	if !complete || strings.Count(full, "\n") < 1000 {
		t.Fatal("unlimited render is not the full diff")
	}

	for _, limit := range []int{3000, 1500, 40000} {
		text, complete := d.Render(limit)
		if complete {
			t.Fatalf("limit %d: complete", limit)
		}
		if n := utf8.RuneCountInString(text); n > limit {
			t.Fatalf("limit %d: %d characters", limit, n)
		}
		lines := strings.Split(text, "\n")
		if lines[0] != d.SummaryLine() {
			t.Fatalf("limit %d: first line %q", limit, lines[0])
		}
		m := regexp.MustCompile(`^… (\d+) more changes in the attached file$`).FindStringSubmatch(lines[len(lines)-1])
		if m == nil {
			t.Fatalf("limit %d: last line %q", limit, lines[len(lines)-1])
		}
		shown := 0
		kinds := map[string]int{}
		for _, l := range lines[1 : len(lines)-1] {
			if !strings.HasPrefix(l, "    ") {
				shown++
				kinds[l[strings.LastIndexByte(l, '(')+1:len(l)-1]]++
			}
		}
		if more, _ := strconv.Atoi(m[1]); more+shown != len(d.Lines) {
			t.Fatalf("limit %d: %d shown + %s more != %d", limit, shown, m[1], len(d.Lines))
		}
		// Destroys and replaces go in before any update, updates before any
		// create.
		if kinds["update"]+kinds["create"] > 0 && (kinds["delete"] != 10 || kinds["replace"] != 10) {
			t.Fatalf("limit %d: destructive lines dropped for others: %v", limit, kinds)
		}
		if kinds["create"] > 0 && kinds["update"] != 327 {
			t.Fatalf("limit %d: creates shown before all updates: %v", limit, kinds)
		}
		if shown == 0 {
			t.Fatalf("limit %d: nothing shown", limit)
		}
		if !strings.Contains(text, "⚠️ - module.app.terraform_data.r[0] (delete)") {
			t.Fatalf("limit %d: warning missing", limit)
		}
	}

	// Too small for anything but the headline: still within the limit.
	if text, complete := d.Render(20); complete || utf8.RuneCountInString(text) > 20 {
		t.Fatalf("tiny render %q", text)
	}
}

func TestRenderCutsBlocksToHeaders(t *testing.T) {
	long := strings.Repeat("x", 5000)
	p := planFromJSON(t, `{"format_version": "1.2", "resource_changes": [
	  {"address": "a.big", "change": {"actions": ["delete", "create"], "before": {"policy": "`+long+`", "a": "1", "b": "1", "c": "1"}, "after": {"policy": "y", "a": "2", "b": "2", "c": "2"}}},
	  {"address": "a.small", "change": {"actions": ["update"], "before": {"v": "1"}, "after": {"v": "2"}}}
	]}`)
	d := Summarize(p)
	full, _ := d.Render(0)
	if strings.Contains(full, strings.Repeat("x", maxValueRunes)) || !strings.Contains(full, `policy: "`+strings.Repeat("x", maxValueRunes-1)+"… → ") {
		t.Fatal("long value not clipped in render")
	}
	// The attached file has what the message had to clip, value whole.
	file := d.Text()
	for _, want := range []string{
		"+0 to add, ~1 to change, -0 to destroy, ±1 to replace\n",
		"⚠️ -/+ a.big (replace)\n",
		`    policy: "` + long + `" → "y"`,
		"~ a.small (update)\n    v: \"1\" → \"2\"\n",
	} {
		if !strings.Contains(file, want) {
			t.Errorf("attached text lacks %.80q:\n%.400s", want, file)
		}
	}
	if got := (Diff{NoChanges: true}).Text(); got != "+0 to add, ~0 to change, -0 to destroy, ±0 to replace\nNo changes.\n" {
		t.Errorf("no-change text %q", got)
	}
	text, complete := d.Render(300)
	if complete || !strings.Contains(text, "⚠️ -/+ a.big (replace)\n") || strings.Contains(text, "policy") ||
		!strings.Contains(text, `    v: "1" → "2"`) || !strings.HasSuffix(text, "… all attribute changes in the attached file") {
		t.Fatalf("render:\n%s", text)
	}
}

func TestQuoteAndStripANSI(t *testing.T) {
	if got := quote("a\"b\\c\nd\x1b[31me"); got != `"a\"b\\c\nd\u001b[31me"` {
		t.Fatalf("quote = %s", got)
	}
	if got := quote("héllo ✓"); got != `"héllo ✓"` {
		t.Fatalf("quote = %s", got)
	}
	cases := map[string]string{
		"plain":                          "plain",
		"\x1b[1m\x1b[31mError:\x1b[0m x": "Error: x",
		"a\x1b]8;;http://x\x07link\x1b]8;;\x1b\\b": "alinkb",
		"tail\x1b[":  "tail",
		"\x1bcreset": "reset",
	}
	for in, want := range cases {
		if got := StripANSI(in); got != want {
			t.Errorf("StripANSI(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBlockRunesMatchesRendering(t *testing.T) {
	long := strings.Repeat("é", 3*maxValueRunes)
	d := Summarize(generatedPlan(300))
	d.Lines = append(d.Lines,
		Line{Address: "a.unicode_ü", Action: ActionReplace, Warning: true, Attrs: []AttrChange{{Name: "naïve", Before: long, After: "✓", ForcesReplacement: true}}},
		Line{Address: "a.created", Action: ActionCreate, Attrs: []AttrChange{{Name: "x", After: long}}},
	)
	for _, l := range d.Lines {
		var b strings.Builder
		writeBlock(&b, l)
		if got, want := blockRunes(l), utf8.RuneCountInString(b.String()); got != want {
			t.Fatalf("%s: blockRunes = %d, rendered %d:\n%s", l.Address, got, want, b.String())
		}
		b.Reset()
		writeHeader(&b, l)
		if got, want := headerRunes(l), utf8.RuneCountInString(b.String()); got != want {
			t.Fatalf("%s: headerRunes = %d, rendered %d", l.Address, got, want)
		}
	}
}

// An import block or a moved block changes the state even when the object
// itself does not change: people approving the plan must see it, and a plan
// of only such changes still needs their approval.
func TestImportsAndMovesAreShownAndNeedApproval(t *testing.T) {
	d := Summarize(planFromJSON(t, `{"format_version": "1.2", "resource_changes": [
		{"address": "terraform_data.imported", "change": {"actions": ["no-op"], "importing": {"id": "i-0abc"}}},
		{"address": "module.ingestion-server.terraform_data.new", "previous_address": "terraform_data.old", "change": {"actions": ["no-op"]}},
		{"address": "terraform_data.same", "change": {"actions": ["no-op"]}}
	]}`))
	if d.NoChanges {
		t.Fatal("a plan that imports and moves resources was reported as no changes (it would be applied without approval)")
	}
	if len(d.Lines) != 2 {
		t.Fatalf("want the import and the move, not the plain no-op; got %+v", d.Lines)
	}
	text := d.Text()
	for _, want := range []string{
		`=> terraform_data.imported (imported from id "i-0abc") (import)`,
		`-> module.ingestion-server.terraform_data.new (moved from terraform_data.old) (move)`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the uploaded plan lacks %q:\n%s", want, text)
		}
	}
	if msg, _ := d.Render(3000); !strings.Contains(msg, "imported from id") || !strings.Contains(msg, "moved from") {
		t.Errorf("the message lacks the import or the move:\n%s", msg)
	}
}
