package orchestrator

import (
	"context"
	"errors"
	"testing"

	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
)

func TestStartProbeReadsTheFrontendsAnswer(t *testing.T) {
	invoke := func(started bool, err error) grpc.UnaryInvoker {
		return func(_ context.Context, _ string, _, reply any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
			if r, ok := reply.(*workflowservice.StartWorkflowExecutionResponse); ok {
				r.Started = started
			}
			return err
		}
	}
	for _, tc := range []struct {
		name          string
		reply         any
		started       bool
		err           error
		seen, wantNew bool
	}{
		{"a new run", &workflowservice.StartWorkflowExecutionResponse{}, true, nil, true, true},
		{"an existing run", &workflowservice.StartWorkflowExecutionResponse{}, false, nil, true, false},
		{"a failed call", &workflowservice.StartWorkflowExecutionResponse{}, true, errors.New("unavailable"), false, false},
		{"another call", &workflowservice.DescribeWorkflowExecutionResponse{}, true, nil, false, false},
	} {
		p := &startProbe{}
		err := startProbeInterceptor(withStartProbe(context.Background(), p), "/x", nil, tc.reply, nil, invoke(tc.started, tc.err))
		if !errors.Is(err, tc.err) || p.seen != tc.seen || p.started != tc.wantNew {
			t.Errorf("%s: probe %+v err %v", tc.name, *p, err)
		}
	}
	// Without a probe in the context the call just passes through.
	if err := startProbeInterceptor(context.Background(), "/x", nil, &workflowservice.StartWorkflowExecutionResponse{}, nil, invoke(true, nil)); err != nil {
		t.Fatal(err)
	}
}
