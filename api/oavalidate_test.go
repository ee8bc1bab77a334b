package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"remediator/internal/errcode"
)

// The document is loaded and validated once per test binary: every response
// the api tests receive is checked against it (see serve).
var (
	oaOnce   sync.Once
	oaSpec   *openapi3.T
	oaRouter routers.Router
	oaErr    error
)

// openAPISpec returns openapi.yaml loaded, validated as an OpenAPI 3
// document (examples included), and a router over its operations.
func openAPISpec(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	oaOnce.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(openAPIDoc)
		if err != nil {
			oaErr = fmt.Errorf("openapi.yaml does not load: %w", err)
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			oaErr = fmt.Errorf("openapi.yaml is not a valid OpenAPI 3 document: %w", err)
			return
		}
		router, err := gorillamux.NewRouter(doc)
		if err != nil {
			oaErr = fmt.Errorf("routing openapi.yaml: %w", err)
			return
		}
		oaSpec, oaRouter = doc, router
	})
	if oaErr != nil {
		t.Fatal(oaErr)
	}
	return oaSpec, oaRouter
}

// serve runs req through h and fails the test unless the response is one
// openapi.yaml describes. Every request the api tests make goes through it.
func serve(t *testing.T, h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	checkResponse(t, req, rec.Code, rec.Header(), rec.Body.Bytes())
	return rec
}

// unroutedResponses are the answers given outside any operation (an unknown
// path or method, or headers refused before routing), by their name in
// components/responses.
var unroutedResponses = map[int]string{
	http.StatusNotFound:                    "NotFound",
	http.StatusMethodNotAllowed:            "MethodNotAllowed",
	http.StatusRequestHeaderFieldsTooLarge: "RequestHeaderTooLarge",
}

// checkResponse fails the test unless the response is one the document
// describes (see responseProblems).
func checkResponse(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	doc, router := openAPISpec(t)
	for _, p := range responseProblems(doc, router, req, status, header, body) {
		t.Error(p)
	}
}

// responseProblems checks one response against the document: a documented
// status of the operation, its headers, its body against the schema, and for
// errors a catalogue code with the status the catalogue gives it, listed in
// that response's x-error-codes. Every response must carry X-Correlation-ID.
func responseProblems(doc *openapi3.T, router routers.Router, req *http.Request, status int, header http.Header, body []byte) []string {
	where := req.Method + " " + req.URL.Path + " → " + strconv.Itoa(status)
	var problems []string
	if header.Get(HeaderCorrelationID) == "" {
		problems = append(problems, where+": no X-Correlation-ID header")
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		name, ok := unroutedResponses[status]
		if !ok {
			return append(problems, fmt.Sprintf("%s: not a documented operation (%v)", where, err))
		}
		ref := doc.Components.Responses[name]
		if ref == nil || ref.Value == nil {
			return append(problems, fmt.Sprintf("%s: components/responses/%s is missing", where, name))
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return append(problems, fmt.Sprintf("%s: body is not JSON: %v\n%s", where, err, body))
		}
		if err := doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
			problems = append(problems, fmt.Sprintf("%s: body does not match the Error schema: %v\n%s", where, err, body))
		}
		return append(problems, errorCodeProblems(where, ref.Value, status, body)...)
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		return append(problems, fmt.Sprintf("%s: the response does not match openapi.yaml: %v\n%s", where, err, body))
	}
	if resp := route.Operation.Responses.Status(status); resp != nil && isErrorResponse(resp.Value) {
		problems = append(problems, errorCodeProblems(where, resp.Value, status, body)...)
	}
	return problems
}

// isErrorResponse reports whether a response's JSON body is the Error schema.
func isErrorResponse(r *openapi3.Response) bool {
	mt := r.Content.Get("application/json")
	return mt != nil && mt.Schema != nil && mt.Schema.Ref == errorSchemaRef
}

// errorCodesOf returns the x-error-codes a documented response lists.
func errorCodesOf(r *openapi3.Response) []string {
	raw, _ := r.Extensions["x-error-codes"].([]any)
	var out []string
	for _, v := range raw {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func errorCodeProblems(where string, r *openapi3.Response, status int, body []byte) []string {
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		return []string{fmt.Sprintf("%s: error body: %v", where, err)}
	}
	var problems []string
	code, ok := errcode.Lookup(eb.Error)
	switch {
	case !ok:
		problems = append(problems, fmt.Sprintf("%s: code %q is not in the catalogue", where, eb.Error))
	case code.Status != status:
		problems = append(problems, fmt.Sprintf("%s: code %q answered with %d, the catalogue says %d", where, eb.Error, status, code.Status))
	case !slices.Contains(errorCodesOf(r), eb.Error):
		problems = append(problems, fmt.Sprintf("%s: code %q is not in this response's x-error-codes %v", where, eb.Error, errorCodesOf(r)))
	}
	if eb.CorrelationID == "" {
		problems = append(problems, where+": error body without correlation_id")
	}
	return problems
}

// TestResponseCheckerCatchesMismatches keeps the checker honest: responses
// the document does not describe must be reported.
func TestResponseCheckerCatchesMismatches(t *testing.T) {
	doc, router := openAPISpec(t)
	jsonHdr := func(extra ...string) http.Header {
		h := http.Header{}
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set(HeaderCorrelationID, "req-12345678")
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return h
	}
	errBody := func(code string) []byte {
		return []byte(`{"error":"` + code + `","message":"m","correlation_id":"req-12345678"}`)
	}
	for name, tc := range map[string]struct {
		method, path string
		status       int
		header       http.Header
		body         []byte
	}{
		"undocumented status":        {"GET", "/livez", 418, jsonHdr(), []byte(`{"status":"ok"}`)},
		"body off the schema":        {"GET", "/livez", 200, jsonHdr(), []byte(`{"status":"maybe"}`)},
		"no correlation id":          {"GET", "/livez", 200, http.Header{"Content-Type": {"application/json"}}, []byte(`{"status":"ok"}`)},
		"code outside the catalogue": {"GET", "/api/remediations/rem-1", 404, jsonHdr(), errBody("gone")},
		"code with another status":   {"GET", "/api/remediations/rem-1", 404, jsonHdr(), errBody("forbidden")},
		"code not listed there":      {"POST", "/api/remediations", 400, jsonHdr(), errBody("missing_headers")},
		"undocumented on that route": {"GET", "/api/remediations/rem-1", 409, jsonHdr(), errBody("stale_vote")},
		"unrouted but not an error":  {"GET", "/nowhere", 200, jsonHdr(), []byte(`{}`)},
		"unrouted, wrong code":       {"GET", "/nowhere", 404, jsonHdr(), errBody("forbidden")},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if got := responseProblems(doc, router, req, tc.status, tc.header, tc.body); len(got) == 0 {
			t.Errorf("%s: not reported", name)
		}
	}
	ok := responseProblems(doc, router, httptest.NewRequest("GET", "/api/remediations/rem-1", nil), 404, jsonHdr(), errBody("not_found"))
	if len(ok) != 0 {
		t.Errorf("a documented answer is reported: %v", ok)
	}
}
