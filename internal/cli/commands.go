package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// status is the client's view of GET /api/remediations/{id}. It is decoded
// leniently (unknown fields ignored) so a newer server does not break an
// older client.
type status struct {
	ID                string         `json:"id"`
	Phase             string         `json:"phase"`
	Reason            string         `json:"reason"`
	Repo              string         `json:"repo"`
	Ref               string         `json:"ref"`
	SHA               string         `json:"sha"`
	IncidentID        string         `json:"incident_id"`
	Requester         string         `json:"requester"`
	CorrelationID     string         `json:"correlation_id"`
	Fix               *fix           `json:"fix"`
	DecisionID        string         `json:"decision_id"`
	RequiredApprovals int            `json:"required_approvals"`
	Votes             []vote         `json:"votes"`
	IgnoredSignals    []ignoredVote  `json:"ignored_signals"`
	PR                *pullRequest   `json:"pr"`
	CreatedAt         time.Time      `json:"created_at"`
	UpdatedAt         time.Time      `json:"updated_at"`
	Deadline          time.Time      `json:"deadline"`
	Links             map[string]any `json:"links"`
}

type fix struct {
	Recipe     string   `json:"recipe"`
	Summary    string   `json:"summary"`
	Files      []string `json:"files"`
	Digest     string   `json:"digest"`
	BaseSHA    string   `json:"base_sha"`
	BaseBranch string   `json:"base_branch"`
	Validated  bool     `json:"validated"`
	// Patch is the exact bytes the digest names (base64 on the wire); Diff is
	// the same as text and absent when those bytes are not valid UTF-8.
	Patch []byte  `json:"patch"`
	Diff  *string `json:"diff"`
}

type vote struct {
	Actor    string    `json:"actor"`
	Approved bool      `json:"approved"`
	Comment  string    `json:"comment"`
	Reason   string    `json:"reason"`
	Channel  string    `json:"channel"`
	At       time.Time `json:"at"`
}

type ignoredVote struct {
	Actor  string    `json:"actor"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

type pullRequest struct {
	URL    string `json:"url"`
	Branch string `json:"branch"`
}

type summary struct {
	ID        string    `json:"id"`
	Phase     string    `json:"phase"`
	Repo      string    `json:"repo"`
	Requester string    `json:"requester"`
	StartedAt time.Time `json:"started_at"`
}

type listPage struct {
	Items         []summary `json:"items"`
	NextPageToken string    `json:"next_page_token"`
}

// exactBytes is the change as it will be applied: the patch bytes when the
// server sends them, else the text, which then is the same bytes.
func exactBytes(f *fix) ([]byte, bool) {
	switch {
	case f.Patch != nil:
		return f.Patch, true
	case f.Diff != nil:
		return []byte(*f.Diff), true
	}
	return nil, false
}

// matchesDigest checks that what the operator can review is what the digest
// names; a vote for a digest of other bytes would approve unseen code.
func matchesDigest(b []byte, digest string) bool {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]) == digest
}

func remediationPath(id string) string { return "/api/remediations/" + url.PathEscape(id) }

func (c *client) getStatus(ctx context.Context, id string) (*status, []byte, error) {
	r, err := c.do(ctx, http.MethodGet, remediationPath(id), nil, nil, "")
	if err != nil {
		return nil, nil, err
	}
	var st status
	if err := c.decode(r, &st); err != nil {
		return nil, nil, err
	}
	if st.ID != id {
		return nil, nil, fmt.Errorf("the API answered for %q instead of %s (correlation id %s)", st.ID, id, c.correlationID)
	}
	return &st, r.body, nil
}

func runStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", "status ID [--json] [--diff [--raw]]", stderr)
	asJSON := fs.Bool("json", false, "print the API's JSON answer unchanged")
	showDiff := fs.Bool("diff", false, "print only the diff as it will be applied (control characters made visible on a terminal)")
	raw := fs.Bool("raw", false, "with --diff: the exact bytes even on a terminal")
	id, err := parseID(fs, args)
	if err != nil {
		return err
	}
	if *asJSON && *showDiff {
		return fmt.Errorf("--json and --diff exclude each other")
	}
	c, err := newClient(getenv, stderr)
	if err != nil {
		return err
	}
	st, rawJSON, err := c.getStatus(ctx, id)
	if err != nil {
		return err
	}
	switch {
	case *asJSON:
		if _, err := stdout.Write(rawJSON); err != nil {
			return err
		}
		if len(rawJSON) > 0 && rawJSON[len(rawJSON)-1] != '\n' {
			_, err = io.WriteString(stdout, "\n")
		}
		return err
	case *showDiff:
		if st.Fix == nil {
			return fmt.Errorf("%s has no fix yet (phase %s)", id, clean(st.Phase))
		}
		b, ok := exactBytes(st.Fix)
		if !ok {
			return fmt.Errorf("the API's answer for %s carries neither fix.patch nor fix.diff (correlation id %s)", id, c.correlationID)
		}
		out := b
		if !*raw && isTerminal(stdout) {
			// Repository content could carry escape sequences that hide
			// lines on screen; the reviewer sees every byte instead.
			out = visible(b)
		}
		if _, err := stdout.Write(out); err != nil {
			return err
		}
		if !matchesDigest(b, st.Fix.Digest) {
			return fmt.Errorf("the diff of %s does not match its digest %s: do not approve it (correlation id %s)", id, clean(st.Fix.Digest), c.correlationID)
		}
		return nil
	}
	printStatus(stdout, st)
	return nil
}

func printStatus(w io.Writer, st *status) {
	line := func(key, value string) {
		if value != "" {
			fmt.Fprintf(w, "%-14s%s\n", key+":", value)
		}
	}
	line("id", clean(st.ID))
	line("phase", clean(st.Phase))
	line("reason", clean(st.Reason))
	repo := clean(st.Repo)
	if st.Ref != "" {
		repo += " @ " + clean(st.Ref)
	}
	if st.SHA != "" {
		repo += " (" + clean(st.SHA) + ")"
	}
	line("repo", repo)
	line("incident", clean(st.IncidentID))
	line("requester", clean(st.Requester))
	line("decision_id", clean(st.DecisionID))
	line("correlation", clean(st.CorrelationID))
	if f := st.Fix; f != nil {
		fmt.Fprintln(w, "fix:")
		line("  recipe", clean(f.Recipe))
		line("  summary", clean(f.Summary))
		files := make([]string, len(f.Files))
		for i, name := range f.Files {
			files[i] = clean(name)
		}
		line("  files", strings.Join(files, ", "))
		digest := clean(f.Digest)
		b, ok := exactBytes(f)
		switch {
		case !ok:
			digest += " (no diff in the answer)"
		case !matchesDigest(b, f.Digest):
			digest += " (DOES NOT MATCH the diff: do not approve)"
		}
		line("  digest", digest)
		line("  validated", strconv.FormatBool(f.Validated))
		base := clean(f.BaseSHA)
		if f.BaseBranch != "" {
			base += " (" + clean(f.BaseBranch) + ")"
		}
		line("  base", base)
		if ok {
			line("  diff", fmt.Sprintf("%d bytes; show with: remediator status %s --diff", len(b), st.ID))
		}
	}
	fmt.Fprintf(w, "%-14s%d of %d required approvals\n", "votes:", countApprovals(st.Votes), st.RequiredApprovals)
	for _, v := range st.Votes {
		verdict := "rejected"
		if v.Approved {
			verdict = "approved"
		}
		fmt.Fprintf(w, "  %s %s via %s at %s", clean(v.Actor), verdict, clean(v.Channel), when(v.At))
		text := v.Comment
		if !v.Approved && v.Reason != "" {
			text = v.Reason
		}
		if text != "" {
			fmt.Fprintf(w, ": %s", clean(text))
		}
		fmt.Fprintln(w)
	}
	if len(st.IgnoredSignals) > 0 {
		fmt.Fprintf(w, "%-14s%d\n", "ignored:", len(st.IgnoredSignals))
		for _, s := range st.IgnoredSignals {
			fmt.Fprintf(w, "  %s at %s: %s\n", clean(s.Actor), when(s.At), clean(s.Reason))
		}
	}
	if st.PR != nil {
		pr := clean(st.PR.URL)
		if st.PR.Branch != "" {
			pr += " (" + clean(st.PR.Branch) + ")"
		}
		line("pr", pr)
	}
	line("created", when(st.CreatedAt))
	line("updated", when(st.UpdatedAt))
	line("deadline", when(st.Deadline))
	if st.Phase == phaseAwaitingApproval && st.Fix != nil {
		fmt.Fprintf(w, "\nto vote: review with \"remediator status %[1]s --diff\", then\n"+
			"  remediator approve %[1]s --digest DIGEST [--comment TEXT]\n"+
			"  remediator reject %[1]s --digest DIGEST --reason TEXT\n", st.ID)
	}
}

func countApprovals(votes []vote) int {
	n := 0
	for _, v := range votes {
		if v.Approved {
			n++
		}
	}
	return n
}

func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

type approveBody struct {
	DecisionID string `json:"decision_id"`
	DiffDigest string `json:"diff_digest"`
	BaseSHA    string `json:"base_sha"`
	Comment    string `json:"comment"`
}

type rejectBody struct {
	DecisionID string `json:"decision_id"`
	DiffDigest string `json:"diff_digest"`
	BaseSHA    string `json:"base_sha"`
	Reason     string `json:"reason"`
}

// runVote approves or rejects. The decision id comes from a fresh status
// read, but the digest only from the operator: the vote then names exactly
// the change they reviewed, and a fix that changed since is refused here
// before the server would refuse it as stale.
func runVote(ctx context.Context, approve bool, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	name, synopsis, done := "reject", "reject ID --digest DIGEST --reason TEXT", "rejected"
	if approve {
		name, synopsis, done = "approve", "approve ID --digest DIGEST [--comment TEXT]", "approved"
	}
	fs := newFlagSet(name, synopsis, stderr)
	digestFlag := fs.String("digest", "", "the full 64-hex digest of the diff you reviewed, as shown by status")
	var text *string
	if approve {
		text = fs.String("comment", "", "optional comment recorded with the vote")
	} else {
		text = fs.String("reason", "", "why the change is rejected (required)")
	}
	id, err := parseID(fs, args)
	if err != nil {
		return err
	}
	review := fmt.Sprintf("review the change with \"remediator status %s --diff\" first", id)
	digest := strings.ToLower(strings.TrimSpace(*digestFlag))
	switch {
	case digest == "":
		return fmt.Errorf("--digest is required: %s and pass the digest status shows", review)
	case !digestPattern.MatchString(digest):
		return fmt.Errorf("--digest must be the full 64-hex digest shown by status: %s", review)
	case !approve && strings.TrimSpace(*text) == "":
		return fmt.Errorf("--reason is required: say why the change is rejected")
	case len(*text) > maxTextLen:
		return fmt.Errorf("--%s is limited to %d bytes", map[bool]string{true: "comment", false: "reason"}[approve], maxTextLen)
	}
	c, err := newClient(getenv, stderr)
	if err != nil {
		return err
	}
	st, err := c.currentFix(ctx, id, digest, "has nothing to vote on", ": "+review)
	if err != nil {
		return err
	}
	// The base is the one status showed with this digest (each fix has a
	// decision of its own, so a regenerated fix is refused above).
	var body any = rejectBody{DecisionID: st.DecisionID, DiffDigest: digest, BaseSHA: st.Fix.BaseSHA, Reason: *text}
	if approve {
		body = approveBody{DecisionID: st.DecisionID, DiffDigest: digest, BaseSHA: st.Fix.BaseSHA, Comment: *text}
	}
	r, err := c.do(ctx, http.MethodPost, remediationPath(id)+"/"+name, nil, body, uuid.NewString())
	if err != nil {
		return err
	}
	var after status
	if err := c.decode(r, &after); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s: phase %s\n", done, id, clean(after.Phase))
	if after.PR != nil && after.PR.URL != "" {
		fmt.Fprintf(stdout, "pr: %s\n", clean(after.PR.URL))
	}
	return nil
}

func runList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("list", "list [--phase P] [--repo R] [--page-size N] [--page-token T] [--all]", stderr)
	phase := fs.String("phase", "", "only this phase (e.g. AwaitingApproval)")
	repo := fs.String("repo", "", "only this repository")
	pageSize := fs.Int("page-size", 0, "entries per page, 1 to 100 (default: the server's)")
	pageToken := fs.String("page-token", "", "continue from this page token")
	all := fs.Bool("all", false, fmt.Sprintf("follow next_page_token (at most %d pages)", maxListPages))
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		fs.Usage()
		return fmt.Errorf("list takes no arguments, got %q", pos[0])
	case *pageSize < 0 || *pageSize > 100:
		return fmt.Errorf("--page-size must be between 1 and 100")
	}
	c, err := newClient(getenv, stderr)
	if err != nil {
		return err
	}
	q := url.Values{}
	if *phase != "" {
		q.Set("phase", *phase)
	}
	if *repo != "" {
		q.Set("repo", *repo)
	}
	if *pageSize > 0 {
		q.Set("page_size", strconv.Itoa(*pageSize))
	}
	next := *pageToken
	seen := map[string]bool{}
	var items []summary
	for page := 1; ; page++ {
		if next != "" {
			q.Set("page_token", next)
		}
		r, err := c.do(ctx, http.MethodGet, "/api/remediations", q, nil, "")
		if err != nil {
			return err
		}
		var p listPage
		if err := c.decode(r, &p); err != nil {
			return err
		}
		items = append(items, p.Items...)
		next = p.NextPageToken
		if !*all || next == "" || page == maxListPages {
			break
		}
		if seen[next] {
			return fmt.Errorf("the API repeated a page token; stopped after %d pages (correlation id %s)", page, c.correlationID)
		}
		seen[next] = true
	}
	if len(items) == 0 {
		fmt.Fprintln(stdout, "no remediations")
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPHASE\tREPO\tREQUESTER\tSTARTED")
		for _, it := range items {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", clean(it.ID), clean(it.Phase), clean(it.Repo), clean(it.Requester), when(it.StartedAt))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if next != "" {
		fmt.Fprintf(stderr, "more results: add --page-token %s\n", clean(next))
	}
	return nil
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: remediator %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseInterspersed parses flags before and after positional arguments: the
// flag package stops at the first positional, but operators type the id
// first and the flags after it. Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseID parses the flags and the one remediation id, checked before any
// request so a typo never reaches the server or a different path.
func parseID(fs *flag.FlagSet, args []string) (string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		fs.Usage()
		return "", fmt.Errorf("expected one remediation id, got %d arguments", len(pos))
	}
	if !idPattern.MatchString(pos[0]) {
		return "", fmt.Errorf("%q is not a remediation id (%s followed by lowercase hex, at most 64 characters)", pos[0], idPrefix)
	}
	return pos[0], nil
}

// isTerminal reports whether w is a terminal (then bytes are interpreted,
// not just stored).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// visible shows control characters (other than newline and tab) and bytes
// that are not UTF-8 as escapes, so nothing in a diff acts on the terminal.
func visible(b []byte) []byte {
	var out bytes.Buffer
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&out, "\\x%02x", b[0])
		case r == '\n' || r == '\t':
			out.WriteRune(r)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == '\u2028' || r == '\u2029':
			fmt.Fprintf(&out, "\\u%04x", r)
		default:
			out.Write(b[:size])
		}
		b = b[size:]
	}
	return out.Bytes()
}

type regenerateBody struct {
	DecisionID string `json:"decision_id"`
	DiffDigest string `json:"diff_digest"`
	BaseSHA    string `json:"base_sha"`
	Reason     string `json:"reason,omitempty"`
}

// runRegenerate asks for a new fix of a remediation awaiting approval. Like
// a vote it names the fix it replaces (the digest from the operator, the
// decision and base from a fresh status read); pending votes become void.
func runRegenerate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("regenerate", "regenerate ID --digest DIGEST [--reason TEXT]", stderr)
	digestFlag := fs.String("digest", "", "the full 64-hex digest of the fix to replace, as shown by status")
	reason := fs.String("reason", "", "why a new fix is needed (recorded with the request)")
	id, err := parseID(fs, args)
	if err != nil {
		return err
	}
	digest := strings.ToLower(strings.TrimSpace(*digestFlag))
	switch {
	case !digestPattern.MatchString(digest):
		return fmt.Errorf("--digest must be the full 64-hex digest shown by \"remediator status %s\"", id)
	case len(*reason) > maxTextLen:
		return fmt.Errorf("--reason is limited to %d bytes", maxTextLen)
	}
	c, err := newClient(getenv, stderr)
	if err != nil {
		return err
	}
	st, err := c.currentFix(ctx, id, digest, "has no fix to replace", "")
	if err != nil {
		return err
	}
	r, err := c.do(ctx, http.MethodPost, remediationPath(id)+"/regenerate", nil,
		regenerateBody{DecisionID: st.DecisionID, DiffDigest: digest, BaseSHA: st.Fix.BaseSHA, Reason: *reason}, uuid.NewString())
	if err != nil {
		return err
	}
	var after status
	if err := c.decode(r, &after); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "regenerating %s: phase %s; pending votes are void\n", id, clean(after.Phase))
	return nil
}

// currentFix reads id's status and checks that digest names its current
// fix, the one a vote or a regeneration is about: the decision and the base
// sent with it come from this fresh read. none says why there is nothing
// to act on; hint follows a digest mismatch.
func (c *client) currentFix(ctx context.Context, id, digest, none, hint string) (*status, error) {
	st, _, err := c.getStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	if st.DecisionID == "" || st.Fix == nil {
		return nil, fmt.Errorf("%s %s (phase %s)", id, none, clean(st.Phase))
	}
	if digest != st.Fix.Digest {
		return nil, fmt.Errorf("--digest does not match the current fix of %s%s", id, hint)
	}
	if b, ok := exactBytes(st.Fix); ok && !matchesDigest(b, digest) {
		return nil, fmt.Errorf("the diff the API shows for %s does not match its digest; not sending anything (correlation id %s)", id, c.correlationID)
	}
	return st, nil
}
