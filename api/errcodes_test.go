package api

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"remediator/internal/errcode"
)

// catalogue maps each code's name to its status.
func catalogue() map[string]int {
	out := map[string]int{}
	for _, c := range errcode.All() {
		out[c.Name] = c.Status
	}
	return out
}

// codeToken is how a code looks in backticks; other backticked text in the
// table (`WWW-Authenticate: Bearer`, `Retry-After`, `Idempotency-Key`) is not.
var codeToken = regexp.MustCompile("`([a-z][a-z0-9]*(?:_[a-z0-9]+)*)`")

// TestREADMEErrorTableMatchesCatalogue: the `| Status | When (codes) |` table
// lists every code of the catalogue exactly once, in the row of its status,
// and nothing else.
func TestREADMEErrorTableMatchesCatalogue(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	start := slices.Index(lines, "| Status | When (codes) |")
	if start < 0 {
		t.Fatal("README.md has no `| Status | When (codes) |` table")
	}
	documented := map[string]int{}
	rows := map[int]bool{}
	for _, line := range lines[start+2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		status, err := strconv.Atoi(strings.TrimSpace(cells[0]))
		if err != nil {
			t.Errorf("row %q: first cell is not a status", line)
			continue
		}
		if rows[status] {
			t.Errorf("status %d has two rows (one row per status)", status)
		}
		rows[status] = true
		for _, m := range codeToken.FindAllStringSubmatch(strings.Join(cells[1:], "|"), -1) {
			code := m[1]
			if prev, dup := documented[code]; dup {
				t.Errorf("`%s` is listed twice (rows %d and %d)", code, prev, status)
			}
			documented[code] = status
		}
	}
	want := catalogue()
	for code, status := range documented {
		switch ws, ok := want[code]; {
		case !ok:
			t.Errorf("README lists `%s` (row %d), which is not in internal/errcode", code, status)
		case ws != status:
			t.Errorf("README lists `%s` under %d, the catalogue says %d", code, status, ws)
		}
	}
	for code, status := range want {
		if _, ok := documented[code]; !ok {
			t.Errorf("README's error table lacks `%s` (%d)", code, status)
		}
	}
}

// TestOpenAPIErrorCodesMatchCatalogue: the Error schema's enum is exactly the
// catalogue; every error response lists the codes it may carry in
// x-error-codes, each with the status the response is documented under;
// together they name every code; examples use a listed code.
func TestOpenAPIErrorCodesMatchCatalogue(t *testing.T) {
	doc, _ := openAPISpec(t)
	want := catalogue()

	var enum []string
	for _, v := range doc.Components.Schemas["Error"].Value.Properties["error"].Value.Enum {
		enum = append(enum, fmt.Sprint(v))
	}
	var names []string
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	sortedEnum := slices.Sorted(slices.Values(enum))
	if !slices.Equal(sortedEnum, names) {
		t.Errorf("Error.error enum differs from internal/errcode:\n\tmissing: %v\n\textra: %v", missing(names, enum), missing(enum, names))
	}
	if len(slices.Compact(sortedEnum)) != len(enum) {
		t.Error("Error.error enum lists a code twice")
	}

	listed := map[string]bool{}
	check := func(at string, r *openapi3.Response, status int) {
		if !isErrorResponse(r) {
			return
		}
		codes := errorCodesOf(r)
		if len(codes) == 0 {
			t.Errorf("%s: an error response without x-error-codes", at)
		}
		for _, code := range codes {
			listed[code] = true
			switch ws, ok := want[code]; {
			case !ok:
				t.Errorf("%s: x-error-codes names %q, which is not in internal/errcode", at, code)
			case status != 0 && ws != status:
				t.Errorf("%s: x-error-codes names %q under %d, the catalogue says %d", at, code, status, ws)
			}
		}
		for name, ex := range exampleCodes(r) {
			if !slices.Contains(codes, ex) {
				t.Errorf("%s: example %s uses %q, not one of its x-error-codes %v", at, name, ex, codes)
			}
		}
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for key, ref := range op.Responses.Map() {
				status, err := strconv.Atoi(key)
				if err != nil {
					t.Errorf("%s %s: response %q is not a status", method, path, key)
					continue
				}
				check(fmt.Sprintf("%s %s %s", method, path, key), ref.Value, status)
			}
		}
	}
	unrouted := map[string]int{}
	for status, name := range unroutedResponses {
		unrouted[name] = status
	}
	for name, ref := range doc.Components.Responses {
		// Answers outside any operation have their status here; the others
		// are checked where operations reference them.
		check("components/responses/"+name, ref.Value, unrouted[name])
		statuses := map[int]bool{}
		for _, code := range errorCodesOf(ref.Value) {
			statuses[want[code]] = true
		}
		if len(statuses) > 1 {
			t.Errorf("components/responses/%s mixes codes of different statuses: %v", name, errorCodesOf(ref.Value))
		}
	}
	for _, name := range names {
		if !listed[name] {
			t.Errorf("no response of openapi.yaml lists %q (%d) in x-error-codes", name, want[name])
		}
	}
}

// exampleCodes returns the `error` of each JSON example of a response.
func exampleCodes(r *openapi3.Response) map[string]string {
	out := map[string]string{}
	mt := r.Content.Get("application/json")
	if mt == nil {
		return out
	}
	add := func(name string, v any) {
		if m, ok := v.(map[string]any); ok {
			if code, ok := m["error"].(string); ok {
				out[name] = code
			}
		}
	}
	add("example", mt.Example)
	for name, ex := range mt.Examples {
		if ex.Value != nil {
			add(name, ex.Value.Value)
		}
	}
	return out
}

// missing returns the elements of a not in b.
func missing(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
