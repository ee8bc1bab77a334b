package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// readJSON reads the whole body under the cap, then decodes exactly one JSON
// object with unknown fields refused and nothing after it: a small valid
// object followed by junk must not pass.
func (h *handler) readJSON(c *gin.Context, dst any) error {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mt != "application/json" {
		return newError(http.StatusUnsupportedMediaType, "unsupported_media_type", "send Content-Type: application/json")
	}
	body, err := readRaw(c, h.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' {
		return newError(http.StatusBadRequest, "not_an_object", "the body must be one JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if strings.HasPrefix(err.Error(), "json: unknown field") {
			return &apiError{status: http.StatusUnprocessableEntity, code: "unknown_field", message: err.Error()}
		}
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return &apiError{status: http.StatusUnprocessableEntity, code: "validation_failed",
				message: "field " + typeErr.Field + " has the wrong type"}
		}
		return newError(http.StatusBadRequest, "malformed_json", "the body is not valid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return newError(http.StatusBadRequest, "trailing_data", "the body has data after the JSON object")
	}
	return nil
}
