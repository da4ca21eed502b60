package api_test

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
)

// TestProductImages: every product has a picture at /img/{id}.svg, drawn
// from its category, colour and title, that parses as XML, escapes the
// title, is fetched without a key, and caches by ETag; HTML fragments and
// feeds link it absolutely.
func TestProductImages(t *testing.T) {
	e := engine.New(engine.Options{})
	base := startServer(t, api.Options{Engine: e, WriteKeys: []string{writeKey1}, ReadKeys: []string{readKey1}})
	auth := "Authorization: Bearer " + writeKey1
	for _, line := range []string{
		`{"id":"HAT-1","title":"Bobble <hat> & \"friends\"","price":19,"currency":"EUR","category":"women/accessories/hats","brand":"Alpen","image":"/img/HAT-1.svg","variants":[{"sku":"HAT-1"}]}`,
		`{"id":"LG-1","title":"Studio leggings with a rather long name that wraps","price":39,"category":"women/leggings","image":"/img/LG-1.svg","variants":[{"sku":"LG-1-8","size":"8"}],"size_group":"women-numeric"}`,
		`{"id":"ODD 1/x","title":"Something","price":5,"category":"misc","variants":[{"sku":"ODD"}]}`,
	} {
		if st, _, b := request(t, base, "POST", "/v1/products", []byte(line), auth); st != 200 {
			t.Fatalf("%d %s", st, b)
		}
	}
	request(t, base, "POST", "/v1/inventory", []byte(`[{"sku":"HAT-1","location":"online","quantity":3},{"sku":"LG-1-8","location":"online","quantity":3}]`), auth)
	request(t, base, "POST", "/v1/events", []byte(`{"type":"purchase","customer":"x","product":"HAT-1"}`), auth)

	for _, tc := range []struct {
		path   string
		status int
		has    []string
	}{
		{"/img/HAT-1.svg", 200, []string{"Bobble &lt;hat&gt; &amp; &#34;friends&#34;", "ALPEN", "<path"}},
		{"/img/LG-1.svg", 200, []string{"Studio leggings with a", "<path"}},
		{api.ImagePath("ODD 1/x"), 200, []string{"Something"}},
		{"/img/NOPE.svg", 404, nil},
		{"/img/HAT-1.png", 404, nil},
	} {
		st, h, body := request(t, base, "GET", tc.path, nil) // no key: pictures are open
		if st != tc.status {
			t.Errorf("GET %s: %d %s, want %d", tc.path, st, body, tc.status)
			continue
		}
		if st != 200 {
			continue
		}
		if ct := h.Get("Content-Type"); ct != "image/svg+xml" {
			t.Errorf("GET %s: Content-Type %q", tc.path, ct)
		}
		if !validXML(string(body)) {
			t.Errorf("GET %s: not well-formed XML:\n%s", tc.path, body)
		}
		for _, s := range tc.has {
			if !strings.Contains(string(body), s) && !strings.Contains(string(body), strings.ReplaceAll(s, "&#34;", "&quot;")) {
				t.Errorf("GET %s lacks %q:\n%s", tc.path, s, body)
			}
		}
		if st, _, _ := request(t, base, "GET", tc.path, nil, "If-None-Match: "+h.Get("ETag")); st != 304 {
			t.Errorf("GET %s with its ETag: %d, want 304", tc.path, st)
		}
	}
	// Different categories draw different silhouettes.
	_, _, hat := request(t, base, "GET", "/img/HAT-1.svg", nil)
	_, _, lg := request(t, base, "GET", "/img/LG-1.svg", nil)
	if pathsOf(string(hat)) == pathsOf(string(lg)) {
		t.Error("a hat and leggings are drawn the same")
	}

	// Links relative to the server are absolute where they are read
	// elsewhere: the HTML fragment and both feeds.
	host := strings.TrimPrefix(base, "http://")
	_, _, frag := request(t, base, "GET", "/v1/picks?customer=y&channel=email&format=html", nil, auth)
	if !strings.Contains(string(frag), `src="http://`+host+`/img/HAT-1.svg"`) {
		t.Errorf("the HTML fragment does not link the picture absolutely:\n%s", frag)
	}
	_, _, rss := request(t, base, "GET", "/v1/feeds/products?format=google", nil, auth)
	if !strings.Contains(string(rss), "<g:image_link>http://"+host+"/img/HAT-1.svg</g:image_link>") {
		t.Errorf("the Google feed does not link the picture absolutely:\n%s", rss)
	}
	_, _, csv := request(t, base, "GET", "/v1/feeds/products?format=meta", nil, auth)
	if !strings.Contains(string(csv), "http://"+host+"/img/LG-1.svg") {
		t.Errorf("the Meta feed does not link the picture absolutely:\n%s", csv)
	}
}

func validXML(s string) bool {
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
}

func pathsOf(svg string) string {
	var out []string
	for _, part := range strings.Split(svg, `<path d="`)[1:] {
		out = append(out, part[:strings.IndexByte(part, '"')])
	}
	return strings.Join(out, "|")
}
