package forge

import (
	"errors"
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	hosts := Hosts{GitHub: "github.com", GitLab: "gitlab.example.com"}
	ok := map[string]Ref{
		"acme/api":                                      {GitHub, "acme/api"},
		"acme/api.git":                                  {GitHub, "acme/api"},
		"github.com/acme/api":                           {GitHub, "acme/api"},
		"https://github.com/acme/api.git":               {GitHub, "acme/api"},
		"gitlab:group/sub/project":                      {GitLab, "group/sub/project"},
		"gitlab.example.com/group/project":              {GitLab, "group/project"},
		"https://gitlab.example.com/group/sub/project/": {GitLab, "group/sub/project"},
		"/srv/git/repo":                                 {Local, "/srv/git/repo"},
		"file:///srv/git/repo":                          {Local, "file:///srv/git/repo"},
	}
	for in, want := range ok {
		got, err := Parse(in, hosts)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "acme", "acme/api/extra", "../etc", "acme/..", "gitlab:..", "gitlab:group",
		"evil.com/acme/api", "https://user@github.com/acme/api", "https://github.com/acme/api?x=1", "acme/api\n",
		"acme /api", "gitlab:group/./project", "acme/.", "github.com/../x", "git@evil.com:acme/api", "root@github.com:acme/api"} {
		if _, err := Parse(bad, hosts); !errors.Is(err, ErrUnknown) {
			t.Errorf("Parse(%q): want ErrUnknown, got %v", bad, err)
		}
	}
	// Without a configured GitLab host, its host path is no forge.
	if _, err := Parse("gitlab.example.com/group/project", Hosts{GitHub: "github.com"}); err == nil {
		t.Error("an unconfigured host must not parse")
	}
}

func TestCanonicalAndScopeNames(t *testing.T) {
	hosts := Hosts{GitHub: "github.com", GitLab: "gitlab.com"}
	gh := Ref{GitHub, "acme/api"}
	gl := Ref{GitLab, "group/project"}
	if gh.String() != "acme/api" || gl.String() != "gitlab:group/project" || gh.Owner() != "acme" || gh.Name() != "api" {
		t.Fatal("canonical forms")
	}
	// The canonical form parses back to the same reference.
	for _, r := range []Ref{gh, gl} {
		if back, err := Parse(r.String(), hosts); err != nil || back != r {
			t.Errorf("round trip of %v: %v %v", r, back, err)
		}
	}
	if got := gh.ScopeNames(hosts); !reflect.DeepEqual(got, []string{"acme/api", "github.com/acme/api"}) {
		t.Errorf("github scope names %v", got)
	}
	if got := gl.ScopeNames(hosts); !reflect.DeepEqual(got, []string{"gitlab:group/project", "gitlab.com/group/project"}) {
		t.Errorf("gitlab scope names %v", got)
	}
}
