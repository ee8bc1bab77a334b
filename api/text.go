package api

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Text fields reach logs, search attributes, memo values, commit messages,
// Slack and terminals. Control characters in them are never meant: they
// truncate (NUL), rewrite terminals (ESC), hide text (CR, DEL) or split log
// lines (NEL). Every text field of every request, whether from a body, a
// query or a header, goes through textProblem before anything else looks at
// it, so the caller is answered 422 at once instead of failing later in a
// workflow.

// Whether a field may span lines.
const (
	singleLine = false
	multiLine  = true
)

// isControl reports C0 controls (U+0000–U+001F), DEL and C1 controls
// (U+0080–U+009F).
func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f)
}

// textProblem says what is wrong with s as a field value, or "" when nothing
// is. Single-line text refuses invalid UTF-8 and every control character;
// multi-line text also allows \n, \r and \t.
func textProblem(s string, multiline bool) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	for i, r := range s {
		if !isControl(r) || (multiline && (r == '\n' || r == '\r' || r == '\t')) {
			continue
		}
		if multiline {
			return fmt.Sprintf("must not contain control characters other than newline, carriage return and tab (U+%04X at byte %d)", r, i)
		}
		return fmt.Sprintf("must not contain control characters (U+%04X at byte %d)", r, i)
	}
	return ""
}

// checkText records the problem of one field in problems and reports whether
// the field is clean. Callers skip their other checks of a field that is not,
// so the answer names the control character rather than a symptom of it.
func checkText(problems map[string]string, field, value string, multiline bool) bool {
	if p := textProblem(value, multiline); p != "" {
		problems[field] = p
		return false
	}
	return true
}

// oneLine makes text composed from someone else's data (a GitHub delivery,
// which its sender cannot fix) safe as a single-line field: invalid UTF-8 and
// control characters become spaces, runs of spaces one space, and the result
// is cut to at most max bytes on a character boundary.
func oneLine(s string, max int) string {
	var b strings.Builder
	space := true // no leading space
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if isControl(r) || r == utf8.RuneError {
			r = ' '
		}
		if r == ' ' && space {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		space = r == ' '
		b.WriteRune(r)
	}
	return strings.TrimRight(b.String(), " ")
}

// validJSONText reports whether raw, one JSON value, holds only valid UTF-8.
// encoding/json silently turns invalid bytes and unpaired surrogate escapes
// (`\ud800`) into U+FFFD, so they are caught here, on the raw bytes, or not
// at all. JSON has backslashes only inside strings, so a flat scan suffices.
func validJSONText(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	pendingHigh := false // the previous escape was a high surrogate
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			if pendingHigh {
				return false
			}
			continue
		}
		i++
		if i >= len(raw) {
			return false
		}
		if raw[i] != 'u' {
			if pendingHigh {
				return false
			}
			continue
		}
		if i+4 >= len(raw) {
			return false
		}
		v, err := strconv.ParseUint(string(raw[i+1:i+5]), 16, 32)
		if err != nil {
			return false
		}
		i += 4
		switch {
		case v >= 0xD800 && v <= 0xDBFF:
			if pendingHigh {
				return false
			}
			pendingHigh = true
		case v >= 0xDC00 && v <= 0xDFFF:
			if !pendingHigh {
				return false
			}
			pendingHigh = false
		default:
			if pendingHigh {
				return false
			}
		}
	}
	return !pendingHigh
}
