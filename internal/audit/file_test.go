package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func openFileStore(t *testing.T, path string) *FileStore {
	t.Helper()
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// editLines rewrites the file's lines with fn.
func editLines(t *testing.T, path string, fn func(lines [][]byte) [][]byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	lines = fn(lines)
	out := append(bytes.Join(lines, []byte("\n")), '\n')
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func fileBackend() backend {
	path := func(s Store) string { return s.(*FileStore).Path() }
	return backend{
		open: func(t *testing.T) (Store, func(t *testing.T) Store) {
			p := filepath.Join(t.TempDir(), "audit.jsonl")
			return openFileStore(t, p), func(t *testing.T) Store { return openFileStore(t, p) }
		},
		rewrite: func(t *testing.T, s Store, index int64, fn func(*Record)) {
			editLines(t, path(s), func(lines [][]byte) [][]byte {
				var r Record
				if err := json.Unmarshal(lines[index-1], &r); err != nil {
					t.Fatal(err)
				}
				fn(&r)
				b, err := json.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				lines[index-1] = b
				return lines
			})
		},
		remove: func(t *testing.T, s Store, index int64) {
			editLines(t, path(s), func(lines [][]byte) [][]byte {
				return append(lines[:index-1], lines[index:]...)
			})
		},
		swap: func(t *testing.T, s Store, index int64) {
			editLines(t, path(s), func(lines [][]byte) [][]byte {
				lines[index-1], lines[index] = lines[index], lines[index-1]
				return lines
			})
		},
	}
}

func TestAuditFileStoreConformance(t *testing.T) {
	testStoreConformance(t, fileBackend())
}

func TestAuditFileStoreIsPrivateAndOneRecordPerLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p := filepath.Join(dir, "audit.jsonl")
	s := openFileStore(t, p)
	fill(t, s, 3)
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the file must be 0600: %v %v", st.Mode(), err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("its directory is created 0700: %v %v", st.Mode(), err)
	}
	b, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 || !strings.HasSuffix(string(b), "\n") {
		t.Fatalf("three lines: %q", b)
	}
	for _, l := range lines {
		if _, err := decodeRecord([]byte(l)); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
	}
}

// A reopened store knows the head and the stored ids.
func TestAuditFileStoreReopenKeepsTheChain(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	s := openFileStore(t, p)
	fill(t, s, 3)
	s.Close()
	s = openFileStore(t, p)
	if err := s.Append(ctx, ev("rem-a", 2, "phase")); err != nil {
		t.Fatalf("a retry after a restart is skipped: %v", err)
	}
	changed := ev("rem-a", 2, "phase")
	changed.Detail = "other"
	if err := s.Append(ctx, changed); !errors.Is(err, ErrConflict) {
		t.Fatalf("a conflict after a restart: %v", err)
	}
	if err := s.Append(ctx, ev("rem-a", 4, "outcome")); err != nil {
		t.Fatal(err)
	}
	if rep := verify(t, s); !rep.OK || rep.Records != 4 {
		t.Fatalf("verify: %+v", rep)
	}
}

// A crash in the middle of a write leaves an incomplete last line: Verify
// reports it with its offset, Append refuses until it is cut off, and the
// retry then completes the chain.
func TestAuditFileStoreIncompleteLastLine(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	s := openFileStore(t, p)
	fill(t, s, 2)
	st, _ := os.Stat(p)
	whole := st.Size()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"id":"rem-a/3","remediation_id":"rem-a","se`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	rep := verify(t, s)
	if rep.OK || rep.FirstBad != 3 || rep.Records != 3 || !strings.Contains(rep.Problem, "incomplete last line at byte "+itoa(whole)) {
		t.Fatalf("verify: %+v", rep)
	}
	if rs := mustList(t, s, "rem-a"); len(rs) != 2 {
		t.Fatalf("list leaves the incomplete line out: %d", len(rs))
	}
	err = s.Append(ctx, ev("rem-a", 3, "phase"))
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "truncate -s "+itoa(whole)) {
		t.Fatalf("append must refuse, naming the repair: %v", err)
	}
	// A store opened on the damaged file says so too.
	other := openFileStore(t, p)
	if d := other.Damage(); !errors.Is(d, ErrDamaged) {
		t.Fatalf("open: %v", d)
	}
	b, _ := os.ReadFile(p)
	if int64(len(b)) == whole {
		t.Fatal("append must not repair the file")
	}
	if err := os.Truncate(p, whole); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, ev("rem-a", 3, "phase")); err != nil {
		t.Fatalf("after the repair the retry succeeds: %v", err)
	}
	if rep := verify(t, s); !rep.OK || rep.Records != 3 {
		t.Fatalf("verify after repair: %+v", rep)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestAuditFileStoreRefusesGarbageAndShrinking(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	s := openFileStore(t, p)
	fill(t, s, 3)
	editLines(t, p, func(lines [][]byte) [][]byte {
		lines[1] = []byte(`{"id":"x","extra":"rides along"}`)
		return lines
	})
	rep := verify(t, s)
	if rep.OK || rep.FirstBad != 2 || rep.Records != 3 || !strings.Contains(rep.Problem, "not a record") {
		t.Fatalf("unknown fields are not a record: %+v", rep)
	}
	if _, err := s.List(ctx, "rem-a"); !errors.Is(err, ErrDamaged) {
		t.Fatalf("list: %v", err)
	}
	// The file is now shorter than what s had read.
	if err := s.Append(ctx, ev("rem-a", 4, "phase")); !errors.Is(err, ErrDamaged) {
		t.Fatalf("append after the file shrank: %v", err)
	}
	// A fresh handle reads up to the bad line and refuses to append after it.
	other := openFileStore(t, p)
	if err := other.Append(ctx, ev("rem-a", 4, "phase")); !errors.Is(err, ErrDamaged) {
		t.Fatalf("append after a bad line: %v", err)
	}
	// A record line with a newline or control character inside would not be one line.
	if err := s.Append(ctx, Event{ID: "a\nb", RemediationID: "r", Kind: "k", At: t0}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("control characters: %v", err)
	}
}

func TestAuditFileStoreReadOnly(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	if _, err := OpenFileReadOnly(p); err == nil {
		t.Fatal("a missing file must not be created by a read-only open")
	}
	s := openFileStore(t, p)
	fill(t, s, 2)
	ro, err := OpenFileReadOnly(p)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if rep := verify(t, ro); !rep.OK || rep.Records != 2 {
		t.Fatalf("verify: %+v", rep)
	}
	if err := ro.Append(context.Background(), ev("rem-a", 3, "phase")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("append: %v", err)
	}
	if _, err := OpenFileReadOnly(t.TempDir()); err == nil {
		t.Fatal("a directory is no audit file")
	}
}

// The package documentation's script re-verifies a file without this code.
func TestAuditDocumentedScriptVerifiesTheFile(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	src, err := os.ReadFile("audit.go")
	if err != nil {
		t.Fatal(err)
	}
	var script []string
	in := false
	for _, l := range strings.Split(string(src), "\n") {
		switch {
		case strings.HasPrefix(l, "//	# python3 verify.py"):
			in = true
		case in && strings.HasPrefix(l, "//\t"):
			script = append(script, strings.TrimPrefix(l, "//\t"))
		case in:
			in = false
		}
	}
	if len(script) < 8 {
		t.Fatalf("no script found in the package documentation: %q", script)
	}
	dir := t.TempDir()
	scriptFile := filepath.Join(dir, "verify.py")
	if err := os.WriteFile(scriptFile, []byte(strings.Join(script, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "audit.jsonl")
	s := openFileStore(t, p)
	fill(t, s, 3)
	odd := ev("rem-odd", 0, "vote")
	odd.Roles, odd.Seq, odd.Actor = nil, 0, ""
	odd.Detail = "ünïcode 😀 <&> \"q\" \\ \n\tend\u007e"
	odd.At = t0.Truncate(time.Second)
	if err := s.Append(context.Background(), odd); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, scriptFile, p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "audit chain OK: 4 records, head "+verify(t, s).Head) {
		t.Fatalf("script: %v\n%s", err, out)
	}
	fileBackend().rewrite(t, s, 2, func(r *Record) { r.Kind = "vote" })
	out, err = exec.Command(py, scriptFile, p).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "chain broken at index 2") {
		t.Fatalf("script on a tampered file: %v\n%s", err, out)
	}
}
