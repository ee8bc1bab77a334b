package gitlocal

import (
	"errors"
	"fmt"
)

// Kind classifies a failure so that callers (workflows, HTTP handlers) can
// decide between retrying and giving up without parsing messages.
type Kind string

const (
	// KindInvalidRepo means the request itself is unacceptable: the repository
	// reference is not an absolute local path or file:// URL, lies outside the
	// configured roots, is not a git repository, or an argument such as a branch
	// name or title is malformed. Retrying cannot help.
	KindInvalidRepo Kind = "invalid_repo"
	// KindNotFound means a ref or commit does not exist in the repository.
	KindNotFound Kind = "not_found"
	// KindConflict means the branch already exists with content that is not the
	// requested change, so opening the change would clobber someone's work.
	KindConflict Kind = "conflict"
	// KindPatch means the diff does not apply cleanly to the base commit (or
	// applies to no change at all).
	KindPatch Kind = "patch"
	// KindTransient covers everything that may succeed on retry: lock
	// timeouts, cancelled contexts, I/O errors, git crashing.
	KindTransient Kind = "transient"
)

// Error carries a Kind alongside the failed operation so that the cause
// survives wrapping by callers (errors.As / KindOf).
type Error struct {
	Kind Kind
	Op   string
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("gitlocal: %s (%s): %v", e.Op, e.Kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf lets callers classify any error returned by this package, even when
// wrapped. Errors not produced here are treated as transient; nil yields "".
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindTransient
}

func newErr(kind Kind, op string, format string, args ...any) *Error {
	return &Error{Kind: kind, Op: op, Err: fmt.Errorf(format, args...)}
}

func wrapErr(kind Kind, op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Kind: kind, Op: op, Err: err}
}
