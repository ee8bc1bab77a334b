package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"remediator/activities"
	"remediator/internal/auth"
	"remediator/internal/errcode"
	"remediator/internal/orchestrator"
	"remediator/workflows"
)

func TestUnauthenticatedIsSentToSignIn(t *testing.T) {
	b := newBrowser(t, newConsole(t, testOptions(newFake())))
	for _, path := range []string{"/ui/", "/ui/remediations/rem-a1", "/ui/remediations/rem-a1?view=split"} {
		rec := b.get(path)
		if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/login?next="+url.QueryEscape(path) {
			t.Errorf("GET %s: %d Location %q; want 303 to the sign-in page", path, rec.Code, rec.Header().Get("Location"))
		}
	}
	for _, path := range []string{"/ui/remediations/rem-a1/approve", "/ui/remediations/rem-a1/reject", "/ui/logout"} {
		if rec := b.post(path, url.Values{"csrf_token": {"x"}}); rec.Code != http.StatusUnauthorized {
			t.Errorf("POST %s without a session: %d, want 401", path, rec.Code)
		}
	}
}

func TestSecurityHeadersAndStylesheet(t *testing.T) {
	b := newBrowser(t, newConsole(t, testOptions(newFake())))
	for _, path := range []string{"/ui/login", "/ui/", "/ui/static/console.css", "/ui/nope"} {
		rec := b.get(path)
		h := rec.Header()
		if got := h.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'self'; script-src 'self'; style-src 'self'") || !strings.Contains(got, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, got)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
	rec := b.get("/ui/static/console.css")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	login := b.get("/ui/login").Body.String()
	for _, bad := range []string{"<script", "style=", "<style", "http://", "https://"} {
		if strings.Contains(login, bad) {
			t.Errorf("the sign-in page contains %q (inline code or an external asset)", bad)
		}
	}
}

func TestSessionCookie(t *testing.T) {
	for _, tc := range []struct {
		host   string
		secure bool
	}{{"127.0.0.1:8080", false}, {"localhost:8080", false}, {"[::1]:8080", false}, {"remediator.example.com", true}, {"10.0.0.5:8080", true}} {
		b := newBrowser(t, newConsole(t, testOptions(newFake())))
		b.host = tc.host
		b.get("/ui/login")
		ck := b.cookies[CookieName]
		if ck == nil {
			t.Fatalf("%s: no session cookie", tc.host)
		}
		if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure != tc.secure || ck.Path != "/ui/" || len(ck.Value) != 43 {
			t.Errorf("%s: cookie %+v; want HttpOnly, SameSite=Lax, Secure=%v, 32 random bytes", tc.host, ck, tc.secure)
		}
	}
	// Signing in replaces the session id (no fixation).
	b := newBrowser(t, newConsole(t, testOptions(newFake())))
	b.get("/ui/login")
	before := b.cookies[CookieName].Value
	b.signIn("alice")
	if b.cookies[CookieName].Value == before {
		t.Error("the session id survived the sign-in")
	}
	// Signing out ends the session on the server.
	csrf := csrfOf(t, b.get("/ui/").Body.String())
	old := *b.cookies[CookieName]
	if rec := b.post("/ui/logout", url.Values{"csrf_token": {csrf}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("logout: %d", rec.Code)
	}
	b.cookies[CookieName] = &old
	if rec := b.get("/ui/"); rec.Code != http.StatusSeeOther {
		t.Errorf("the old cookie still works after signing out: %d", rec.Code)
	}
}

func TestDevSignInOnlyWithDevUsers(t *testing.T) {
	opts := testOptions(newFake())
	opts.DevUsers = nil
	b := newBrowser(t, newConsole(t, opts))
	page := b.get("/ui/login").Body.String()
	if strings.Contains(page, `name="user"`) || strings.Contains(page, "Development users") {
		t.Error("the sign-in page offers dev users without any configured")
	}
	if rec := b.post("/ui/login", url.Values{"csrf_token": {"x"}, "user": {"alice"}}); rec.Code != http.StatusNotFound {
		t.Errorf("dev sign-in without dev users: %d, want 404", rec.Code)
	}
	// With dev users, an unknown one is refused, and so is a missing token.
	b = newBrowser(t, newConsole(t, testOptions(newFake())))
	page = b.get("/ui/login").Body.String()
	if rec := b.post("/ui/login", url.Values{"csrf_token": {csrfOf(t, page)}, "user": {"mallory"}}); rec.Code != http.StatusBadRequest {
		t.Errorf("unknown dev user: %d, want 400", rec.Code)
	}
	if rec := b.post("/ui/login", url.Values{"user": {"alice"}}); rec.Code != http.StatusForbidden {
		t.Errorf("dev sign-in without the CSRF token: %d, want 403", rec.Code)
	}
	// next stays inside the console.
	page = b.get("/ui/login").Body.String()
	rec := b.post("/ui/login", url.Values{"csrf_token": {csrfOf(t, page)}, "user": {"alice"}, "next": {"//evil.example.com/ui/"}})
	if rec.Header().Get("Location") != "/ui/" {
		t.Errorf("next=//evil…: Location %q, want /ui/", rec.Header().Get("Location"))
	}
}

func TestPendingListAppliesScopeAndFilters(t *testing.T) {
	f := newFake()
	b := newBrowser(t, newConsole(t, testOptions(f)))
	b.signIn("alice")
	body := b.get("/ui/").Body.String()
	for _, want := range []string{"rem-a1", "rem-a2", "teamA/app", "MEDIUM", "HIGH", `class="risk risk-high"`, "1 / 2", "3h 0m", "21h 0m", `href="/ui/remediations/rem-a1"`} {
		if !strings.Contains(body, want) {
			t.Errorf("pending list lacks %q", want)
		}
	}
	if strings.Contains(body, "rem-b1") || strings.Contains(body, "teamB") {
		t.Error("the pending list shows another team's remediation")
	}
	if lf := f.filters[len(f.filters)-1]; lf.Phase != string(workflows.PhaseAwaitingApproval) || !reflect.DeepEqual(lf.Scope, orchestrator.Scope{Prefixes: []string{"teamA/*"}}) {
		t.Errorf("list filter %+v: want the awaiting phase and the principal's scope", lf)
	}
	body = b.get("/ui/?risk=high").Body.String()
	if strings.Contains(body, "rem-a1") || !strings.Contains(body, "rem-a2") {
		t.Error("risk=high does not filter")
	}
	body = b.get("/ui/?repo=teamA/app").Body.String()
	if !strings.Contains(body, "rem-a1") || strings.Contains(body, "rem-a2") {
		t.Error("repo=teamA/app does not filter")
	}
	n := len(f.filters)
	body = b.get("/ui/?repo=teamB/secret-service").Body.String()
	if strings.Contains(body, "rem-b1") || len(f.filters) != n {
		t.Error("a repository filter outside the scope is listed")
	}
	if rec := b.get("/ui/?phase=Bogus"); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "unknown phase") {
		t.Errorf("unknown phase: %d", rec.Code)
	}
	b.get("/ui/?phase=any")
	if lf := f.filters[len(f.filters)-1]; lf.Phase != "" {
		t.Errorf("phase=any: filter %+v", lf)
	}
}

func TestOtherTeamsRemediationIsNotFound(t *testing.T) {
	f := newFake()
	b := newBrowser(t, newConsole(t, testOptions(f)))
	csrf := b.signIn("eve")
	for _, path := range []string{"/ui/remediations/rem-a1", "/ui/remediations/rem-a1?view=split", "/ui/remediations/no-such"} {
		if rec := b.get(path); rec.Code != http.StatusNotFound {
			t.Errorf("eve GET %s: %d, want 404", path, rec.Code)
		}
	}
	form := url.Values{"csrf_token": {csrf}, "request_id": {"r1"}, "decision_id": {"dec-rem-a1"}, "diff_digest": {testDigest}, "base_sha": {testBase}, "reason": {"no"}}
	for _, path := range []string{"/ui/remediations/rem-a1/approve", "/ui/remediations/rem-a1/reject"} {
		if rec := b.post(path, form); rec.Code != http.StatusNotFound {
			t.Errorf("eve POST %s: %d, want 404", path, rec.Code)
		}
	}
	if len(f.delivered()) != 0 {
		t.Error("a vote on another team's remediation was delivered")
	}
	if rec := b.get("/ui/remediations/rem-b1"); rec.Code != http.StatusOK {
		t.Errorf("eve's own team: %d", rec.Code)
	}
}

func TestCSRFIsRequired(t *testing.T) {
	f := newFake()
	b := newBrowser(t, newConsole(t, testOptions(f)))
	b.signIn("alice")
	form := voteForm(t, b.get("/ui/remediations/rem-a1").Body.String())
	other := newBrowser(t, b.h)
	otherCSRF := other.signIn("dev")
	for name, token := range map[string]string{"missing": "", "wrong": strings.Repeat("x", 43), "another session's": otherCSRF} {
		form := url.Values(maps(form))
		if token == "" {
			form.Del("csrf_token")
		} else {
			form.Set("csrf_token", token)
		}
		form.Set("reason", "because")
		for _, path := range []string{"/ui/remediations/rem-a1/approve", "/ui/remediations/rem-a1/reject", "/ui/logout"} {
			if rec := b.post(path, form); rec.Code != http.StatusForbidden {
				t.Errorf("%s token, POST %s: %d, want 403", name, path, rec.Code)
			}
		}
	}
	if len(f.delivered()) != 0 {
		t.Errorf("votes delivered without a valid CSRF token: %+v", f.delivered())
	}
	if rec := b.get("/ui/"); rec.Code != http.StatusOK {
		t.Error("a logout without the token signed the user out")
	}
}

func maps(v url.Values) map[string][]string {
	out := map[string][]string{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func TestRepositoryMarkupIsInert(t *testing.T) {
	f := newFake()
	st := f.statuses["rem-a1"]
	st.FailureSummary = `<script>alert("summary")</script>`
	st.Fix.Summary = `<img src=x onerror=alert("fix")>`
	st.Fix.Validation = `<b onmouseover=alert(1)>passed</b>`
	st.Fix.Diff = "diff --git a/<script>alert(\"name\")</script>.go b/<script>alert(\"name\")</script>.go\n" +
		"--- a/<script>alert(\"name\")</script>.go\n+++ b/<script>alert(\"name\")</script>.go\n@@ -1,2 +1,2 @@\n" +
		" \"><script>alert(\"ctx\")</script>\n-</code></td><script>alert(\"del\")</script>\n+<script>alert(\"add\")</script>\n"
	st.Risk.Reason = `<script>alert("risk")</script>`
	st.Votes[0].Comment = `<script>alert("vote")</script>`
	st.PR = &activities.PullRequest{URL: "javascript:alert(1)", ID: `<script>alert("pr")</script>`}
	f.statuses["rem-a1"] = st
	f.excerpts["rem-a1"] = "</pre><script>alert(\"log\")</script>"
	f.audit["rem-a1"] = append(f.audit["rem-a1"], workflows.AuditEvent{Kind: "vote", Detail: `<script>alert("audit")</script>`})
	b := newBrowser(t, newConsole(t, testOptions(f)))
	b.signIn("alice")
	for _, view := range []string{"", "?view=split"} {
		body := b.get("/ui/remediations/rem-a1" + view).Body.String()
		if strings.Contains(body, "<script") || strings.Contains(body, "<img") || strings.Contains(body, "<b ") || strings.Contains(body, `href="javascript:`) {
			t.Fatalf("view %q: repository markup rendered live:\n%s", view, body)
		}
		for _, want := range []string{
			`&lt;script&gt;alert(&#34;summary&#34;)&lt;/script&gt;`, `&lt;img src=x onerror=alert(&#34;fix&#34;)&gt;`,
			`&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;.go`, `&lt;script&gt;alert(&#34;add&#34;)&lt;/script&gt;`,
			`&lt;/code&gt;&lt;/td&gt;&lt;script&gt;alert(&#34;del&#34;)&lt;/script&gt;`, `&lt;/pre&gt;&lt;script&gt;alert(&#34;log&#34;)&lt;/script&gt;`,
			`&lt;script&gt;alert(&#34;risk&#34;)&lt;/script&gt;`, `&lt;script&gt;alert(&#34;vote&#34;)&lt;/script&gt;`,
			`&lt;script&gt;alert(&#34;audit&#34;)&lt;/script&gt;`, `&lt;b onmouseover=alert(1)&gt;passed&lt;/b&gt;`,
			`at <code>javascript:alert(1)</code>`, `&lt;script&gt;alert(&#34;pr&#34;)&lt;/script&gt;`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("view %q lacks the escaped %s", view, want)
			}
		}
	}
}

func TestVoteIsDeliveredAsThePrincipal(t *testing.T) {
	f := newFake()
	b := newBrowser(t, newConsole(t, testOptions(f)))
	b.signIn("alice")
	page := b.get("/ui/remediations/rem-a1").Body.String()
	for _, want := range []string{"dec-rem-a1", testDigest, testBase, "go build ./... passed", "build-files", "touches the build", "Temporal Web UI", "error: go.mod requires go &gt;= 1.22", `class="add"`, "go 1.22"} {
		if !strings.Contains(page, want) {
			t.Errorf("the remediation page lacks %q", want)
		}
	}
	form := voteForm(t, page)
	form.Set("comment", "LGTM\r\nthanks")
	rec := b.post("/ui/remediations/rem-a1/approve", form)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/remediations/rem-a1?voted=approve" {
		t.Fatalf("approve: %d %q %s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	want := orchestrator.Vote{ID: "rem-a1", RequestID: form.Get("request_id"), Approve: true, Actor: "alice", Roles: []string{auth.RoleApprover},
		DecisionID: "dec-rem-a1", DiffDigest: testDigest, BaseSHA: testBase, Comment: "LGTM\nthanks", Channel: workflows.ChannelWeb}
	if got := f.delivered(); len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("delivered %+v\nwant %+v", got, want)
	}
	if body := b.get("/ui/remediations/rem-a1?voted=approve").Body.String(); !strings.Contains(body, "Your approval was recorded") {
		t.Error("no confirmation after the vote")
	}
	st := f.statuses["rem-a1"]
	st.Phase, st.PR = workflows.PhaseCompleted, &activities.PullRequest{ID: "7", URL: "https://github.com/acme/app/pull/7", Branch: "autofix/rem-a1"}
	f.statuses["rem-a1"] = st
	if body := b.get("/ui/remediations/rem-a1").Body.String(); !strings.Contains(body, `<a href="https://github.com/acme/app/pull/7">The change (7)</a>`) ||
		strings.Contains(body, `action="/ui/remediations/rem-a1/approve"`) {
		t.Error("a completed remediation: no link to the change, or still the vote forms")
	}

	// The form's values are what is sent, not the current status: a page
	// opened before the fix changed names the old digest.
	form = voteForm(t, b.get("/ui/remediations/rem-a2").Body.String())
	form.Set("diff_digest", strings.Repeat("c", 64))
	form.Set("reason", "breaks the staging cluster")
	if rec := b.post("/ui/remediations/rem-a2/reject", form); rec.Code != http.StatusSeeOther {
		t.Fatalf("reject: %d %s", rec.Code, rec.Body)
	}
	got := f.delivered()[1]
	if got.Approve || got.Actor != "alice" || got.DiffDigest != strings.Repeat("c", 64) || got.Reason != "breaks the staging cluster" {
		t.Errorf("reject delivered %+v", got)
	}

	// A rejection needs a reason; malformed fields never reach the workflow.
	form = voteForm(t, b.get("/ui/remediations/rem-a2").Body.String())
	if rec := b.post("/ui/remediations/rem-a2/reject", form); rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), "A rejection needs a reason") {
		t.Errorf("reject without reason: %d", rec.Code)
	}
	form.Set("base_sha", "main")
	if rec := b.post("/ui/remediations/rem-a2/approve", form); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("approve naming base main: %d", rec.Code)
	}
	if n := len(f.delivered()); n != 2 {
		t.Errorf("%d votes delivered, want 2", n)
	}

	// A developer cannot vote.
	d := newBrowser(t, b.h)
	form = voteForm(t, b.get("/ui/remediations/rem-a2").Body.String())
	form.Set("csrf_token", d.signIn("carol"))
	if body := d.get("/ui/remediations/rem-a2").Body.String(); strings.Contains(body, `action="/ui/remediations/rem-a2/approve"`) || !strings.Contains(body, "Voting needs the approver or admin role") {
		t.Error("a developer is offered the vote forms")
	}
	if rec := d.post("/ui/remediations/rem-a2/approve", form); rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "approver or admin role") {
		t.Errorf("developer vote: %d", rec.Code)
	}
	if n := len(f.delivered()); n != 2 {
		t.Errorf("a developer's vote was delivered")
	}
}

func TestRefusalsAreExplainedOnThePage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		want   string
	}{
		{"stale", &orchestrator.RejectedError{Code: errcode.StaleVote, Message: "the vote names digest aaaa, the fix awaiting approval is dddd"}, http.StatusConflict, "The fix changed since you opened this page"},
		{"self", &orchestrator.RejectedError{Code: errcode.SelfApproval, Message: "dev requested this remediation"}, http.StatusForbidden, "You may not approve this remediation: you requested it"},
		{"duplicate", &orchestrator.RejectedError{Code: errcode.DuplicateVote, Message: "dup"}, http.StatusConflict, "You already voted"},
		{"ended", &orchestrator.RejectedError{Code: errcode.NotAwaitingApproval, Message: "ended"}, http.StatusConflict, "no longer awaiting approval"},
		{"unavailable", errors.New("temporal unavailable"), http.StatusServiceUnavailable, "could not be delivered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			var refused []string
			opts := testOptions(f)
			opts.Refused = func(_ context.Context, p auth.Principal, id, what, channel string, err error) {
				refused = append(refused, p.Subject+" "+id+" "+what+" "+channel)
			}
			b := newBrowser(t, newConsole(t, opts))
			b.signIn("dev")
			form := voteForm(t, b.get("/ui/remediations/rem-a1").Body.String())
			form.Set("comment", "my own fix")
			f.decideErr = tc.err
			rec := b.post("/ui/remediations/rem-a1/approve", form)
			body := rec.Body.String()
			if rec.Code != tc.status || !strings.Contains(body, tc.want) || !strings.Contains(body, `role="alert"`) {
				t.Fatalf("%d, want %d with %q:\n%s", rec.Code, tc.status, tc.want, body)
			}
			if !strings.Contains(body, "my own fix") {
				t.Error("the comment typed is lost")
			}
			if len(refused) != 1 || refused[0] != "dev rem-a1 approve web" {
				t.Errorf("refusal recorded %v", refused)
			}
		})
	}
	// The requester sees up front that someone else must approve.
	b := newBrowser(t, newConsole(t, testOptions(newFake())))
	b.signIn("dev")
	if body := b.get("/ui/remediations/rem-a1").Body.String(); !strings.Contains(body, "the four-eyes rule lets someone else approve it") {
		t.Error("no four-eyes note for the requester")
	}
}

func TestDiffParsing(t *testing.T) {
	diff := testDiff + "diff --git a/docs/new.md b/docs/new.md\nnew file mode 100644\n--- /dev/null\n+++ b/docs/new.md\n@@ -0,0 +1,2 @@\n+# New\n+text\n" +
		"--- a/old name.txt\t2026-01-01\n+++ b/new name.txt\t2026-01-01\n@@ -3 +3 @@\n--- a line that starts with dashes\n+++ and one with pluses\n\\ No newline at end of file\n"
	files := parseDiff(diff)
	if len(files) != 3 {
		t.Fatalf("%d files: %+v", len(files), files)
	}
	if f := files[0]; f.Name != "go.mod" || f.OldName != "" || f.Added != 1 || f.Removed != 1 || !f.Open {
		t.Errorf("go.mod: %+v", f)
	}
	if l := files[0].Lines[3]; l.Kind != lineDel || l.Old != 3 || l.Text != "go 1.21" {
		t.Errorf("go.mod line 3: %+v", l)
	}
	if l := files[0].Lines[4]; l.Kind != lineAdd || l.New != 3 || l.Text != "go 1.22" {
		t.Errorf("go.mod new line 3: %+v", l)
	}
	if f := files[1]; f.Name != "docs/new.md" || f.OldName != "/dev/null" || f.Added != 2 || f.Removed != 0 {
		t.Errorf("new file: %+v", f)
	}
	if f := files[2]; f.Name != "new name.txt" || f.OldName != "old name.txt" || f.Added != 1 || f.Removed != 1 || f.Lines[3].Kind != lineMeta {
		t.Errorf("renamed file: %+v", f)
	}
	rows := files[0].Rows()
	var paired bool
	for _, r := range rows {
		if r.Left != nil && r.Right != nil && r.Left.Kind == lineDel && r.Right.Kind == lineAdd {
			paired = true
		}
	}
	if !paired || rows[0].Hunk == "" {
		t.Errorf("split rows %+v", rows)
	}
	// Many files start collapsed.
	var many strings.Builder
	for i := range openFiles + 1 {
		many.WriteString("--- a/f" + string(rune('a'+i)) + "\n+++ b/f" + string(rune('a'+i)) + "\n@@ -1 +1 @@\n-x\n+y\n")
	}
	for _, f := range parseDiff(many.String()) {
		if f.Open {
			t.Errorf("%s open in a diff of %d files", f.Name, openFiles+1)
		}
	}
}

func TestVotesCountAgainstTheApprovalsBudget(t *testing.T) {
	for _, tc := range []struct {
		name    string
		limited bool
		err     error
		status  int
	}{{"limited", true, nil, http.StatusTooManyRequests}, {"store down", false, errors.New("redis: connection refused"), http.StatusServiceUnavailable}} {
		f := newFake()
		opts := testOptions(f)
		var took []string
		opts.TakeVote = func(_ context.Context, p auth.Principal) (bool, error) {
			took = append(took, p.Subject)
			return tc.limited, tc.err
		}
		b := newBrowser(t, newConsole(t, opts))
		b.signIn("alice")
		form := voteForm(t, b.get("/ui/remediations/rem-a1").Body.String())
		if rec := b.post("/ui/remediations/rem-a1/approve", form); rec.Code != tc.status || len(f.delivered()) != 0 || len(took) != 1 || took[0] != "alice" {
			t.Errorf("%s: %d, %d votes delivered, budget taken for %v", tc.name, rec.Code, len(f.delivered()), took)
		}
	}
}
