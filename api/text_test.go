package api

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// badText are the values every text field must refuse. invalid UTF-8 is a
// raw 0xff byte; in JSON bodies also an unpaired surrogate escape, which
// encoding/json would otherwise turn into U+FFFD without a word.
var badText = map[string]string{
	"NUL":          "\x00",
	"ESC":          "\x1b",
	"DEL":          "\x7f",
	"NEL (C1)":     "\u0085",
	"invalid UTF8": "\xff",
}

const (
	invalidMarker   = "INVALID-UTF8-MARKER"
	surrogateMarker = "SURROGATE-MARKER"
)

// jsonBody marshals fields, writing raw invalid bytes where a value holds
// them (json.Marshal would repair them).
func jsonBody(t *testing.T, fields map[string]string) string {
	t.Helper()
	clean := map[string]string{}
	for k, v := range fields {
		clean[k] = strings.ReplaceAll(v, "\xff", invalidMarker)
	}
	b, err := json.Marshal(clean)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.ReplaceAll(b, []byte(invalidMarker), []byte("\xff")))
}

func with(base map[string]string, field, value string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	out[field] = value
	return out
}

func TestControlCharactersAreRefusedInEveryField(t *testing.T) {
	start := map[string]string{"repo": "acme/api", "ref": "main", "sha": "0123456", "failure_summary": "lint: gofmt",
		"log_excerpt": "main.go", "incident_id": "INC-1", "deadline": "36h"}
	digest := strings.Repeat("a", 64)
	approve := map[string]string{"decision_id": "dec_1", "diff_digest": digest, "base_sha": testBase, "comment": "looks right"}
	reject := map[string]string{"decision_id": "dec_1", "diff_digest": digest, "base_sha": testBase, "reason": "no"}

	type call struct {
		method, path, token, body string
		hdr                       []string
	}
	cases := map[string]func(bad string) call{}
	for field := range start {
		cases["start "+field] = func(bad string) call {
			return call{"POST", "/api/remediations", devTok, jsonBody(t, with(start, field, start[field]+bad)), nil}
		}
	}
	for field := range approve {
		cases["approve "+field] = func(bad string) call {
			return call{"POST", "/api/remediations/rem-1/approve", approverTok, jsonBody(t, with(approve, field, approve[field]+bad)), nil}
		}
	}
	cases["reject reason"] = func(bad string) call {
		return call{"POST", "/api/remediations/rem-1/reject", approverTok, jsonBody(t, with(reject, "reason", "no"+bad)), nil}
	}
	for _, route := range []string{"/api/remediations", "/api/remediations/rem-1/approve"} {
		cases["Idempotency-Key on "+route] = func(bad string) call {
			body := jsonBody(t, start)
			if strings.HasSuffix(route, "approve") {
				body = jsonBody(t, approve)
			}
			return call{"POST", route, adminTok, body, []string{"Idempotency-Key", "key-1" + bad}}
		}
	}
	for _, param := range []string{"phase", "repo", "page_size", "page_token"} {
		cases["list ?"+param] = func(bad string) call {
			return call{"GET", "/api/remediations?" + param + "=" + url.QueryEscape("5"+bad), approverTok, "", nil}
		}
	}
	fieldOf := func(name string) string {
		if strings.HasPrefix(name, "Idempotency-Key") {
			return "Idempotency-Key"
		}
		name = name[strings.LastIndex(name, " ")+1:]
		return strings.TrimPrefix(name, "?")
	}

	checked := 0
	for name, mk := range cases {
		values := map[string]string{}
		for k, v := range badText {
			values[k] = v
		}
		if c := mk(""); c.body != "" && c.hdr == nil {
			values["unpaired surrogate"] = surrogateMarker
		}
		if f := fieldOf(name); f != "log_excerpt" && f != "comment" && f != "reason" {
			values["newline in a single-line field"] = "\n"
		}
		for what, bad := range values {
			orch := &fakeOrch{}
			h := newTestHandler(t, orch)
			c := mk(bad)
			c.body = strings.Replace(c.body, surrogateMarker, `\ud800`, 1)
			rec, eb := do(t, h, c.method, c.path, c.token, c.body, c.hdr...)
			details, _ := eb.Details.(map[string]any)
			problem, _ := details[fieldOf(name)].(string)
			if rec.Code != 422 || eb.Error != "validation_failed" || !(strings.Contains(problem, "control characters") || strings.Contains(problem, "UTF-8")) {
				t.Errorf("%s with %s: want 422 validation_failed naming %s for its text, got %d %s", name, what, fieldOf(name), rec.Code, rec.Body)
			}
			checked++
			if len(orch.started)+len(orch.votes) != 0 {
				t.Errorf("%s with %s reached the workflow", name, what)
			}
		}
	}
	if len(cases) != 18 || checked < 100 { // 7 start fields, 4 approve, 1 reject, 2 headers, 4 query parameters
		t.Fatalf("the table shrank: %d fields, %d requests", len(cases), checked)
	}
}

func TestMultiLineFieldsKeepLineBreaks(t *testing.T) {
	orch := &fakeOrch{}
	h := newTestHandler(t, orch)
	body := jsonBody(t, map[string]string{"repo": "acme/api", "failure_summary": "lint: gofmt", "log_excerpt": "main.go\nutil.go\r\n\tError: not formatted"})
	if rec, _ := do(t, h, "POST", "/api/remediations", devTok, body); rec.Code != 202 || orch.started[0].LogExcerpt != "main.go\nutil.go\r\n\tError: not formatted" {
		t.Fatalf("a multi-line log excerpt: %d %s", rec.Code, rec.Body)
	}
	vote := jsonBody(t, map[string]string{"decision_id": "dec_1", "diff_digest": strings.Repeat("a", 64), "base_sha": testBase, "comment": "checked:\n- gofmt\n- tests"})
	if rec, _ := do(t, h, "POST", "/api/remediations/rem-1/approve", approverTok, vote); rec.Code != 200 || orch.votes[0].Comment != "checked:\n- gofmt\n- tests" {
		t.Fatalf("a multi-line comment: %d %s", rec.Code, rec.Body)
	}
	reject := jsonBody(t, map[string]string{"decision_id": "dec_1", "diff_digest": strings.Repeat("a", 64), "base_sha": testBase, "reason": "wrong file\nsee CI"})
	if rec, _ := do(t, h, "POST", "/api/remediations/rem-1/reject", approverTok, reject); rec.Code != 200 {
		t.Fatalf("a multi-line reason: %d %s", rec.Code, rec.Body)
	}
	// A well-formed surrogate pair is text, not an error.
	pair := `{"repo":"acme/api","failure_summary":"lint \ud83d\ude00"}`
	if rec, _ := do(t, h, "POST", "/api/remediations", devTok, pair); rec.Code != 202 {
		t.Fatalf("a surrogate pair: %d %s", rec.Code, rec.Body)
	}
}

func TestEmptyBodyAndNonObject(t *testing.T) {
	h := newTestHandler(t, &fakeOrch{})
	for body, want := range map[string]string{
		"":        "empty_body",
		" \n\t ":  "empty_body",
		"[]":      "not_an_object",
		`"x"`:     "not_an_object",
		"null":    "not_an_object",
		"42":      "not_an_object",
		"{":       "malformed_json",
		"{} junk": "trailing_data",
	} {
		rec, eb := do(t, h, "POST", "/api/remediations", devTok, body, "Content-Type", "application/json")
		if rec.Code != 400 || eb.Error != want {
			t.Errorf("body %q: want 400 %s, got %d %s", body, want, rec.Code, rec.Body)
		}
	}
}

func TestTextHelpers(t *testing.T) {
	for in, want := range map[string]string{
		"GitHub workflow CI\x00\nrelease failed on main": "GitHub workflow CI release failed on main",
		"a\x1b[31mred\x1b[0m":                            "a [31mred [0m",
		"ok \xff\xfe bytes":                              "ok bytes",
		"  padded\u0085 ":                                "padded",
	} {
		if got := oneLine(in, 1000); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
	if got := oneLine(strings.Repeat("é", 10), 5); got != "éé" {
		t.Errorf("oneLine cuts on a character boundary: %q", got)
	}
	for raw, want := range map[string]bool{
		`"plain"`:                true,
		`"\ud83d\ude00"`:         true,
		`"\\ud800"`:              true, // an escaped backslash, then text
		`"\ud800"`:               false,
		`"\ude00"`:               false,
		`"\ud800x"`:              false,
		`"\ud800\ud800\ude00"`:   false,
		"\"\xff\"":               false,
		`{"a":["\u00e9",1]}`:     true,
		`{"a":["\udbff\udfff"]}`: true,
	} {
		if got := validJSONText([]byte(raw)); got != want {
			t.Errorf("validJSONText(%s) = %v, want %v", raw, got, want)
		}
	}
}
