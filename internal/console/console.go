// Package console is the approver console: server-rendered pages under
// /ui/ where a person signs in, sees the remediations awaiting their vote,
// reads one (failure, diff, validation, risk, votes, audit) and approves or
// rejects it.
//
// It has no path of its own to Temporal: it uses the API's orchestrator
// calls (List, Get, Audit, RepoOf, Decide — the same signed vote as
// POST /api/remediations/{id}/approve) and the API's access rules (Scope,
// MayAccess), handed over by api.Options.UI. Everything is rendered by
// html/template from embedded templates and one embedded stylesheet; the
// pages work without JavaScript and the Content-Security-Policy allows no
// inline script or style.
package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"remediator/internal/auth"
	"remediator/internal/orchestrator"
	"remediator/workflows"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Orchestrator is the part of the API's orchestrator the console uses
// (api.Orchestrator satisfies it).
type Orchestrator interface {
	List(ctx context.Context, f orchestrator.ListFilter) (orchestrator.ListResult, error)
	Get(ctx context.Context, id string) (orchestrator.Status, error)
	Decide(ctx context.Context, v orchestrator.Vote) (orchestrator.Status, error)
	Audit(ctx context.Context, id string) ([]workflows.AuditEvent, error)
	RepoOf(ctx context.Context, id string) (string, error)
}

// LogExcerpter is optionally implemented by the orchestrator: the log
// excerpt a remediation was started with (the status does not carry it).
type LogExcerpter interface {
	LogExcerpt(ctx context.Context, id string) (string, error)
}

// Options configure the console. Orch, Scope and MayAccess are required.
type Options struct {
	Orch Orchestrator
	// Scope is the visibility condition of a principal's listing and
	// MayAccess the per-repository check: the API's own (api.Access).
	Scope     func(p auth.Principal) orchestrator.Scope
	MayAccess func(p auth.Principal, repo string) bool
	// Canonical canonicalises the repository filter (nil: as typed).
	Canonical func(ctx context.Context, repo string) string
	// ValidSubject bounds the subjects a sign-in may produce (nil: any
	// non-empty subject).
	ValidSubject func(subject string) bool
	// WebUIURL links a remediation in the Temporal Web UI (nil or "": none).
	WebUIURL func(id string) string
	// Refused records a refused vote in the audit store (nil: not recorded).
	Refused func(ctx context.Context, p auth.Principal, id, what, channel string, err error)
	// TakeVote counts a vote against the person's approvals budget (nil:
	// not limited); an error refuses the vote.
	TakeVote func(ctx context.Context, p auth.Principal) (limited bool, err error)
	// Sessions stores sign-ins; nil keeps them in this process's memory.
	Sessions SessionStore
	// SessionTTL is how long a sign-in lasts (default 8h).
	SessionTTL time.Duration
	// DevUsers are offered on the sign-in page without a password: set by
	// `remediator dev` only, never by `remediator api`.
	DevUsers []auth.Principal
	// OIDC signs people in with OpenID Connect; nil: not offered.
	OIDC   *OIDC
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Console serves /ui/.
type Console struct {
	opts  Options
	pages map[string]*template.Template
	mux   *http.ServeMux
	oidc  *oidcClient
}

// pageNames are the templates that each render one whole page with
// layout.html.
var pageNames = []string{"pending", "remediation", "login", "error"}

// New builds the console. The OIDC provider, when configured, is
// discovered lazily on the first sign-in, so a provider outage does not
// stop the API.
func New(opts Options) (*Console, error) {
	if opts.Orch == nil || opts.Scope == nil || opts.MayAccess == nil {
		return nil, errors.New("console: Orch, Scope and MayAccess are required")
	}
	if opts.Sessions == nil {
		opts.Sessions = NewMemorySessions()
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 8 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ValidSubject == nil {
		opts.ValidSubject = func(s string) bool { return strings.TrimSpace(s) != "" && len(s) <= 128 }
	}
	c := &Console{opts: opts, pages: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		c.pages[name] = t
	}
	if opts.OIDC != nil {
		oc, err := newOIDCClient(*opts.OIDC)
		if err != nil {
			return nil, err
		}
		c.oidc = oc
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /ui/{$}", c.signedIn(c.pending))
	mux.HandleFunc("GET /ui/remediations/{id}", c.signedIn(c.remediation))
	mux.HandleFunc("POST /ui/remediations/{id}/approve", c.signedIn(c.csrf(c.vote(true))))
	mux.HandleFunc("POST /ui/remediations/{id}/reject", c.signedIn(c.csrf(c.vote(false))))
	mux.HandleFunc("GET /ui/login", c.loginPage)
	mux.HandleFunc("POST /ui/login", c.devLogin)
	mux.HandleFunc("GET /ui/oidc/start", c.oidcStart)
	mux.HandleFunc("GET /ui/oidc/callback", c.oidcCallback)
	mux.HandleFunc("POST /ui/logout", c.signedIn(c.csrf(c.logout)))
	mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		c.renderError(w, r, http.StatusNotFound, "Not found", "There is no such page.")
	})
	c.mux = mux
	return c, nil
}

// ServeHTTP sets the console's security headers and routes.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if strings.HasPrefix(r.URL.Path, "/ui/static/") {
		h.Set("Cache-Control", "public, max-age=300")
	} else {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

type ctxKey int

const sessionKey ctxKey = iota

// sessionOf is the signed-in session of a request that passed signedIn.
func sessionOf(r *http.Request) Session {
	s, _ := r.Context().Value(sessionKey).(Session)
	return s
}

// signedIn redirects to the sign-in page unless the request carries a
// signed-in session.
func (c *Console) signedIn(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.loadSession(r)
		if !ok || s.Principal.Subject == "" {
			if r.Method != http.MethodGet {
				c.renderError(w, r, http.StatusUnauthorized, "Signed out", "Your session ended; sign in again and repeat the action.")
				return
			}
			http.Redirect(w, r, "/ui/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), sessionKey, s)))
	}
}

// csrf refuses a form whose csrf_token is not the session's.
func (c *Console) csrf(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			c.renderError(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
			return
		}
		if !sessionOf(r).checkCSRF(r.PostForm.Get("csrf_token")) {
			c.renderError(w, r, http.StatusForbidden, "Form expired", "The form's security token is missing or wrong. Reload the page and try again.")
			return
		}
		next(w, r)
	}
}

// mayAccessID reports whether p may see remediation id, with the API's
// rule: its repository is looked up first, and anything out of scope is
// not found.
func (c *Console) mayAccessID(ctx context.Context, p auth.Principal, id string) error {
	repo, err := c.opts.Orch.RepoOf(ctx, id)
	if err != nil {
		return err
	}
	if !c.opts.MayAccess(p, repo) {
		return orchestrator.ErrNotFound
	}
	return nil
}

// render writes page name with data.
func (c *Console) render(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var b strings.Builder
	if err := c.pages[name].Execute(&b, data); err != nil {
		c.opts.Logger.Error("console: rendering a page failed", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// base is what every page's layout needs.
type base struct {
	Title  string
	User   *auth.Principal
	CSRF   string
	Notice string
}

func (c *Console) baseFor(r *http.Request, title string) base {
	b := base{Title: title}
	if s := sessionOf(r); s.Principal.Subject != "" {
		p := s.Principal
		b.User, b.CSRF = &p, s.CSRF
	}
	return b
}

type errorPage struct {
	base
	Heading, Message string
}

func (c *Console) renderError(w http.ResponseWriter, r *http.Request, status int, heading, msg string) {
	c.render(w, status, "error", errorPage{base: c.baseFor(r, heading), Heading: heading, Message: msg})
}

// failed answers an orchestrator error as a page: not found (or out of
// scope) as 404, anything else as 503 without details.
func (c *Console) failed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, orchestrator.ErrNotFound) {
		c.renderError(w, r, http.StatusNotFound, "Not found", "There is no such remediation, or it is not one you may see.")
		return
	}
	c.opts.Logger.WarnContext(r.Context(), "console: orchestrator call failed", "error", err)
	c.renderError(w, r, http.StatusServiceUnavailable, "Unavailable", "The remediation service did not answer. Try again in a moment.")
}
