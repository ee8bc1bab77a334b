// Package correlation carries one correlation id from the HTTP request that
// caused work through the workflow, its activities and every outbound HTTP
// call, so logs and upstream systems can be joined on it.
package correlation

import (
	"context"
	"net/http"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"
)

// Header is the HTTP header (and the Temporal header key) that carries the id.
const Header = "X-Correlation-ID"

type ctxKey struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{}, id)
}

// From returns the id carried by ctx, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// FromWorkflow returns the id carried by a workflow context, or "".
func FromWorkflow(ctx workflow.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// headerKey is the key inside Temporal's request headers.
const headerKey = "correlation-id"

// Propagator moves the id between client, workflow and activity contexts
// through Temporal headers. Register it in client.Options.ContextPropagators.
type Propagator struct{}

var _ workflow.ContextPropagator = Propagator{}

// Inject writes the id of a Go context into outgoing headers.
func (Propagator) Inject(ctx context.Context, w workflow.HeaderWriter) error {
	return inject(From(ctx), w)
}

// InjectFromWorkflow writes the id of a workflow context into outgoing headers.
func (Propagator) InjectFromWorkflow(ctx workflow.Context, w workflow.HeaderWriter) error {
	return inject(FromWorkflow(ctx), w)
}

// Extract reads the id from incoming headers into a Go (activity) context.
func (Propagator) Extract(ctx context.Context, r workflow.HeaderReader) (context.Context, error) {
	id, err := extract(r)
	if err != nil || id == "" {
		return ctx, err
	}
	return With(ctx, id), nil
}

// ExtractToWorkflow reads the id from incoming headers into a workflow context.
func (Propagator) ExtractToWorkflow(ctx workflow.Context, r workflow.HeaderReader) (workflow.Context, error) {
	id, err := extract(r)
	if err != nil || id == "" {
		return ctx, err
	}
	return workflow.WithValue(ctx, ctxKey{}, id), nil
}

func inject(id string, w workflow.HeaderWriter) error {
	if id == "" {
		return nil
	}
	p, err := converter.GetDefaultDataConverter().ToPayload(id)
	if err != nil {
		return err
	}
	w.Set(headerKey, p)
	return nil
}

func extract(r workflow.HeaderReader) (string, error) {
	p, ok := r.Get(headerKey)
	if !ok {
		return "", nil
	}
	var id string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &id); err != nil {
		return "", err
	}
	return id, nil
}

// Transport adds the id of each request's context as X-Correlation-ID to
// outbound HTTP calls; every integration client wraps its transport in it.
type Transport struct {
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper without mutating the caller's request.
func (t Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if id := From(req.Context()); id != "" && req.Header.Get(Header) == "" {
		req = req.Clone(req.Context())
		req.Header.Set(Header, id)
	}
	return base.RoundTrip(req)
}
