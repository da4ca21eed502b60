package api

import (
	_ "embed" // the OpenAPI document is compiled in

	"github.com/valyala/fasthttp"
)

// The OpenAPI document of this API: the source of truth for its shapes
// (docs/API.md keeps the prose). openapi.json is generated from
// openapi.yaml (go test ./api -run OpenAPIJSON -update-openapi) so that the
// binary needs no YAML library; a test fails when the two differ.
var (
	//go:embed openapi.yaml
	openAPIYAML []byte
	//go:embed openapi.json
	openAPIJSON []byte
)

const (
	openAPIYAMLPath = "/openapi.yaml"
	openAPIJSONPath = "/openapi.json"
)

// OpenAPIYAML returns the OpenAPI document the server was built with, as
// YAML. The caller must not modify the returned bytes.
func OpenAPIYAML() []byte { return openAPIYAML }

// serveOpenAPI answers GET /openapi.yaml and /openapi.json.
func serveOpenAPI(ctx *fasthttp.RequestCtx, path []byte) {
	if string(path) == openAPIJSONPath {
		ctx.SetContentType("application/json")
		ctx.SetBody(openAPIJSON)
		return
	}
	ctx.SetContentType("application/yaml")
	ctx.SetBody(openAPIYAML)
}

// endpointPaths are the paths of each endpoint, as the OpenAPI document
// writes them. The router matches paths by endpointOf; this table lets the
// contract test walk the server's routes against the document's paths and
// back, so an endpoint added without a line here fails that test.
var endpointPaths = [numEndpoints][]string{
	epPicks:        {"/v1/picks"},
	epEvents:       {"/v1/events"},
	epProducts:     {"/v1/products"},
	epInventory:    {"/v1/inventory"},
	epIdentify:     {"/v1/identify"},
	epLocations:    {"/v1/locations"},
	epCustomer:     {"/v1/customers/{id}"},
	epHealth:       {"/healthz"},
	epMetrics:      {"/metrics"},
	epExclusions:   {"/v1/exclusions"},
	epScreen:       {"/screen/{store}", "/screen/{store}/", "/screen/{store}/events", "/screen/{store}/picks.json"},
	epAudiences:    {"/v1/audiences/{name}"},
	epFeeds:        {"/v1/feeds/products"},
	epAdminCompact: {"/v1/admin/compact"},
	epImages:       {"/img/{product}.svg"},
	epExplore:      {"/explore", "/explore/", "/explore/customer.json", "/explore/product.json", "/explore/stats.json"},
	epOpenAPI:      {openAPIYAMLPath, openAPIJSONPath},
}
