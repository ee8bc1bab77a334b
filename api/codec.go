package api

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"remediator/internal/auth"
	"remediator/internal/errcode"
)

// CodecOptions configure the codec endpoint: Temporal's remote codec
// protocol (POST /codec/decode and /codec/encode, a JSON {"payloads": […]}
// both ways), which lets the Temporal Web UI and CLI show the payloads the
// service encrypts (log excerpts, diffs, comments).
type CodecOptions struct {
	// Handler speaks the protocol (converter.NewPayloadCodecHTTPHandler over
	// the service's codec); nil: the codec is off and both routes answer 404.
	Handler http.Handler
	// CORSOrigins may call the routes from a browser (the Web UI, with its
	// user's token): they get the CORS headers and their preflight is
	// answered; other origins are refused.
	CORSOrigins []string
}

// codecMaxBodyBytes bounds one codec request: a batch of payloads, each up
// to Temporal's 2 MB limit, base64 in JSON.
const codecMaxBodyBytes = 8 << 20

// codecRouteTable is the codec endpoint's rows (outside /api, hence registered
// by codecRoutes with its own authentication): decoding reveals log
// excerpts, diffs and comments, so both directions are admin only.
func (h *handler) codecRouteTable() []route {
	return []route{
		{"POST", "/codec/decode", ruleGeneral, []string{roleAdmin}, h.codec},
		{"POST", "/codec/encode", ruleGeneral, []string{roleAdmin}, h.codec},
	}
}

// codecRoutes registers the codec endpoint: CORS first (the preflight,
// OPTIONS, is answered for allowed origins without credentials, as browsers
// send it), then the API's bearer authentication, the rate limit and the
// admin role.
func (h *handler) codecRoutes(r *gin.Engine) {
	cors := h.codecCORS()
	for _, rt := range h.codecRouteTable() {
		r.OPTIONS(rt.path, cors)
		// Decoding changes nothing: like a read, it passes while the
		// rate-limit store is down (an outage must not blind operators).
		r.Handle(rt.method, rt.path, cors, h.codecAuthenticate(), h.limit(rt.rule, false), requireRole(h.logger, rt.roles...), rt.handle)
	}
}

// codecAuthenticate is authenticate, except that a request carrying no
// credential at all is refused without counting against its client IP's
// failed-authentication budget: a Web UI without login calls the endpoint
// for every page it shows, and must not lock its users' address out of
// /api. A wrong credential counts as everywhere else.
func (h *handler) codecAuthenticate() gin.HandlerFunc {
	authenticate := h.authenticate()
	return func(c *gin.Context) {
		if c.GetHeader("Authorization") == "" && c.GetHeader(auth.APIKeyHeader) == "" {
			writeError(c, h.logger, newError(errcode.MissingCredentials, "authentication is required"))
			return
		}
		authenticate(c)
	}
}

// codecCORS adds the CORS headers for an allowed Origin and answers the
// preflight: 204 with the allowed method and headers for an allowed
// origin, 403 for any other.
func (h *handler) codecCORS() gin.HandlerFunc {
	return func(c *gin.Context) {
		hdr := c.Writer.Header()
		hdr.Add("Vary", "Origin")
		origin := c.GetHeader("Origin")
		allowed := origin != "" && slices.Contains(h.opts.Codec.CORSOrigins, strings.ToLower(origin))
		if allowed {
			hdr.Set("Access-Control-Allow-Origin", origin)
			hdr.Set("Access-Control-Allow-Credentials", "true")
		}
		if c.Request.Method != http.MethodOptions {
			c.Next()
			return
		}
		if !allowed {
			writeError(c, h.logger, newError(errcode.Forbidden, "this origin may not call the codec endpoint (REMEDIATOR_CODEC_CORS_ORIGINS)"))
			return
		}
		hdr.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		hdr.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Namespace")
		hdr.Set("Access-Control-Max-Age", "600")
		c.AbortWithStatus(http.StatusNoContent)
	}
}

// codec checks the body, hands it to the protocol handler and answers its
// result; the handler's plain-text refusals (a payload that does not
// decrypt, an unknown key id, not a payload list) become validation_failed
// in the API's error shape.
func (h *handler) codec(c *gin.Context) {
	if h.opts.Codec.Handler == nil {
		writeError(c, h.logger, newError(errcode.NotFound, "the payload codec is off (REMEDIATOR_CODEC=off): payloads are stored in clear"))
		return
	}
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mt != "application/json" {
		writeError(c, h.logger, newError(errcode.UnsupportedMediaType, "send Content-Type: application/json"))
		return
	}
	body, err := readRaw(c, codecMaxBodyBytes)
	if err != nil {
		writeError(c, h.logger, err)
		return
	}
	switch trimmed := bytes.TrimSpace(body); {
	case len(trimmed) == 0:
		writeError(c, h.logger, newError(errcode.EmptyBody, `the body is empty; send {"payloads": […]}`))
		return
	case trimmed[0] != '{':
		writeError(c, h.logger, newError(errcode.NotAnObject, `the body must be one JSON object: {"payloads": […]}`))
		return
	case !json.Valid(trimmed):
		writeError(c, h.logger, newError(errcode.MalformedJSON, "the body is not valid JSON"))
		return
	}
	req := c.Request.Clone(c.Request.Context())
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	rec := &bufferedResponse{header: http.Header{}}
	h.opts.Codec.Handler.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status != http.StatusOK {
		writeError(c, h.logger, &apiError{code: errcode.ValidationFailed, message: "the payloads could not be " + strings.TrimPrefix(c.FullPath(), "/codec/") + "d",
			details: map[string]string{"payloads": strings.TrimSpace(rec.body.String())}})
		return
	}
	c.Data(http.StatusOK, "application/json", rec.body.Bytes())
}

// bufferedResponse holds what the protocol handler answers until it is
// known to be a success.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
