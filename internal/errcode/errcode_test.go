package errcode

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"regexp"
	"testing"
)

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

func TestCatalogueIsWellFormed(t *testing.T) {
	codes := All()
	if len(codes) == 0 {
		t.Fatal("empty catalogue")
	}
	seen := map[string]bool{}
	prev := 0
	for _, c := range codes {
		if !namePattern.MatchString(c.Name) {
			t.Errorf("%q: names are lower snake case", c.Name)
		}
		if seen[c.Name] {
			t.Errorf("%q is declared twice", c.Name)
		}
		seen[c.Name] = true
		if c.Status < 400 || c.Status > 599 || http.StatusText(c.Status) == "" {
			t.Errorf("%q: status %d is not an HTTP error status", c.Name, c.Status)
		}
		if c.Status < prev {
			t.Errorf("%q: All() is ordered by status, %d after %d", c.Name, c.Status, prev)
		}
		prev = c.Status
		if c.Meaning == "" {
			t.Errorf("%q has no meaning", c.Name)
		}
		if got, ok := Lookup(c.Name); !ok || got != c {
			t.Errorf("Lookup(%q) = %+v, %v", c.Name, got, ok)
		}
	}
	if _, ok := Lookup("no_such_code"); ok {
		t.Error("Lookup invents codes")
	}
	codes[0].Name = "mutated"
	if All()[0].Name == "mutated" {
		t.Error("All() must return a copy")
	}
}

// TestAllListsEveryDeclaredCode reads this package's source: every exported
// variable of type Code must be in All(), so a code added without being
// listed cannot escape the README and OpenAPI checks.
func TestAllListsEveryDeclaredCode(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "errcode.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.VAR {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !name.IsExported() || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.CompositeLit); ok {
					if id, ok := lit.Type.(*ast.Ident); ok && id.Name == "Code" {
						declared = append(declared, name.Name)
					}
				}
			}
		}
	}
	// With names unique (checked above) and every entry a declared variable,
	// equal counts mean nothing declared is left out.
	if len(declared) != len(All()) {
		t.Errorf("%d exported codes declared (%v), All() lists %d: add the new code to all", len(declared), declared, len(All()))
	}
}
