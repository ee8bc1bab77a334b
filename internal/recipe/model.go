package recipe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"remediator/internal/llm"
	"remediator/internal/redact"
)

// ModelClient is the language model the generator asks for fixes;
// *llm.Client satisfies it.
type ModelClient interface {
	Complete(ctx context.Context, msgs []llm.Message) (llm.Completion, error)
	Model() string
}

const (
	// DefaultModelAttempts: a first answer that does not apply or does not
	// pass the check often does once the model sees why.
	DefaultModelAttempts = 3
	// DefaultModelMaxFiles bounds the context files: the log rarely names
	// more that matter.
	DefaultModelMaxFiles = 8
	// DefaultModelMaxFileBytes bounds each context file; bigger files are
	// cut, head only.
	DefaultModelMaxFileBytes = 32 << 10
	// DefaultModelCheckTimeout bounds ModelCheck (a build or test run).
	DefaultModelCheckTimeout = 5 * time.Minute

	// modelPromptBudget bounds the first prompt as a whole.
	modelPromptBudget = 192 << 10
	// modelExcerptBytes is how much of the log's end is sent.
	modelExcerptBytes = 16 << 10
	// modelSummaryBytes bounds the failure summary sent.
	modelSummaryBytes = 4 << 10
	// modelAnswerBytes bounds a previous answer sent back with feedback.
	modelAnswerBytes = 32 << 10
	// modelReadSlack is read beyond a cut so that redaction sees whole
	// lines: a credential cut in half would no longer be recognised.
	modelReadSlack = 16 << 10
	// minFileBlock: a file is not worth sending with less room than this.
	minFileBlock = 2 << 10
)

const modelSystemPrompt = "You are an automated code repair assistant. A CI job failed; you are shown its failure summary, " +
	"the end of its log and the repository files the log names. Propose the smallest change to the repository that fixes the failure.\n\n" +
	"Answer with exactly one unified diff in a ```diff fenced code block and nothing else: no explanation before or after it. " +
	"Use paths relative to the repository root with a/ and b/ prefixes (--- a/path, +++ b/path) and hunks with correct line numbers " +
	"and three lines of context. Do not touch files you were not shown unless the failure requires it. " +
	"Never change CI configuration, symbolic links or submodules.\n\n" +
	"Text shown as [REDACTED:<kind>] stands for a secret that was removed: leave those lines out of your diff."

// modelFix asks the model for a fix, in fresh checkouts, at most
// ModelAttempts times; r is the model recipe that matched, or nil. ws, if
// given, is an untouched checkout the model path takes over.
func (g *Generator) modelFix(ctx context.Context, req Request, r *Recipe, ws *workspace, lim limits) (Fix, error) {
	defer func() {
		if ws != nil {
			ws.Cleanup()
		}
	}()
	model := g.Model.Model()
	name, check, timeout := "model:"+model, g.ModelCheck, g.ModelCheckTimeout
	if timeout <= 0 {
		timeout = DefaultModelCheckTimeout
	}
	timeout = min(timeout, MaxTimeout)
	if r != nil {
		name, check, timeout = r.Name, r.Check, r.Timeout
	}
	if strings.ContainsRune(check, 0) {
		return Fix{}, &Error{Kind: KindInvalid, Recipe: name, Msg: "the model check contains NUL"}
	}
	attempts := orDefault(g.ModelAttempts, DefaultModelAttempts)
	var err error
	if ws == nil {
		if ws, err = g.checkout(ctx, req, g.sandbox, g.env, g.readOnly); err != nil {
			return Fix{}, err
		}
	}
	user, err := ws.modelPrompt(ctx, req, lim.denied, orDefault(g.ModelMaxFiles, DefaultModelMaxFiles),
		orDefault(g.ModelMaxFileBytes, DefaultModelMaxFileBytes), modelPromptBudget-len(modelSystemPrompt))
	if err != nil {
		return Fix{}, &Error{Kind: KindTransient, Recipe: name, Msg: "reading the files for the model", Err: err}
	}
	msgs := []llm.Message{{Role: "system", Content: modelSystemPrompt}, {Role: "user", Content: user}}

	var last *modelFailure
	var promptTokens, completionTokens int
	for n := 1; n <= attempts; n++ {
		if err := ctx.Err(); err != nil {
			return Fix{}, &Error{Kind: KindTransient, Recipe: name, Msg: "cancelled", Err: err}
		}
		comp, err := g.Model.Complete(ctx, redactAll(msgs))
		if err != nil {
			return Fix{}, &Error{Kind: KindTransient, Recipe: name, Msg: "the model provider failed", Err: err}
		}
		promptTokens += comp.PromptTokens
		completionTokens += comp.CompletionTokens
		if ws == nil {
			if ws, err = g.checkout(ctx, req, g.sandbox, g.env, g.readOnly); err != nil {
				return Fix{}, err
			}
		}
		fix, failure, err := ws.tryAnswer(ctx, name, comp.Content, lim, check, timeout)
		ws.Cleanup()
		ws = nil
		if err != nil {
			return Fix{}, err
		}
		if failure == nil {
			fix.Summary = fmt.Sprintf("Fix proposed by model %s for %s", model, plural(len(fix.Files), "file"))
			fix.Source = SourceModel
			fix.Attempts = n
			fix.PromptTokens, fix.CompletionTokens = promptTokens, completionTokens
			if check != "" {
				fix.Validated, fix.Check = true, check
				fix.Validation = fmt.Sprintf("check `%s` passed after attempt %d of %d", checkLabel(check), n, attempts)
			} else {
				fix.Validation = fmt.Sprintf("applied cleanly to the base after attempt %d of %d; no check configured", n, attempts)
			}
			return fix, nil
		}
		last = failure
		msgs = append(msgs,
			llm.Message{Role: "assistant", Content: headOf(comp.Content, modelAnswerBytes)},
			llm.Message{Role: "user", Content: feedback(failure)})
	}
	return Fix{}, &Error{
		Kind:   KindModelFailed,
		Recipe: name,
		Msg:    fmt.Sprintf("model %s gave no acceptable fix in %s; the last one: %s", model, plural(attempts, "attempt"), last.msg),
		Err:    last.err,
		Paths:  last.paths,
		Output: last.detail,
	}
}

// modelFailure is why one answer was not a fix. msg is a fixed phrase (with
// paths and the check command at most) fit for API callers; detail (git's
// or the check's output, redacted) goes only to the model and the log.
type modelFailure struct {
	msg    string
	detail string
	paths  []string
	err    error
}

// tryAnswer applies one answer in the (fresh) checkout and validates it as
// a recipe's result is validated. A failure of the answer is returned as a
// *modelFailure; an error is infrastructure trouble.
func (ws *workspace) tryAnswer(ctx context.Context, name, answer string, lim limits, check string, timeout time.Duration) (Fix, *modelFailure, error) {
	diff, err := extractDiff(answer)
	if err != nil {
		return Fix{}, &modelFailure{msg: err.Error()}, nil
	}
	strip, problem := inspectDiff(diff, lim.denied)
	if problem != nil {
		return Fix{}, problem, nil
	}
	refusal, err := ws.apply(ctx, []byte(diff), strip)
	if err != nil {
		return Fix{}, nil, &Error{Kind: KindTransient, Recipe: name, Msg: "applying the model's diff", Err: err}
	}
	if refusal != nil {
		return Fix{}, refusal, nil
	}
	fix, err := ws.collect(ctx, name, lim, nil)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || e.Kind == KindTransient {
			return Fix{}, nil, err
		}
		msg := e.Msg
		if e.Kind == KindNoChange {
			msg = "the diff changes nothing"
		}
		return Fix{}, &modelFailure{msg: msg, paths: e.Paths, err: err}, nil
	}
	if check != "" {
		if err := ws.runCheck(ctx, name, check, timeout); err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Kind == KindTransient {
				return Fix{}, nil, err
			}
			msg := fmt.Sprintf("the check `%s` did not pass", checkLabel(check))
			if e.Kind == KindTimeout {
				msg = fmt.Sprintf("the check `%s` timed out after %s", checkLabel(check), timeout)
			}
			return Fix{}, &modelFailure{msg: msg, detail: redactTail(e.Output), err: err}, nil
		}
	}
	return fix, nil, nil
}

// apply applies a diff to the work tree with the workspace's hardened git:
// no --unsafe-paths, so git refuses paths outside the work tree and through
// links (of which the checkout has none: links are plain files there). A
// diff whose hunk headers miscount lines, as models' often do, is given a
// second chance with --recount. A refusal is a *modelFailure with git's
// reason; an error is infrastructure trouble.
func (ws *workspace) apply(ctx context.Context, patch []byte, strip int) (*modelFailure, error) {
	base := []string{"-c", "core.attributesFile=" + os.DevNull, "apply", "--whitespace=nowarn", "-p" + strconv.Itoa(strip)}
	var first *modelFailure
	for _, extra := range [][]string{nil, {"--recount"}} {
		args := append(slices.Clone(base), extra...)
		_, stderr, err := ws.gitIO(ctx, patch, nil, append(slices.Clone(args), "--check", "-")...)
		if err == nil {
			_, stderr, err = ws.gitIO(ctx, patch, nil, append(args, "-")...)
		}
		switch {
		case err == nil:
			return nil, nil
		case ctx.Err() != nil || !isExit(err):
			return nil, fmt.Errorf("git apply: %w%s", err, suffix(stderr))
		case first == nil:
			first = &modelFailure{msg: "the diff does not apply to the files as shown", detail: redactTail(stderr.String()),
				err: fmt.Errorf("git apply: %w%s", err, suffix(stderr))}
		}
	}
	return first, nil
}

// errNoDiff: the answer is prose, or a fence without a diff.
var errNoDiff = errors.New("the answer holds no unified diff")

// extractDiff finds the diff in a model's answer: the first ```diff (or
// ```patch) fence, a plain fence holding a diff, or the whole answer when
// it starts like a diff.
func extractDiff(answer string) (string, error) {
	answer = strings.ReplaceAll(answer, "\r\n", "\n")
	lines := strings.SplitAfter(answer, "\n")
	var plain string
	for i, l := range lines {
		fence, indent, info, ok := fenceOpen(l)
		if !ok {
			continue
		}
		var b strings.Builder
		for _, body := range lines[i+1:] {
			// A closing fence is indented no more than the opening one:
			// " ```" is a context line of a Markdown file.
			t := strings.TrimRight(body, " \t\n")
			if u := strings.TrimLeft(t, " "); len(t)-len(u) <= indent && strings.HasPrefix(u, fence) && strings.Trim(u, "`~") == "" {
				break
			}
			b.WriteString(body)
		}
		switch content := b.String(); {
		case info == "diff" || info == "patch" || info == "udiff":
			return withNewline(content), nil
		case info == "" && plain == "" && looksLikeDiff(content):
			plain = content
		}
	}
	if plain != "" {
		return withNewline(plain), nil
	}
	if trimmed := strings.TrimLeft(answer, " \t\n"); looksLikeDiff(trimmed) {
		return withNewline(trimmed), nil
	}
	return "", errNoDiff
}

// fenceOpen recognises a Markdown fence opening (up to three spaces of
// indentation, three or more backticks or tildes, an info word).
func fenceOpen(line string) (fence string, indent int, info string, ok bool) {
	l := strings.TrimRight(line, " \t\n")
	indent = len(l) - len(strings.TrimLeft(l, " "))
	if indent > 3 {
		return "", 0, "", false
	}
	l = l[indent:]
	for _, c := range []string{"`", "~"} {
		n := len(l) - len(strings.TrimLeft(l, c))
		if n >= 3 {
			word, _, _ := strings.Cut(strings.TrimSpace(l[n:]), " ")
			if c == "`" && strings.Contains(word, "`") {
				return "", 0, "", false
			}
			return l[:n], indent, strings.ToLower(word), true
		}
	}
	return "", 0, "", false
}

func looksLikeDiff(s string) bool {
	s = strings.TrimLeft(s, " \t\n")
	return strings.HasPrefix(s, "diff --git ") || strings.HasPrefix(s, "--- ")
}

func withNewline(s string) string {
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

var (
	copyOrRename = regexp.MustCompile(`^(?:rename|copy) (?:from|to) `)
	modeLine     = regexp.MustCompile(`^(?:old mode|new mode|new file mode|deleted file mode) ([0-7]+)\s*$`)
	indexLine    = regexp.MustCompile(`^index [0-9a-fA-F]+\.\.[0-9a-fA-F]+ ([0-7]+)\s*$`)
)

// inspectDiff refuses what is not a text unified diff of safe paths before
// git sees it: no hunks or file headers, binary patches, links and
// submodules, absolute paths, .. or .git components, denied paths. Header
// lines are checked wherever they appear (a hunk whose line counts are
// wrong could hide one). It returns the -p level to apply with: 1 when the
// paths carry a/ and b/ prefixes, else 0.
func inspectDiff(diff string, denied []string) (int, *modelFailure) {
	var hunks, headers int
	var named, renamed []string // ---/+++ paths without their prefix; rename and copy paths
	unprefixed := false
	for _, line := range strings.Split(diff, "\n") {
		line = strings.TrimSuffix(line, "\r")
		switch {
		case strings.HasPrefix(line, "@@ -"):
			hunks++
		case strings.HasPrefix(line, "diff --git "):
			headers++
			// The names here may hold spaces or quotes, so each word is
			// only checked for what would escape; git checks the rest.
			for _, part := range strings.Fields(line[len("diff --git "):]) {
				if escapes(strings.Trim(part, `"`)) {
					return 0, unsafeFailure(part)
				}
			}
		case strings.HasPrefix(line, "--- "), strings.HasPrefix(line, "+++ "):
			if strings.HasPrefix(line, "+++ ") {
				headers++
			}
			p, ok := headerPath(line[4:])
			if !ok {
				return 0, unsafeFailure(line[4:])
			}
			if p == "/dev/null" {
				continue
			}
			if rest, ok := strings.CutPrefix(p, "a/"); ok {
				p = rest
			} else if rest, ok := strings.CutPrefix(p, "b/"); ok {
				p = rest
			} else {
				unprefixed = true
			}
			if unsafePath(p) {
				return 0, unsafeFailure(p)
			}
			named = append(named, p)
		case copyOrRename.MatchString(line):
			raw := copyOrRename.ReplaceAllString(line, "")
			p, ok := headerPath(raw)
			if !ok || unsafePath(p) {
				return 0, unsafeFailure(raw)
			}
			renamed = append(renamed, p)
		case strings.HasPrefix(line, "GIT binary patch"), strings.HasPrefix(line, "Binary files ") && strings.HasSuffix(line, " differ"):
			return 0, &modelFailure{msg: "the diff holds a binary patch; only text changes are accepted"}
		default:
			m := modeLine.FindStringSubmatch(line)
			if m == nil {
				m = indexLine.FindStringSubmatch(line)
			}
			if m != nil && isLinkMode(m[1]) {
				return 0, &modelFailure{msg: "the diff creates or changes symbolic links or submodules"}
			}
		}
	}
	if hunks == 0 || headers == 0 {
		return 0, &modelFailure{msg: errNoDiff.Error()}
	}
	strip := 1
	if unprefixed {
		strip = 0
	}
	if bad := deniedOf(append(named, renamed...), denied); len(bad) > 0 {
		slices.Sort(bad)
		bad = slices.Compact(bad)
		return 0, &modelFailure{msg: "the diff touches denied paths: " + strings.Join(bad, ", "), paths: bad}
	}
	return strip, nil
}

// headerPath reads the path of a ---/+++/rename/copy line: C-quoted or
// plain, without a trailing timestamp.
func headerPath(s string) (string, bool) {
	s = strings.TrimRight(s, " \r")
	if strings.HasPrefix(s, `"`) {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return "", false
		}
		p, err := strconv.Unquote(q)
		return p, err == nil
	}
	if p, _, ok := strings.Cut(s, "\t"); ok {
		s = p
	}
	return s, s != ""
}

// unsafePath: absolute, .. or .git components, backslashes, control
// characters — whatever could address something outside the work tree or
// inside git's own directory.
func unsafePath(p string) bool {
	if p == "" || escapes(p) || strings.ContainsRune(p, '\\') {
		return true
	}
	for _, c := range p {
		if c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// escapes: an absolute path, or one with a .. or .git component (.git
// also as ".GIT" or ".git." — names some filesystems take for it).
func escapes(p string) bool {
	if strings.HasPrefix(p, "/") {
		return true
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || strings.EqualFold(strings.TrimRight(part, ". "), ".git") {
			return true
		}
	}
	return false
}

func unsafeFailure(p string) *modelFailure {
	return &modelFailure{msg: "the diff names an unsafe path " + strconv.Quote(headOf(p, 120))}
}

// feedback tells the model why its answer was not used.
func feedback(f *modelFailure) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Your previous answer was not used: %s.\n", strings.TrimRight(f.msg, "."))
	if f.detail != "" {
		b.WriteString("\nThe end of the output:\n")
		writeFenced(&b, f.detail)
	}
	b.WriteString("\nYour diff was not applied: the files are still as shown above. " +
		"Answer again with one corrected unified diff against them, in a ```diff fenced block and nothing else.")
	return b.String()
}

// modelPrompt builds the user message: the failure summary, the end of the
// log and the files the log names, within the byte budget. Everything is
// redacted before it is measured or cut, so no cut leaves half a secret
// unrecognised.
func (ws *workspace) modelPrompt(ctx context.Context, req Request, denied []string, maxFiles, maxFileBytes, budget int) (string, error) {
	summary, _ := redact.Redact(req.FailureSummary)
	excerpt, _ := redact.Redact(lineTail(req.LogExcerpt, modelExcerptBytes+modelReadSlack))
	var b strings.Builder
	b.WriteString("A CI job failed. Fix the repository so that it passes.\n\nFailure summary:\n")
	writeFenced(&b, headOf(summary, modelSummaryBytes))
	b.WriteString("\nThe end of the CI log:\n")
	writeFenced(&b, tailOf(excerpt, modelExcerptBytes))

	files, err := ws.contextFiles(ctx, req.FailureSummary+"\n"+req.LogExcerpt, denied, maxFiles, maxFileBytes, budget-b.Len()-256)
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		b.WriteString("\nNo repository file named by the log could be shown.\n")
		return b.String(), nil
	}
	fmt.Fprintf(&b, "\nThe repository files the log names (%d):\n", len(files))
	for _, f := range files {
		fmt.Fprintf(&b, "\nFile: %s (%d bytes)\n", f.path, f.size)
		writeFenced(&b, f.content)
		if f.cut {
			fmt.Fprintf(&b, "[cut: only the first %d of %d bytes of %s are shown]\n", len(f.content), f.size, f.path)
		}
	}
	return b.String(), nil
}

// contextFile is a file as shown to the model.
type contextFile struct {
	path    string
	content string // redacted, possibly cut
	size    int    // of the file in the checkout
	cut     bool
}

// contextFiles reads the tracked regular text files the failure text names,
// in order of appearance, within maxFiles, maxFileBytes each and budget
// bytes in all. Links, submodules, denied paths and binary files are never
// shown.
func (ws *workspace) contextFiles(ctx context.Context, text string, denied []string, maxFiles, maxFileBytes, budget int) ([]contextFile, error) {
	out, err := ws.git(ctx, nil, "ls-files", "-s", "-z")
	if err != nil {
		return nil, err
	}
	var tracked []string
	for _, entry := range splitNUL(out) {
		meta, p, ok := strings.Cut(entry, "\t")
		mode, _, _ := strings.Cut(meta, " ")
		if !ok || (mode != "100644" && mode != "100755") || unsafePath(p) || len(deniedOf([]string{p}, denied)) > 0 {
			continue
		}
		tracked = append(tracked, p)
	}
	root, err := os.OpenRoot(ws.Dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()

	var files []contextFile
	used := 0
	for _, p := range mentionedPaths(text, tracked) {
		if len(files) >= maxFiles {
			break
		}
		room := min(maxFileBytes, budget-used-len(p)-128)
		if room < minFileBlock && room < maxFileBytes {
			break
		}
		f, ok, err := readContextFile(root, p, room)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		files = append(files, f)
		used += len(f.content) + len(p) + 128
	}
	return files, nil
}

// readContextFile reads p (a regular file, never through a link: os.Root
// stays in the checkout) and returns its redacted head of at most limit
// bytes; ok is false for binary files.
func readContextFile(root *os.Root, p string, limit int) (contextFile, bool, error) {
	info, err := root.Lstat(p)
	if err != nil || !info.Mode().IsRegular() {
		return contextFile{}, false, nil // deleted or replaced in the checkout: not worth failing for
	}
	fh, err := root.Open(p)
	if err != nil {
		return contextFile{}, false, nil
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, int64(limit+modelReadSlack+1)))
	if err != nil {
		return contextFile{}, false, err
	}
	truncated := len(data) > limit+modelReadSlack
	if truncated {
		// Redact whole lines only.
		i := bytes.LastIndexByte(data[:limit+modelReadSlack], '\n')
		if i < 0 {
			return contextFile{}, false, nil // one enormous line: minified or generated
		}
		data = data[:i+1]
	}
	if bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 || !utf8.Valid(data) {
		return contextFile{}, false, nil
	}
	content, _ := redact.Redact(string(data))
	cut := truncated
	if len(content) > limit {
		content, cut = headOf(content, limit), true
	}
	return contextFile{path: p, content: content, size: int(info.Size()), cut: cut}, true, nil
}

var pathToken = regexp.MustCompile(`[\w./@+~-]+`)

// mentionedPaths returns the tracked paths the text names, in order of
// first mention: as path, path:line, ./path, a path under an absolute
// prefix (/home/runner/work/repo/repo/path), or a basename that only one
// tracked file has.
func mentionedPaths(text string, tracked []string) []string {
	set := make(map[string]bool, len(tracked))
	byBase := map[string][]string{}
	for _, p := range tracked {
		set[p] = true
		b := path.Base(p)
		byBase[b] = append(byBase[b], p)
	}
	seen := map[string]bool{}
	var found []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			found = append(found, p)
		}
	}
	for _, tok := range pathToken.FindAllString(text, -1) {
		tok = strings.TrimPrefix(strings.TrimRight(tok, ".-"), "./")
		if tok == "" {
			continue
		}
		if set[tok] {
			add(tok)
			continue
		}
		if !strings.Contains(tok, "/") {
			if list := byBase[tok]; len(list) == 1 {
				add(list[0])
			}
			continue
		}
		for i := 0; i < len(tok); i++ {
			if tok[i] == '/' && set[tok[i+1:]] {
				add(tok[i+1:])
				break
			}
		}
	}
	return found
}

// writeFenced writes s in a Markdown fence longer than any backtick run in
// it, so file contents cannot close the fence early.
func writeFenced(b *strings.Builder, s string) {
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", max(3, longest+1))
	b.WriteString(fence + "\n" + s)
	if !strings.HasSuffix(s, "\n") {
		b.WriteString("\n")
	}
	b.WriteString(fence + "\n")
}

// redactAll is the last gate before the provider: every message's content
// is redacted, whatever was redacted before.
func redactAll(msgs []llm.Message) []llm.Message {
	out := make([]llm.Message, len(msgs))
	for i, m := range msgs {
		out[i].Role = m.Role
		out[i].Content, _ = redact.Redact(m.Content)
	}
	return out
}

// redactTail redacts command output and keeps its last outputTail bytes.
func redactTail(s string) string {
	s, _ = redact.Redact(s)
	return tailOf(s, outputTail)
}

// headOf keeps at most n bytes of s, ending at a line break when there is
// one in the second half, never inside a UTF-8 sequence.
func headOf(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	if i := strings.LastIndexByte(s, '\n'); i >= n/2 {
		s = s[:i+1]
	}
	return strings.ToValidUTF8(s, "")
}

// tailOf keeps at most n bytes of the end of s, starting after a line break
// when there is one in the first half.
func tailOf(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < n/2 {
		s = s[i+1:]
	}
	return strings.ToValidUTF8(s, "")
}

// lineTail is tailOf for raw text about to be redacted: it starts at a line
// break, so no credential is cut in half.
func lineTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return ""
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
