package storecodec

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/deploybot/deploybot/steps"
)

// timeLayout is RFC 3339 with a fixed nine-digit fraction: RFC3339Nano drops
// trailing zeros, which would make "…05.1Z" sort before "…05Z" as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// FormatTime stores t in UTC; the zero time is "" so that "not yet" stays
// recognisable in SQL and reads back as the zero time.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// The string id is what Slack messages and the audit log carry; the
// integer is the table's key.
const idPrefix = "run-"

func FormatID(n int64) string { return idPrefix + strconv.FormatInt(n, 10) }

// ParseID accepts exactly the ids FormatID makes, so "run-07" cannot alias
// "run-7".
func ParseID(s string) (int64, bool) {
	rest, ok := strings.CutPrefix(s, idPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || n <= 0 || FormatID(n) != s {
		return 0, false
	}
	return n, true
}

// EncodeMap keeps nil ("null") and empty ("{}") apart so both round-trip.
func EncodeMap(m map[string]string) (string, error) {
	b, err := json.Marshal(m)
	return string(b), err
}

func DecodeMap(s string) (map[string]string, error) {
	var m map[string]string
	err := json.Unmarshal([]byte(s), &m)
	return m, err
}

// buttonJSON fixes the stored field names, so renaming a Go field cannot
// silently empty the buttons of runs already in the database.
type buttonJSON struct {
	Verb  string `json:"verb"`
	Label string `json:"label"`
	Style string `json:"style,omitempty"`
}

func EncodeButtons(bs []steps.Button) (string, error) {
	if bs == nil {
		return "null", nil
	}
	out := make([]buttonJSON, len(bs))
	for i, b := range bs {
		out[i] = buttonJSON(b)
	}
	b, err := json.Marshal(out)
	return string(b), err
}

func DecodeButtons(s string) ([]steps.Button, error) {
	var in []buttonJSON
	if err := json.Unmarshal([]byte(s), &in); err != nil || in == nil {
		return nil, err
	}
	out := make([]steps.Button, len(in))
	for i, b := range in {
		out[i] = steps.Button(b)
	}
	return out, nil
}

// CheckIndexes insists that a step's Index is its position: the table's key
// is the position, and a run whose Index disagrees would load differently
// from how it was saved.
func CheckIndexes(r *steps.Run) error {
	for i := range r.Steps {
		if r.Steps[i].Index != i {
			return fmt.Errorf("step %d (%s) has Index %d", i, r.Steps[i].ID, r.Steps[i].Index)
		}
	}
	return nil
}
