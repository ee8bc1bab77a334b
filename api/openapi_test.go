package api

import (
	"bytes"
	"fmt"
	"mime"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"gopkg.in/yaml.v3"
)

// The subset of OpenAPI 3 the checks below read.
type oaDoc struct {
	Paths      map[string]map[string]yaml.Node `yaml:"paths"`
	Components struct {
		Responses       map[string]oaResponse `yaml:"responses"`
		SecuritySchemes map[string]yaml.Node  `yaml:"securitySchemes"`
	} `yaml:"components"`
}

type oaOperation struct {
	Security      *[]map[string][]string `yaml:"security"` // nil: absent; empty: explicitly public
	RequiredRoles []string               `yaml:"x-required-roles"`
	RateLimit     string                 `yaml:"x-rate-limit"`
	Responses     map[string]oaResponse  `yaml:"responses"`
}

type oaResponse struct {
	Ref     string               `yaml:"$ref"`
	Headers map[string]yaml.Node `yaml:"headers"`
	Content map[string]struct {
		Schema struct {
			Ref string `yaml:"$ref"`
		} `yaml:"schema"`
	} `yaml:"content"`
}

type oaOp struct {
	method, path string // path as documented, e.g. /api/remediations/{id}
	op           oaOperation
}

func (o oaOp) String() string { return o.method + " " + o.path }

var oaMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

const errorSchemaRef = "#/components/schemas/Error"

func loadOpenAPI(t *testing.T) (oaDoc, []oaOp) {
	t.Helper()
	raw, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc oaDoc
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	var ops []oaOp
	for path, item := range doc.Paths {
		for method, node := range item {
			if !slices.Contains(oaMethods, method) {
				continue // path-level summary, parameters, ...
			}
			var op oaOperation
			if err := node.Decode(&op); err != nil {
				t.Fatalf("%s %s: %v", strings.ToUpper(method), path, err)
			}
			ops = append(ops, oaOp{method: strings.ToUpper(method), path: path, op: op})
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].String() < ops[j].String() })
	return doc, ops
}

var oaPathParam = regexp.MustCompile(`\{([^}/]+)\}`)

// ginPath turns /api/remediations/{id} into /api/remediations/:id.
func ginPath(p string) string { return oaPathParam.ReplaceAllString(p, ":$1") }

// resolve follows a components.responses reference.
func (d oaDoc) resolve(r oaResponse) (oaResponse, bool) {
	if r.Ref == "" {
		return r, true
	}
	name, ok := strings.CutPrefix(r.Ref, "#/components/responses/")
	if !ok {
		return oaResponse{}, false
	}
	res, ok := d.Components.Responses[name]
	return res, ok && res.Ref == ""
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, ops := loadOpenAPI(t)
	if len(ops) == 0 {
		t.Fatal("openapi.yaml documents no operations")
	}

	t.Run("routes", func(t *testing.T) {
		engine, ok := newTestHandler(t, &fakeOrch{}).(*gin.Engine)
		if !ok {
			t.Fatal("NewHandler no longer returns a *gin.Engine; adapt this test")
		}
		documented := map[string]bool{}
		for _, o := range ops {
			documented[o.method+" "+ginPath(o.path)] = true
		}
		served := map[string]bool{}
		for _, r := range engine.Routes() {
			served[r.Method+" "+r.Path] = true
		}
		var undocumented, unserved []string
		for k := range served {
			if !documented[k] {
				undocumented = append(undocumented, k)
			}
		}
		for k := range documented {
			if !served[k] {
				unserved = append(unserved, k)
			}
		}
		sort.Strings(undocumented)
		sort.Strings(unserved)
		if len(undocumented) > 0 {
			t.Errorf("%d route(s) served but missing from openapi.yaml:\n\t%s", len(undocumented), strings.Join(undocumented, "\n\t"))
		}
		if len(unserved) > 0 {
			t.Errorf("%d operation(s) documented in openapi.yaml but not routed:\n\t%s", len(unserved), strings.Join(unserved, "\n\t"))
		}
	})

	t.Run("security and roles", func(t *testing.T) {
		for _, name := range []string{"bearerAuth", "apiKeyAuth"} {
			if _, ok := doc.Components.SecuritySchemes[name]; !ok {
				t.Errorf("components.securitySchemes lacks %s", name)
			}
		}
		known := []string{roleDeveloper, roleApprover, roleAdmin}
		for _, o := range ops {
			// The codec server authenticates like /api; its CORS preflight is public.
			authed := strings.HasPrefix(o.path, "/api/") || (strings.HasPrefix(o.path, "/codec/") && o.method != http.MethodOptions)
			if !authed {
				if o.op.Security == nil || len(*o.op.Security) != 0 {
					t.Errorf("%s: a public operation must say `security: []`", o)
				}
				continue
			}
			if o.op.Security == nil || len(*o.op.Security) == 0 {
				t.Errorf("%s: no security requirement", o)
			} else {
				var schemes []string
				for _, req := range *o.op.Security {
					for name := range req {
						schemes = append(schemes, name)
					}
				}
				sort.Strings(schemes)
				if !slices.Equal(schemes, []string{"apiKeyAuth", "bearerAuth"}) {
					t.Errorf("%s: security must accept bearerAuth or apiKeyAuth, got %v", o, schemes)
				}
			}
			if len(o.op.RequiredRoles) == 0 {
				t.Errorf("%s: no x-required-roles", o)
			}
			for _, r := range o.op.RequiredRoles {
				if !slices.Contains(known, r) {
					t.Errorf("%s: x-required-roles names unknown role %q", o, r)
				}
			}
			if o.op.RateLimit == "" {
				t.Errorf("%s: no x-rate-limit", o)
			}
		}
	})

	t.Run("roles and limits match the route table", func(t *testing.T) {
		byKey := map[string]oaOp{}
		for _, o := range ops {
			byKey[o.method+" "+ginPath(o.path)] = o
		}
		h := &handler{}
		for _, rt := range append(h.routeTable(), h.codecRouteTable()...) {
			o, ok := byKey[rt.method+" "+rt.path]
			if !ok {
				t.Errorf("%s %s is not documented", rt.method, rt.path)
				continue
			}
			if o.op.RateLimit != rt.rule {
				t.Errorf("%s %s: document says rate limit %q, the router applies %q", rt.method, rt.path, o.op.RateLimit, rt.rule)
			}
			want := slices.Clone(rt.roles)
			got := slices.Clone(o.op.RequiredRoles)
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(want, got) {
				t.Errorf("%s %s: document says roles %v, the router requires %v", rt.method, rt.path, got, want)
			}
		}
	})

	t.Run("error responses", func(t *testing.T) {
		exempt := map[string]bool{"/livez": true, "/readyz": true, "/metrics": true} // nothing in them can fail with a 4xx
		rules := []string{"generate", "approvals", "pr", "webhooks", "general"}
		for _, o := range ops {
			has4xxError := false
			for code, r := range o.op.Responses {
				res, ok := doc.resolve(r)
				if !ok {
					t.Errorf("%s %s: unresolvable response reference %q", o, code, r.Ref)
					continue
				}
				if !strings.HasPrefix(code, "4") && !strings.HasPrefix(code, "5") {
					continue
				}
				isError := res.Content["application/json"].Schema.Ref == errorSchemaRef
				if strings.HasPrefix(code, "4") && isError {
					has4xxError = true
				}
				if code != "503" && !isError { // /readyz answers 503 with its own body
					t.Errorf("%s %s: error response does not use the Error schema", o, code)
				}
			}
			if !exempt[o.path] && !has4xxError {
				t.Errorf("%s: no 4xx response with the Error schema", o)
			}
			tooMany, limited := o.op.Responses["429"]
			if (o.op.RateLimit != "") != limited {
				t.Errorf("%s: x-rate-limit %q and a 429 response must come together", o, o.op.RateLimit)
			}
			if o.op.RateLimit != "" && !slices.Contains(rules, o.op.RateLimit) {
				t.Errorf("%s: unknown x-rate-limit rule %q (want one of %v)", o, o.op.RateLimit, rules)
			}
			if limited {
				res, _ := doc.resolve(tooMany)
				for _, h := range []string{"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
					if _, ok := res.Headers[h]; !ok {
						t.Errorf("%s: 429 response does not document %s", o, h)
					}
				}
			}
		}
	})

	t.Run("references resolve", func(t *testing.T) {
		raw, err := os.ReadFile("openapi.yaml")
		if err != nil {
			t.Fatal(err)
		}
		var tree any
		if err := yaml.Unmarshal(raw, &tree); err != nil {
			t.Fatal(err)
		}
		var walk func(v any, at string)
		walk = func(v any, at string) {
			switch v := v.(type) {
			case map[string]any:
				for k, child := range v {
					if ref, ok := child.(string); k == "$ref" && ok {
						if _, err := lookupPointer(tree, ref); err != nil {
							t.Errorf("%s: $ref %q: %v", at, ref, err)
						}
						continue
					}
					walk(child, at+"/"+k)
				}
			case []any:
				for i, child := range v {
					walk(child, fmt.Sprintf("%s/%d", at, i))
				}
			}
		}
		walk(tree, "#")
	})
}

// lookupPointer resolves a local JSON pointer such as #/components/schemas/Error.
func lookupPointer(tree any, ref string) (any, error) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("only local references are used")
	}
	cur := tree
	for _, part := range strings.Split(rest, "/") {
		part = strings.NewReplacer("~1", "/", "~0", "~").Replace(part)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q is not inside an object", part)
		}
		if cur, ok = m[part]; !ok {
			return nil, fmt.Errorf("no %q", part)
		}
	}
	return cur, nil
}

func TestOpenAPIIsServed(t *testing.T) {
	want, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := do(t, newTestHandler(t, &fakeOrch{}), http.MethodGet, "/openapi.yaml", "", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi.yaml: want 200, got %d %s", rec.Code, rec.Body)
	}
	if mt, _, err := mime.ParseMediaType(rec.Header().Get("Content-Type")); err != nil || mt != "application/yaml" {
		t.Errorf("Content-Type: want application/yaml, got %q", rec.Header().Get("Content-Type"))
	}
	if !bytes.Equal(rec.Body.Bytes(), want) {
		t.Errorf("GET /openapi.yaml does not serve openapi.yaml (%d bytes, want %d)", rec.Body.Len(), len(want))
	}
}
