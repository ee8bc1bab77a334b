package orchestrator

import (
	"context"

	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
)

// startProbe learns from the frontend's own answer whether a start began a
// new run: StartWorkflowExecution says so (started), but the SDK's
// ExecuteWorkflow does not pass it on. Knowing it saves the describe that
// would otherwise tell a new run from an existing one on every start.
type startProbe struct {
	seen, started bool
}

type probeKey struct{}

// withStartProbe returns ctx carrying p for the start made with it.
func withStartProbe(ctx context.Context, p *startProbe) context.Context {
	return context.WithValue(ctx, probeKey{}, p)
}

// startProbeInterceptor fills the probe of the call's context from a
// successful StartWorkflowExecution answer; every other call passes through.
func startProbeInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if err != nil {
		return err
	}
	if p, ok := ctx.Value(probeKey{}).(*startProbe); ok {
		if r, ok := reply.(*workflowservice.StartWorkflowExecutionResponse); ok {
			p.seen, p.started = true, r.GetStarted()
		}
	}
	return nil
}

// DialOptions are the gRPC options every client of the orchestrator is
// dialled with (Dial sets them; tests that build their own client add them
// to get the single-round-trip start).
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(startProbeInterceptor)}
}
