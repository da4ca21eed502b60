package api

import (
	"html"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/omnipick/omnipick/index"
	"github.com/valyala/fasthttp"
)

// Product pictures served by the binary itself:
//
//	GET /img/{product}.svg
//
// an SVG drawn from the product's category (the silhouette), colour and
// title, so that the demo's kiosk, HTML fragments and feeds show real
// pictures on a machine with no internet. The demo's products link to
// these (image "/img/P00001.svg"); any catalog may. The URL is stable: the
// picture changes only when the product does.
//
// Pictures are open like /healthz: email clients, ad platforms' crawlers
// and kiosks fetch them without a key, and they show only what a feed
// shows anyway (title, brand, category).

const imagePrefix = "/img/"

// imageSuffix ends every picture's path.
const imageSuffix = ".svg"

// ImagePath is the path of a product's generated picture, for a product's
// "image" field. The id is escaped as a URL path segment.
func ImagePath(product string) string {
	return imagePrefix + pathEscape(product) + imageSuffix
}

// pathEscape escapes s as one path segment.
func pathEscape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b = append(b, c)
			continue
		}
		b = append(b, '%', "0123456789ABCDEF"[c>>4], "0123456789ABCDEF"[c&15])
	}
	return string(b)
}

func (s *Server) handleImage(ctx *fasthttp.RequestCtx, rest []byte) {
	id, ok := strings.CutSuffix(string(rest), imageSuffix)
	if !ok || id == "" || len(id) > maxIDBytes {
		writeError(ctx, fasthttp.StatusNotFound, "no such picture: pictures are /img/{product}.svg", "")
		return
	}
	it, ok := s.opts.Engine.Product(id)
	if !ok {
		writeError(ctx, fasthttp.StatusNotFound, "unknown product", "product")
		return
	}
	body := appendProductSVG(nil, it)
	etag := `"` + strconv.FormatUint(xxhash.Sum64(body), 36) + `"`
	h := &ctx.Response.Header
	h.Set("ETag", etag)
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("X-Content-Type-Options", "nosniff")
	// An SVG opened on its own is a document: it may run nothing.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	ctx.SetContentType("image/svg+xml")
	if string(ctx.Request.Header.Peek("If-None-Match")) == etag {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	ctx.SetBody(body)
}

// A silhouette is drawn in a 300x400 box: the shape in the product's
// colour, outlined a shade darker.
type silhouette struct {
	words []string // category segments it draws
	paths []string // SVG path data, filled
}

// silhouettes are tried in order against the category's segments, the
// leaf first; the last is the fallback (a price tag).
var silhouettes = []silhouette{
	{[]string{"hats", "caps", "beanies"}, []string{
		"M78 235 Q78 128 150 122 Q222 128 222 235 Z",
		"M72 222 H228 V262 H72 Z",
		"M150 78 m-24 0 a24 24 0 1 0 48 0 a24 24 0 1 0 -48 0 Z"}},
	{[]string{"gloves", "mittens"}, []string{
		"M112 262 V146 Q112 98 152 98 Q192 98 192 146 V262 Z",
		"M114 196 Q76 188 80 156 Q88 136 114 160 Z",
		"M106 252 H198 V292 H106 Z"}},
	{[]string{"scarves", "scarfs"}, []string{
		"M92 70 H208 V116 H176 L184 300 H142 L134 116 H92 Z",
		"M142 300 V318 M152 300 V318 M162 300 V318 M172 300 V318 M182 300 V318"}},
	{[]string{"socks"}, []string{
		"M122 66 H178 V208 L222 250 Q238 280 206 292 L138 258 Q122 248 122 226 Z"}},
	{[]string{"belts"}, []string{
		"M36 180 H264 V216 H36 Z",
		"M70 170 H110 V226 H70 Z M80 182 V214 H100 V182 Z"}},
	{[]string{"bags", "backpacks"}, []string{
		"M80 140 H220 L232 292 H68 Z",
		"M116 142 Q116 86 150 86 Q184 86 184 142 H172 Q172 100 150 100 Q128 100 128 142 Z"}},
	{[]string{"boots"}, []string{
		"M104 70 H168 V214 L232 236 Q252 254 238 282 H104 Z"}},
	{[]string{"shoes", "sneakers", "sandals"}, []string{
		"M56 236 Q64 184 122 176 L156 204 L224 214 Q252 224 246 266 H56 Z",
		"M56 250 H246 V270 H56 Z"}},
	{[]string{"dresses"}, []string{
		"M124 56 H176 L172 124 L222 300 H78 L128 124 Z",
		"M128 56 L122 36 M172 56 L178 36"}},
	{[]string{"skirts"}, []string{
		"M104 100 H196 L232 280 H68 Z"}},
	{[]string{"shorts"}, []string{
		"M96 80 H204 L216 220 H162 L150 140 L138 220 H84 Z"}},
	{[]string{"leggings", "trousers", "jeans", "chinos", "pants", "joggers"}, []string{
		"M102 56 H198 L208 316 H164 L150 128 L136 316 H92 Z"}},
	{[]string{"coats", "jackets", "parkas"}, []string{
		"M104 62 L128 52 L150 84 L172 52 L196 62 L238 232 L212 240 L196 130 L198 318 H102 L104 130 L88 240 L62 232 Z",
		"M150 84 V318"}},
	{[]string{"sweaters", "cardigans", "knitwear", "hoodies", "sweatshirts"}, []string{
		"M102 70 L128 58 Q150 80 172 58 L198 70 L236 212 L210 220 L194 124 L194 270 H106 L106 124 L90 220 L64 212 Z"}},
	{[]string{"t-shirts", "tops", "shirts", "blouses", "sports-bras", "polos"}, []string{
		"M98 78 L126 62 Q150 84 174 62 L202 78 L246 128 L216 152 L200 134 V266 H100 V134 L84 152 L54 128 Z"}},
	{nil, []string{
		"M90 110 L150 60 L210 110 V300 H90 Z",
		"M150 100 m-12 0 a12 12 0 1 0 24 0 a12 12 0 1 0 -24 0 Z"}},
}

// silhouetteOf picks the silhouette of a category path.
func silhouetteOf(category string) *silhouette {
	segs := strings.Split(strings.ToLower(category), "/")
	for i := len(segs) - 1; i >= 0; i-- {
		for j := range silhouettes[:len(silhouettes)-1] {
			for _, w := range silhouettes[j].words {
				if segs[i] == w {
					return &silhouettes[j]
				}
			}
		}
	}
	return &silhouettes[len(silhouettes)-1]
}

// colorHex maps colour names (a product's "color" attribute, first word)
// to the fill drawn.
var colorHex = map[string]string{
	"black": "#26272b", "white": "#f7f7f4", "grey": "#8b8f96", "gray": "#8b8f96", "charcoal": "#45484e",
	"navy": "#22304f", "blue": "#3b6ea8", "denim": "#4a6a8f", "light blue": "#8fb4d8", "teal": "#2a7f7f",
	"green": "#3f7d4e", "olive": "#6b6b3a", "khaki": "#a39a6b", "red": "#b3262e", "burgundy": "#6d1f33",
	"pink": "#e59ab2", "purple": "#6a4c93", "yellow": "#e6c24a", "mustard": "#c9a227", "orange": "#e07b39",
	"beige": "#d9c4a3", "cream": "#f1e7d0", "camel": "#c19a6b", "brown": "#6f4e37", "multicolor": "#9a7fb0",
}

// palette is used when a product has no colour the map knows: a stable
// choice by product id.
var palette = []string{"#22304f", "#3b6ea8", "#3f7d4e", "#b3262e", "#6d1f33", "#c19a6b", "#6f4e37", "#8b8f96", "#e59ab2", "#2a7f7f", "#e6c24a", "#45484e"}

// colorOf returns the fill for a colour name, or a stable palette colour
// for id when the name is unknown or empty.
func colorOf(name, id string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	if c, ok := colorHex[name]; ok {
		return c
	}
	if i := strings.IndexAny(name, " /,-"); i > 0 {
		if c, ok := colorHex[name[:i]]; ok {
			return c
		}
	}
	return palette[xxhash.Sum64String(id)%uint64(len(palette))]
}

// darker returns a hex colour scaled towards black, for outlines.
func darker(hex string) string {
	v, err := strconv.ParseUint(hex[1:], 16, 32)
	if err != nil || len(hex) != 7 {
		return "#333333"
	}
	r, g, b := v>>16&255, v>>8&255, v&255
	out := []byte{'#'}
	for _, c := range []uint64{r * 6 / 10, g * 6 / 10, b * 6 / 10} {
		out = append(out, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
	}
	return string(out)
}

// appendProductSVG draws a product's picture.
func appendProductSVG(dst []byte, it *index.Item) []byte {
	fill := colorOf(it.Attr("color"), it.ID)
	stroke := darker(fill)
	sil := silhouetteOf(it.Category)
	dst = append(dst, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 400" width="300" height="400" role="img" aria-label="`...)
	dst = appendEscaped(dst, it.Title)
	dst = append(dst, `"><rect width="300" height="400" fill="#f4f1ec"/>`...)
	dst = append(dst, `<text x="150" y="30" text-anchor="middle" font-family="sans-serif" font-size="15" letter-spacing="2" fill="#6b6660">`...)
	dst = appendEscaped(dst, strings.ToUpper(it.Brand))
	dst = append(dst, `</text><g fill="`...)
	dst = append(dst, fill...)
	dst = append(dst, `" stroke="`...)
	dst = append(dst, stroke...)
	dst = append(dst, `" stroke-width="3" stroke-linejoin="round">`...)
	for _, p := range sil.paths {
		dst = append(dst, `<path d="`...)
		dst = append(dst, p...)
		dst = append(dst, `"/>`...)
	}
	dst = append(dst, `</g>`...)
	l1, l2 := splitTitle(it.Title, 26)
	y := 352
	if l2 != "" {
		y = 342
	}
	for _, line := range []string{l1, l2} {
		if line == "" {
			continue
		}
		dst = append(dst, `<text x="150" y="`...)
		dst = strconv.AppendInt(dst, int64(y), 10)
		dst = append(dst, `" text-anchor="middle" font-family="sans-serif" font-size="18" fill="#2b2a28">`...)
		dst = appendEscaped(dst, line)
		dst = append(dst, `</text>`...)
		y += 24
	}
	return append(dst, `</svg>`...)
}

// splitTitle breaks a title into at most two lines of about width
// characters, at a space; the second is cut with an ellipsis.
func splitTitle(title string, width int) (string, string) {
	r := []rune(title)
	if len(r) <= width {
		return title, ""
	}
	cut := width
	for i := width; i > width/2; i-- {
		if r[i] == ' ' {
			cut = i
			break
		}
	}
	first, rest := strings.TrimSpace(string(r[:cut])), []rune(strings.TrimSpace(string(r[cut:])))
	if len(rest) > width {
		rest = append(rest[:width-1], '…')
	}
	return first, string(rest)
}

// appendEscaped appends s escaped for XML text and attribute values.
func appendEscaped(dst []byte, s string) []byte {
	return append(dst, html.EscapeString(s)...)
}

// absoluteURL makes a link relative to this server (such as a generated
// picture, "/img/P1.svg") absolute, for answers read elsewhere: HTML
// fragments embedded in emails, feeds fetched by ad platforms. Other links
// are returned as they are.
func absoluteURL(ctx *fasthttp.RequestCtx, link string) string {
	if !strings.HasPrefix(link, "/") || strings.HasPrefix(link, "//") {
		return link
	}
	scheme := "http://"
	if ctx.IsTLS() || string(ctx.Request.Header.Peek("X-Forwarded-Proto")) == "https" {
		scheme = "https://"
	}
	return scheme + string(ctx.Host()) + link
}
