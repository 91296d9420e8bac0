package storecodec

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestBadMigrationNames(t *testing.T) {
	for _, fsys := range []fstest.MapFS{
		{"init.sql": {}},
		{"0001_a.sql": {}, "1_b.sql": {}},
		{},
	} {
		if _, err := LoadMigrations(fsys); err == nil {
			t.Errorf("LoadMigrations(%v) accepted", fsys)
		}
	}
}

func TestNeeded(t *testing.T) {
	ms := []Migration{{Version: 1}, {Version: 2}, {Version: 3}}
	for _, c := range []struct {
		applied []int
		m       int
		need    bool
		err     string
	}{
		{nil, 0, true, ""},
		{[]int{1}, 0, false, ""},
		{[]int{1}, 1, true, ""},
		{[]int{1, 3}, 1, false, "has migration 3 but lacks 2"},
		{[]int{1, 4}, 2, false, "migration 4, which this deploybot does not know (it knows up to 3)"},
	} {
		need, err := Needed(ms, c.applied, ms[c.m])
		if need != c.need || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("Needed(%v, %d) = %v, %v; want %v, %q", c.applied, ms[c.m].Version, need, err, c.need, c.err)
		}
	}
}
