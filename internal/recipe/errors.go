package recipe

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies why no fix was produced, so the caller can tell the user
// something precise and decide whether a retry makes sense.
type Kind string

const (
	// KindNoRecipe: no recipe matches the failure (or none applies to the
	// repository's files). Permanent for this failure.
	KindNoRecipe Kind = "no_recipe"
	// KindNoChange: matching recipes ran but produced no diff, or their
	// command failed. Permanent.
	KindNoChange Kind = "no_change"
	// KindTooLarge: the diff exceeds Generator.MaxDiffBytes. Refusal.
	KindTooLarge Kind = "too_large"
	// KindDeniedPath: the diff touches a path matching Generator.DeniedPaths
	// (Error.Paths lists them). Refusal.
	KindDeniedPath Kind = "denied_path"
	// KindCheckFailed: the recipe's Check did not pass on the fixed tree.
	// Refusal.
	KindCheckFailed Kind = "check_failed"
	// KindTimeout: a recipe command or check exceeded the recipe's Timeout.
	KindTimeout Kind = "timeout"
	// KindTransient: infrastructure trouble (checkout, git, I/O, cancelled
	// context). Err wraps the cause; for provider errors inspect it with the
	// provider's own classifier (e.g. gitlocal.KindOf), because an invalid
	// repository is not worth retrying.
	KindTransient Kind = "transient"
	// KindModelFailed: the language model's answers were not an acceptable
	// fix: no diff, a diff that does not apply, touches denied paths, is
	// too large or fails the check, for every one of the attempts.
	// Refusal; Msg says what was wrong with the last answer.
	KindModelFailed Kind = "model_failed"
	// KindInvalid: the generator, a recipe or the request is malformed
	// (bad regexp, missing SHA, ...). Permanent until the configuration or
	// request is fixed.
	KindInvalid Kind = "invalid"
)

// Error keeps the recipe involved and a human-readable reason next to the
// Kind. Output (the tail of the command's output) and Err are for the log
// only: a command's output may echo file contents. Summary is what may be
// shown to API callers.
type Error struct {
	Kind   Kind
	Recipe string
	Msg    string
	Err    error
	// Paths lists the offending paths for KindDeniedPath.
	Paths []string
	// Output is the tail of the command's output.
	Output string
}

// Summary names the recipe, the kind and the reason, without command output
// or wrapped errors.
func (e *Error) Summary() string {
	var b strings.Builder
	b.WriteString("recipe")
	if e.Recipe != "" {
		b.WriteString(" " + e.Recipe)
	}
	fmt.Fprintf(&b, ": %s", e.Kind)
	if e.Msg != "" {
		b.WriteString(": " + e.Msg)
	}
	return b.String()
}

func (e *Error) Error() string {
	msg := e.Summary()
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Output != "" {
		msg += "\noutput:\n" + e.Output
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf classifies any error returned by Generate, even when wrapped.
// Foreign errors count as transient; nil yields "".
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
