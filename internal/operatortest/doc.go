// Package operatortest runs every command of the README's "Operate" section
// against a real `remediator dev` child process, as an operator would: the
// remediator client (status, approve, reject, list), the Temporal CLI
// (v1.5.1: workflow list/describe/query/cancel/show/reset) and the Web UI.
//
// The test is behind the build tag "operator" (it builds two binaries and
// starts a whole stack); run it with `make test-operator` or
//
//	go test -count=1 -tags operator -v -timeout 20m ./internal/operatortest/
package operatortest
