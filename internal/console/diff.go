package console

import (
	"regexp"
	"strconv"
	"strings"
)

// A unified diff parsed for display. Every string in it is repository
// content and is only ever rendered through html/template's escaping.

// Line kinds, also the CSS classes of the rendered lines.
const (
	lineAdd  = "add"
	lineDel  = "del"
	lineCtx  = "ctx"
	lineHunk = "hunk"
	lineMeta = "meta"
)

type diffLine struct {
	Kind     string
	Old, New int // line numbers; 0 = none on that side
	Text     string
}

// splitRow is one row of the side-by-side view.
type splitRow struct {
	Hunk        string
	Left, Right *diffLine
}

type diffFile struct {
	Name           string
	OldName        string // when renamed, created ("/dev/null") or deleted
	Lines          []diffLine
	Added, Removed int
	// Open: shown expanded (small files of small diffs); the rest start
	// collapsed in their <details>.
	Open bool
}

// Rows pairs the removed and added lines of each change for the
// side-by-side view.
func (f diffFile) Rows() []splitRow {
	var rows []splitRow
	var dels, adds []*diffLine
	flush := func() {
		for i := 0; i < max(len(dels), len(adds)); i++ {
			var r splitRow
			if i < len(dels) {
				r.Left = dels[i]
			}
			if i < len(adds) {
				r.Right = adds[i]
			}
			rows = append(rows, r)
		}
		dels, adds = nil, nil
	}
	for i := range f.Lines {
		l := &f.Lines[i]
		switch l.Kind {
		case lineDel:
			if len(adds) > 0 {
				flush()
			}
			dels = append(dels, l)
		case lineAdd:
			adds = append(adds, l)
		case lineHunk:
			flush()
			rows = append(rows, splitRow{Hunk: l.Text})
		default:
			flush()
			rows = append(rows, splitRow{Left: l, Right: l})
		}
	}
	flush()
	return rows
}

var hunkHeader = regexp.MustCompile(`^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@`)

// openLimit: files with more changed lines than this start collapsed, and
// so do all files of a diff touching more than openFiles files.
const (
	openLimit = 200
	openFiles = 10
)

// parseDiff reads a unified diff (git's or plain). Lines it cannot place
// are kept as meta lines of the current file, so nothing is hidden.
func parseDiff(diff string) []diffFile {
	var files []diffFile
	var cur *diffFile
	var oldNo, newNo, oldLeft, newLeft int
	begin := func(name string) {
		files = append(files, diffFile{Name: name})
		cur = &files[len(files)-1]
		oldLeft, newLeft = 0, 0
	}
	for line := range strings.SplitSeq(strings.TrimSuffix(diff, "\n"), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if cur != nil && (oldLeft > 0 || newLeft > 0) {
			switch {
			case strings.HasPrefix(line, "+"):
				cur.Lines = append(cur.Lines, diffLine{Kind: lineAdd, New: newNo, Text: line[1:]})
				newNo++
				newLeft--
				cur.Added++
				continue
			case strings.HasPrefix(line, "-"):
				cur.Lines = append(cur.Lines, diffLine{Kind: lineDel, Old: oldNo, Text: line[1:]})
				oldNo++
				oldLeft--
				cur.Removed++
				continue
			case strings.HasPrefix(line, " ") || line == "":
				text := ""
				if line != "" {
					text = line[1:]
				}
				cur.Lines = append(cur.Lines, diffLine{Kind: lineCtx, Old: oldNo, New: newNo, Text: text})
				oldNo++
				newNo++
				oldLeft--
				newLeft--
				continue
			}
		}
		switch {
		case strings.HasPrefix(line, "diff --git "):
			begin(gitName(line))
		case strings.HasPrefix(line, "--- "):
			if cur == nil || len(cur.Lines) > 0 {
				begin("")
			}
			cur.OldName = trimPathPrefix(strings.TrimPrefix(line, "--- "))
		case strings.HasPrefix(line, "+++ ") && cur != nil:
			if name := trimPathPrefix(strings.TrimPrefix(line, "+++ ")); name != "/dev/null" {
				cur.Name = name
			} else if cur.Name == "" {
				cur.Name = cur.OldName
			}
		case strings.HasPrefix(line, "@@"):
			if cur == nil {
				begin("")
			}
			if m := hunkHeader.FindStringSubmatch(line); m != nil {
				oldNo, _ = strconv.Atoi(m[1])
				newNo, _ = strconv.Atoi(m[3])
				oldLeft, newLeft = count(m[2]), count(m[4])
			}
			cur.Lines = append(cur.Lines, diffLine{Kind: lineHunk, Text: line})
		case cur != nil && strings.HasPrefix(line, `\`):
			cur.Lines = append(cur.Lines, diffLine{Kind: lineMeta, Text: line})
		case cur != nil && len(cur.Lines) > 0:
			cur.Lines = append(cur.Lines, diffLine{Kind: lineMeta, Text: line})
		case cur == nil && strings.TrimSpace(line) != "":
			begin("")
			cur.Lines = append(cur.Lines, diffLine{Kind: lineMeta, Text: line})
		}
	}
	for i := range files {
		f := &files[i]
		if f.Name == "" {
			f.Name = f.OldName
		}
		if f.OldName == f.Name {
			f.OldName = ""
		}
		f.Open = len(files) <= openFiles && f.Added+f.Removed <= openLimit
	}
	return files
}

// count is a hunk header's line count (absent means 1).
func count(s string) int {
	if s == "" {
		return 1
	}
	n, _ := strconv.Atoi(s)
	return n
}

// gitName is the new name in "diff --git a/x b/x" (best effort: names
// with spaces are taken from the +++ line that follows).
func gitName(line string) string {
	rest := strings.TrimPrefix(line, "diff --git ")
	if i := strings.LastIndex(rest, " b/"); i >= 0 {
		return rest[i+3:]
	}
	return rest
}

func trimPathPrefix(name string) string {
	if i := strings.IndexByte(name, '\t'); i >= 0 {
		name = name[:i]
	}
	for _, p := range []string{"a/", "b/"} {
		if strings.HasPrefix(name, p) {
			return name[len(p):]
		}
	}
	return name
}
