package api

import "github.com/valyala/fasthttp"

// Test hooks for package api_test. They live in a _test file so that the
// binary carries none of them.

// WrapHandlers lets the contract test see every request the server answers:
// wrap receives the server's handler, wrapErr its handler for requests it
// cannot read (answered before routing). Call it before Start.
func WrapHandlers(s *Server, wrap func(fasthttp.RequestHandler) fasthttp.RequestHandler, wrapErr func(func(*fasthttp.RequestCtx, error)) func(*fasthttp.RequestCtx, error)) {
	s.srv.Handler = wrap(s.srv.Handler)
	s.srv.ErrorHandler = wrapErr(s.srv.ErrorHandler)
}

// Routes returns each endpoint's label (as in the metrics) and the paths it
// serves, as the OpenAPI document writes them; "other" is left out.
func Routes() map[string][]string {
	m := make(map[string][]string)
	for ep := epOther + 1; ep < numEndpoints; ep++ {
		m[endpointNames[ep]] = endpointPaths[ep]
	}
	return m
}

// EndpointOf returns the label of the endpoint the router sends path to
// ("other": none).
func EndpointOf(path string) string { return endpointNames[endpointOf([]byte(path))] }
