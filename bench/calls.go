//go:build !production

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"remediator/workflows"
)

// request builds an API request as the dev principal who (a dev token).
func (s *stack) request(ctx context.Context, method, path, who string, body []byte, idemKey string) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.baseURL+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.dev.Token(who))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	return req, nil
}

// send sends req and reads the whole answer (so the connection is reused).
func (s *stack) send(req *http.Request) (int, []byte, error) {
	res, err := s.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// call is request + send + JSON decoding, for the untimed parts.
func (s *stack) call(ctx context.Context, method, path, who string, body any, idemKey string, out any) (int, error) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return 0, err
		}
	}
	req, err := s.request(ctx, method, path, who, raw, idemKey)
	if err != nil {
		return 0, err
	}
	code, b, err := s.send(req)
	if err != nil {
		return code, err
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return code, fmt.Errorf("decoding %s %s (%d): %w", method, path, code, err)
		}
	}
	return code, nil
}

// apiStatus is the part of GET /api/remediations/{id} the benchmark reads.
type apiStatus struct {
	ID         string          `json:"id"`
	Phase      workflows.Phase `json:"phase"`
	Reason     string          `json:"reason"`
	DecisionID string          `json:"decision_id"`
	Fix        *struct {
		Digest  string `json:"digest"`
		BaseSHA string `json:"base_sha"`
		Recipe  string `json:"recipe"`
	} `json:"fix"`
}

func (s *stack) status(ctx context.Context, id string) (apiStatus, error) {
	var st apiStatus
	code, err := s.call(ctx, http.MethodGet, "/api/remediations/"+id, "dev", nil, "", &st)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET %s: %d", id, code)
	}
	return st, err
}

// count asks visibility how many executions match query.
func (s *stack) count(ctx context.Context, query string) (int64, error) {
	return countOn(ctx, s.raw, s.cfg.Temporal.Namespace, query)
}

// waitCount polls visibility until query counts want (or more), the
// timeout passes or ctx ends; it returns the last count.
func (s *stack) waitCount(ctx context.Context, query string, want int64, timeout time.Duration) (int64, error) {
	return waitCountOn(ctx, s.raw, s.cfg.Temporal.Namespace, query, want, timeout)
}

// incidentQuery selects the remediations a scenario started: every one of
// them carries the scenario's marker as its incident id.
func incidentQuery(marker string, extra string) string {
	q := fmt.Sprintf("WorkflowType = '%s' AND %s = '%s'", workflows.WorkflowName, workflows.SearchAttrIncident, marker)
	if extra != "" {
		q += " AND " + extra
	}
	return q
}
