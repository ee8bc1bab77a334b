//go:build production

package app

import (
	"context"
	"errors"
	"io"
)

// ErrNoDevServer is what `remediator dev` answers in a production build: the
// embedded Temporal server and Web UI are left out of it (build tag
// production), so the api and worker images carry neither.
var ErrNoDevServer = errors.New("this binary is a production build without the embedded Temporal server: " +
	"`remediator dev` needs the default build (`make build`); run `remediator api` and `remediator worker` against a Temporal cluster")

// RunDev is `remediator dev` in a production build: it refuses.
func RunDev(context.Context, func(string) string, io.Writer, io.Writer) error {
	return ErrNoDevServer
}
