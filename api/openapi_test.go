package api_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/omnipick/omnipick/api"
	"go.yaml.in/yaml/v4"
)

var updateOpenAPI = flag.Bool("update-openapi", false, "rewrite api/openapi.json from api/openapi.yaml")

// TestOpenAPIDocumentIsValid is the linter: kin-openapi's loader
// validation of the whole document, examples included.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	if _, err := loadContract(); err != nil {
		t.Fatal(err)
	}
}

// openAPIAsJSON converts the YAML document to indented JSON.
func openAPIAsJSON(t *testing.T) []byte {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(api.OpenAPIYAML(), &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestOpenAPIJSONIsCurrent keeps the embedded openapi.json the same
// document as openapi.yaml; -update-openapi rewrites it.
func TestOpenAPIJSONIsCurrent(t *testing.T) {
	want := openAPIAsJSON(t)
	if *updateOpenAPI {
		if err := os.WriteFile("openapi.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("api/openapi.json is not api/openapi.yaml: run go test ./api -run OpenAPIJSON -update-openapi")
	}
}

// TestOpenAPIServed: the document is served, with the same key rules as
// the other reads.
func TestOpenAPIServed(t *testing.T) {
	const readKey = "openapi-read-key-0123456789abcdef"
	base := startServer(t, api.Options{WriteKeys: []string{"openapi-write-key-0123456789abcdef"}, ReadKeys: []string{readKey}})
	for _, tc := range []struct {
		path, ctype string
		want        []byte
	}{
		{"/openapi.yaml", "application/yaml", api.OpenAPIYAML()},
		{"/openapi.json", "application/json", openAPIAsJSON(t)},
	} {
		if status, _, _ := request(t, base, "GET", tc.path, nil); status != http.StatusUnauthorized {
			t.Fatalf("%s without a key: %d, want 401", tc.path, status)
		}
		status, h, body := request(t, base, "GET", tc.path, nil, "Authorization: Bearer "+readKey)
		if status != 200 || h.Get("Content-Type") != tc.ctype || !bytes.Equal(body, tc.want) {
			t.Fatalf("%s: %d %s, %d bytes", tc.path, status, h.Get("Content-Type"), len(body))
		}
	}
}

// samplePath fills a path template's parameters with "x".
func samplePath(p string) string {
	return regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(p, "x")
}

// TestRoutesMatchTheDocument walks the server's endpoints against the
// document's paths, and back: every endpoint's paths are in the document
// and route to it; every path of the document routes to an endpoint; and
// on a live server each path answers exactly the document's methods (HEAD
// wherever GET), every other method 405.
func TestRoutesMatchTheDocument(t *testing.T) {
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	docPaths := c.doc.Paths.Map()
	routed := map[string]string{} // document path -> endpoint
	for _, ep := range slices.Sorted(maps.Keys(api.Routes())) {
		paths := api.Routes()[ep]
		if len(paths) == 0 {
			t.Errorf("endpoint %q has no path in api/openapi.go's endpointPaths", ep)
		}
		for _, p := range paths {
			if docPaths[p] == nil {
				t.Errorf("endpoint %q serves %s, which api/openapi.yaml does not list", ep, p)
			}
			if got := api.EndpointOf(samplePath(p)); got != ep {
				t.Errorf("%s routes to endpoint %q, endpointPaths says %q", samplePath(p), got, ep)
			}
			routed[p] = ep
		}
	}
	for _, p := range slices.Sorted(maps.Keys(docPaths)) {
		if routed[p] == "" {
			t.Errorf("api/openapi.yaml lists %s, which no endpoint serves (routes to %q)", p, api.EndpointOf(samplePath(p)))
		}
	}

	const writeKey = "routes-write-key-0123456789abcdef"
	base := startServer(t, api.Options{WriteKeys: []string{writeKey}})
	for _, p := range slices.Sorted(maps.Keys(docPaths)) {
		item := docPaths[p]
		var documented, served []string
		for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
			op := item.GetOperation(m)
			if m == "HEAD" && op == nil {
				op = item.GetOperation("GET")
			}
			if op != nil {
				documented = append(documented, m)
			}
			status, _, body := request(t, base, m, samplePath(p), nil, "Authorization: Bearer "+writeKey, routeWalkHeader+": 1")
			if status != http.StatusMethodNotAllowed && !(status == http.StatusNotFound && strings.Contains(string(body), "no such endpoint")) {
				served = append(served, m)
			}
		}
		if !slices.Equal(documented, served) {
			t.Errorf("%s: the server answers %v, the document lists %v", p, served, documented)
		}
	}
}

// TestExplorerAtTrailingSlash: /explore/ serves the explorer's page, as the
// document says.
func TestExplorerAtTrailingSlash(t *testing.T) {
	base := startServer(t, api.Options{})
	for _, path := range []string{"/explore", "/explore/"} {
		status, h, body := request(t, base, "GET", path, nil)
		if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !bytes.Contains(body, []byte("<html")) {
			t.Fatalf("%s: %d %s %.200s", path, status, h.Get("Content-Type"), body)
		}
	}
}
