package api

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPIDoc is the OpenAPI 3 description of the whole HTTP surface;
// openapi_test.go keeps it in step with the routes.
//
//go:embed openapi.yaml
var openAPIDoc []byte

// serveOpenAPI serves the document (Content-Type application/yaml).
func (h *handler) serveOpenAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/yaml", openAPIDoc)
}
