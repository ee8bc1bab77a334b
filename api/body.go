package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"strings"

	"github.com/gin-gonic/gin"

	"remediator/internal/errcode"
)

// readRaw reads the raw body under max: signatures are computed over the
// exact bytes, so nothing may decode or rewrite them first.
func readRaw(c *gin.Context, max int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, max+1))
	if err != nil {
		return nil, newError(errcode.UnreadableBody, "the request body could not be read")
	}
	if int64(len(body)) > max {
		return nil, newError(errcode.BodyTooLarge, "the request body is larger than allowed")
	}
	return body, nil
}

// readJSON reads the whole body under the cap, then decodes exactly one JSON
// object with unknown fields refused and nothing after it: a small valid
// object followed by junk must not pass. Field values must be valid UTF-8
// (checked on the raw bytes, which the decoder would silently repair).
func (h *handler) readJSON(c *gin.Context, dst any) error {
	return h.decodeBody(c, dst, true)
}

// readJSONLoose is readJSON for other systems' payloads (CI and alerting
// webhooks), whose fields are theirs to add: unknown fields are allowed.
func (h *handler) readJSONLoose(c *gin.Context, dst any) error {
	return h.decodeBody(c, dst, false)
}

func (h *handler) decodeBody(c *gin.Context, dst any, strict bool) error {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mt != "application/json" {
		return newError(errcode.UnsupportedMediaType, "send Content-Type: application/json")
	}
	body, err := readRaw(c, h.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	switch trimmed := bytes.TrimSpace(body); {
	case len(trimmed) == 0:
		return newError(errcode.EmptyBody, "the body is empty; send one JSON object")
	case trimmed[0] != '{':
		return newError(errcode.NotAnObject, "the body must be one JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(dst); err != nil {
		if strings.HasPrefix(err.Error(), "json: unknown field") {
			return newError(errcode.UnknownField, err.Error())
		}
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return newError(errcode.ValidationFailed, "field "+typeErr.Field+" has the wrong type")
		}
		return newError(errcode.MalformedJSON, "the body is not valid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return newError(errcode.TrailingData, "the body has data after the JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return newError(errcode.MalformedJSON, "the body is not valid JSON")
	}
	problems := map[string]string{}
	for name, raw := range fields {
		if !validJSONText(raw) {
			problems[name] = "must be valid UTF-8 (no invalid bytes or unpaired surrogate escapes)"
		}
	}
	if len(problems) > 0 {
		return validationError(problems)
	}
	return nil
}
