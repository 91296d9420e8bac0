package storecodec

import (
	"testing"
	"time"

	"github.com/deploybot/deploybot/steps"
)

// The stored text is a contract with rows already written and with the
// other store (export copies rows as they are): these pin it to the byte.
func TestEncodingsAreStable(t *testing.T) {
	at := time.Date(2024, 3, 5, 7, 8, 9, 100_000_000, time.FixedZone("x", 3600))
	for _, c := range []struct{ got, want string }{
		{FormatTime(at), "2024-03-05T06:08:09.100000000Z"},
		{FormatTime(time.Time{}), ""},
		{FormatID(12), "run-12"},
		{must(EncodeMap(nil)), "null"},
		{must(EncodeMap(map[string]string{})), "{}"},
		{must(EncodeButtons(nil)), "null"},
		{must(EncodeButtons([]steps.Button{{Verb: "approve", Label: "Approve"}})), `[{"verb":"approve","label":"Approve"}]`},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if back, err := ParseTime(FormatTime(at)); err != nil || !back.Equal(at) {
		t.Errorf("ParseTime(FormatTime(%v)) = %v, %v", at, back, err)
	}
	for _, s := range []string{"run-07", "run-0", "run--1", "12", "run-"} {
		if _, ok := ParseID(s); ok {
			t.Errorf("ParseID(%q) accepted", s)
		}
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}
