package api

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"go.temporal.io/sdk/converter"

	"remediator/internal/codec"
	"remediator/internal/ratelimit"
)

const uiOrigin = "http://127.0.0.1:8233"

func codecTestHandler(t *testing.T, ring *codec.KeyRing) http.Handler {
	t.Helper()
	opts := Options{Auth: testAuth(t), MaxBodyBytes: 4096, PublicURL: "http://x", Repos: testRepos(),
		Codec: CodecOptions{CORSOrigins: []string{uiOrigin}}}
	if ring != nil {
		opts.Codec.Handler = codec.HTTPHandler(ring)
	}
	return NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), &fakeOrch{}, opts)
}

func testRing(t *testing.T, id string) *codec.KeyRing {
	t.Helper()
	k, err := codec.GenerateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	r, err := codec.NewKeyRing(k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type wirePayloads struct {
	Payloads []struct {
		Metadata map[string]string `json:"metadata"`
		Data     string            `json:"data"`
	} `json:"payloads"`
}

func TestCodecEndpoint(t *testing.T) {
	ring := testRing(t, "k1")
	h := codecTestHandler(t, ring)
	const secret = "AKIAABCDEFGHIJKLMNOP in the log excerpt"
	p, err := codec.DataConverter(ring).ToPayload(secret)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := converter.GetDefaultDataConverter().ToPayload("written before the codec")
	b64 := base64.StdEncoding.EncodeToString
	body := `{"payloads":[{"metadata":{"encoding":"` + b64(p.Metadata["encoding"]) + `","encryption-key-id":"` + b64(p.Metadata["encryption-key-id"]) +
		`"},"data":"` + b64(p.Data) + `"},{"metadata":{"encoding":"` + b64(plain.Metadata["encoding"]) + `"},"data":"` + b64(plain.Data) + `"}]}`

	// Only an admin decodes: decoding reveals log excerpts and diffs.
	for tok, want := range map[string]int{"": 401, devTok: 403, approverTok: 403, adminTok: 200} {
		rec, eb := do(t, h, "POST", "/codec/decode", tok, body)
		if rec.Code != want {
			t.Fatalf("decode with %q: %d %s", tok, rec.Code, rec.Body)
		}
		if want != 200 {
			if eb.Error == "" || strings.Contains(rec.Body.String(), "AKIA") {
				t.Fatalf("refusal: %s", rec.Body)
			}
			continue
		}
		var out wirePayloads
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Payloads) != 2 {
			t.Fatalf("decode answer: %s %v", rec.Body, err)
		}
		data, _ := base64.StdEncoding.DecodeString(out.Payloads[0].Data)
		enc, _ := base64.StdEncoding.DecodeString(out.Payloads[0].Metadata["encoding"])
		if string(data) != `"`+secret+`"` || string(enc) != "json/plain" {
			t.Fatalf("decoded: %q %q", data, enc)
		}
		if data, _ := base64.StdEncoding.DecodeString(out.Payloads[1].Data); string(data) != `"written before the codec"` {
			t.Fatalf("a plaintext payload must pass through: %q", data)
		}
	}

	// Encode (admin too), then decode what it returned.
	plainBody := `{"payloads":[{"metadata":{"encoding":"` + b64([]byte("json/plain")) + `"},"data":"` + b64([]byte(`"x"`)) + `"}]}`
	if rec, _ := do(t, h, "POST", "/codec/encode", approverTok, plainBody); rec.Code != 403 {
		t.Fatalf("encode as approver: %d", rec.Code)
	}
	rec, _ := do(t, h, "POST", "/codec/encode", adminTok, plainBody)
	var enc wirePayloads
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &enc) != nil || len(enc.Payloads) != 1 {
		t.Fatalf("encode: %d %s", rec.Code, rec.Body)
	}
	if e, _ := base64.StdEncoding.DecodeString(enc.Payloads[0].Metadata["encoding"]); string(e) != codec.EncodingEncrypted {
		t.Fatalf("encode did not encrypt: %s", rec.Body)
	}
	if rec, _ := do(t, h, "POST", "/codec/decode", adminTok, rec.Body.String()); rec.Code != 200 || !strings.Contains(rec.Body.String(), b64([]byte(`"x"`))) {
		t.Fatalf("decode of encode: %d %s", rec.Code, rec.Body)
	}

	// A payload of another key: 422 naming the key id; never the data.
	other, _ := codec.DataConverter(testRing(t, "k-other")).ToPayload(secret)
	foreign := `{"payloads":[{"metadata":{"encoding":"` + b64(other.Metadata["encoding"]) + `","encryption-key-id":"` + b64(other.Metadata["encryption-key-id"]) +
		`"},"data":"` + b64(other.Data) + `"}]}`
	rec, eb := do(t, h, "POST", "/codec/decode", adminTok, foreign)
	if rec.Code != 422 || eb.Error != "validation_failed" || !strings.Contains(rec.Body.String(), "k-other") {
		t.Fatalf("unknown key id: %d %s", rec.Code, rec.Body)
	}
	for name, c := range map[string]struct {
		body, ctype string
		status      int
		code        string
	}{
		"not json":      {"{", "application/json", 400, "malformed_json"},
		"not an object": {"[]", "application/json", 400, "not_an_object"},
		"empty":         {"", "application/json", 400, "empty_body"},
		"form":          {body, "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
		"not payloads":  {`{"payloads":"x"}`, "application/json", 422, "validation_failed"},
	} {
		rec, eb := do(t, h, "POST", "/codec/decode", adminTok, c.body, "Content-Type", c.ctype)
		if rec.Code != c.status || eb.Error != c.code {
			t.Errorf("%s: %d %s", name, rec.Code, rec.Body)
		}
	}
	big := `{"payloads":[{"data":"` + strings.Repeat("A", codecMaxBodyBytes) + `"}]}`
	if rec, eb := do(t, h, "POST", "/codec/decode", adminTok, big); rec.Code != 413 || eb.Error != "body_too_large" {
		t.Fatalf("over 8 MiB: %d %s", rec.Code, eb.Error)
	}
	if rec, eb := do(t, h, "GET", "/codec/decode", adminTok, ""); rec.Code != 405 || eb.Error != "method_not_allowed" {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}

	// Codec off: the routes exist and say so.
	off := codecTestHandler(t, nil)
	if rec, eb := do(t, off, "POST", "/codec/decode", adminTok, body); rec.Code != 404 || !strings.Contains(eb.Message, "REMEDIATOR_CODEC=off") {
		t.Fatalf("codec off: %d %s", rec.Code, rec.Body)
	}
}

func TestCodecCORS(t *testing.T) {
	h := codecTestHandler(t, testRing(t, "k1"))
	// The browser's preflight carries no credentials: answered for the UI's origin.
	rec, _ := do(t, h, "OPTIONS", "/codec/decode", "", "", "Origin", uiOrigin,
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type,x-namespace")
	hd := rec.Header()
	if rec.Code != 204 || hd.Get("Access-Control-Allow-Origin") != uiOrigin || hd.Get("Access-Control-Allow-Credentials") != "true" ||
		hd.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type, X-Namespace" || !strings.Contains(hd.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight from the UI: %d %v", rec.Code, hd)
	}
	for _, origin := range []string{"https://evil.example", ""} {
		rec, eb := do(t, h, "OPTIONS", "/codec/encode", "", "", "Origin", origin)
		if rec.Code != 403 || eb.Error != "forbidden" || rec.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("preflight from %q: %d %v", origin, rec.Code, rec.Header())
		}
	}
	// The real request: the UI's origin can read the answer, refusals included.
	for tok, want := range map[string]int{adminTok: 200, devTok: 403, "": 401} {
		rec, _ := do(t, h, "POST", "/codec/decode", tok, `{"payloads":[]}`, "Origin", uiOrigin, "X-Namespace", "default")
		if rec.Code != want || rec.Header().Get("Access-Control-Allow-Origin") != uiOrigin {
			t.Fatalf("POST from the UI with %q: %d %v", tok, rec.Code, rec.Header())
		}
	}
	// Another origin gets no CORS headers (the browser hides the answer), and
	// still needs an admin token.
	rec, _ = do(t, h, "POST", "/codec/decode", adminTok, `{"payloads":[]}`, "Origin", "https://evil.example")
	if rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a foreign origin got CORS headers: %v", rec.Header())
	}
}

// A Web UI without login calls the codec endpoint with no credential on
// every page: that never spends its address's failed-authentication budget,
// which a wrong credential does, as on /api.
func TestCodecCallsWithoutCredentialsDoNotLockTheAddressOut(t *testing.T) {
	store := memStore(t)
	lim, err := ratelimit.New(store, rules(t, "auth_failures=2-M"), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), &fakeOrch{}, Options{Auth: testAuth(t), Limiter: lim, LimitStore: store,
		MaxBodyBytes: 4096, Repos: testRepos(), Codec: CodecOptions{Handler: codec.HTTPHandler(testRing(t, "k1")), CORSOrigins: []string{uiOrigin}}})
	for i := range 10 {
		if rec, eb := do(t, h, "POST", "/codec/decode", "", `{"payloads":[]}`, "Origin", uiOrigin); rec.Code != 401 || eb.Error != "missing_credentials" {
			t.Fatalf("call %d without a credential: %d %s", i, rec.Code, rec.Body)
		}
	}
	if rec, _ := do(t, h, "GET", "/api/remediations", approverTok, ""); rec.Code != 200 {
		t.Fatalf("the address is locked out of /api: %d", rec.Code)
	}
	for range 2 {
		do(t, h, "POST", "/codec/decode", badTok, `{"payloads":[]}`)
	}
	if rec, eb := do(t, h, "POST", "/codec/decode", adminTok, `{"payloads":[]}`); rec.Code != 429 || eb.Error != "rate_limited" {
		t.Fatalf("wrong tokens on /codec count like on /api: %d %s", rec.Code, rec.Body)
	}
}
