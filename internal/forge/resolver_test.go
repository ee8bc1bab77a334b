package forge

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

type fakeChecker struct {
	calls int
	known map[string]bool
}

func (f *fakeChecker) Resolve(_ context.Context, path, _ string) (string, string, bool, error) {
	f.calls++
	if !f.known[path] {
		return "", "", false, errors.New("404 Not Found")
	}
	return "0123456789abcdef0123456789abcdef01234567", "main", true, nil
}

type fakeLocal struct{}

func (fakeLocal) Canonical(_ context.Context, repo string) (string, error) {
	if repo == "/srv/git/a" {
		return repo, nil
	}
	return "", errors.New("not a repository")
}
func (fakeLocal) ScopeNames(c string) []string { return []string{c, "a"} }
func (fakeLocal) Roots() []string              { return []string{"/srv/git"} }

func TestResolver(t *testing.T) {
	gh := &fakeChecker{known: map[string]bool{"acme/api": true}}
	r := &Resolver{Local: fakeLocal{}, Forges: map[Kind]Checker{GitHub: gh}, Hosts: Hosts{GitHub: "github.com"}}
	ctx := context.Background()
	for in, want := range map[string]string{"acme/api": "acme/api", "https://github.com/acme/api.git": "acme/api", "/srv/git/a": "/srv/git/a"} {
		if got, err := r.Canonical(ctx, in); err != nil || got != want {
			t.Errorf("Canonical(%q) = %q, %v", in, got, err)
		}
	}
	if gh.calls != 1 {
		t.Errorf("a known forge repository is cached: %d calls", gh.calls)
	}
	for _, bad := range []string{"acme/missing", "gitlab:group/app", "/srv/git/b", "evil.com/a/b", ""} {
		if _, err := r.Canonical(ctx, bad); err == nil {
			t.Errorf("Canonical(%q) must fail", bad)
		}
	}
	if got := r.ScopeNames("acme/api"); !reflect.DeepEqual(got, []string{"acme/api", "github.com/acme/api"}) {
		t.Errorf("forge scope names %v", got)
	}
	if got := r.ScopeNames("/srv/git/a"); !reflect.DeepEqual(got, []string{"/srv/git/a", "a"}) {
		t.Errorf("local scope names %v", got)
	}
	if got := r.ScopeBases(); !reflect.DeepEqual(got, []string{"", "/srv/git/"}) {
		t.Errorf("bases %v", got)
	}
	if names, ok := r.ForgeScopeNames("https://github.com/acme/api"); !ok || !reflect.DeepEqual(names, []string{"acme/api", "github.com/acme/api"}) {
		t.Errorf("forge scope names of a reference: %v %v", names, ok)
	}
	if _, ok := r.ForgeScopeNames("/srv/git/a"); ok {
		t.Error("a local reference has no forge scope names")
	}
	if _, err := (&Resolver{Hosts: Hosts{}}).Canonical(ctx, "/srv/git/a"); err == nil {
		t.Error("local repositories are refused without a local provider")
	}
}
