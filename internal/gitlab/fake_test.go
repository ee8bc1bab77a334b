package gitlab

import (
	"testing"

	"remediator/internal/gitlab/gitlabtest"
)

// The fake GitLab lives in gitlabtest, so other packages' tests can use it
// too; these are this package's shorthands for it.

type (
	fakeFile = gitlabtest.File
	fakeMR   = gitlabtest.MR
	fakeJob  = gitlabtest.Job
)

const (
	testToken   = "glpat-S3CRET-t0ken-do-not-leak"
	testProject = "group/sub/project"
	projectID   = 42
)

func newFake(t *testing.T) *gitlabtest.Server {
	t.Helper()
	f := gitlabtest.New(t)
	f.Token = testToken
	f.Project = gitlabtest.Project{ID: projectID, Path: testProject, DefaultBranch: "main"}
	return f
}

func fakeClient(t *testing.T, f *gitlabtest.Server) *Client {
	t.Helper()
	c, err := New(Config{URL: f.URL(), Token: f.Token, HTTPClient: f.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
