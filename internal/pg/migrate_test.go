package pg

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadOrdersAndRefusesBadSets(t *testing.T) {
	ok := Set{Component: "x", Dir: "m", Table: "x_migrations", Files: fstest.MapFS{
		"m/002_more.sql":  {Data: []byte("B")},
		"m/001_first.sql": {Data: []byte("A")},
	}}
	ms, err := ok.Load()
	if err != nil || len(ms) != 2 || ms[0].Name != "001_first" || ms[1].Version != 2 || ms[1].SQL != "B" {
		t.Fatalf("load: %+v %v", ms, err)
	}
	for name, files := range map[string]fstest.MapFS{
		"not named NNN_name.sql": {"m/first.sql": {Data: []byte("A")}},
		"share version 1":        {"m/001_a.sql": {Data: []byte("A")}, "m/001_b.sql": {Data: []byte("B")}},
	} {
		if _, err := (Set{Component: "x", Dir: "m", Table: "t", Files: files}).Load(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("want %q, got %v", name, err)
		}
	}
	if err := (Set{Component: "x", Dir: "m", Table: "t; DROP TABLE y", Files: ok.Files}).Apply(context.Background(), nil); err == nil {
		t.Error("a table name that is not a plain name must be refused")
	}
}
