//go:build !production

package e2e

import "go.temporal.io/api/workflowservice/v1"

func listReq(s *stack, query string) *workflowservice.ListWorkflowExecutionsRequest {
	return &workflowservice.ListWorkflowExecutionsRequest{Namespace: s.cfg.Temporal.Namespace, Query: query}
}
