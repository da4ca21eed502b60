package api

import (
	"bytes"
	"html/template"
	"strconv"

	"github.com/omnipick/omnipick/engine"
	"github.com/valyala/fasthttp"
)

// picksHTML is the fragment GET /v1/picks?format=html answers, for email
// templates that embed markup rather than build it. html/template escapes
// every value by context (text, attribute, URL), so a title holding
// markup or a javascript: URL cannot inject anything.
const picksHTML = `<div class="omnipick-picks" data-channel="{{.Channel}}">
{{- range .Picks}}
<div class="omnipick-pick" data-product="{{.ID}}" data-reason="{{.Reason}}"><a href="{{.URL}}">
{{- if .Image}}<img src="{{.Image}}" alt="{{.Title}}" width="200">{{end -}}
<span class="omnipick-title">{{.Title}}</span><span class="omnipick-price">{{.Price}}</span>
{{- if .Sizes}}<span class="omnipick-sizes">{{range $i, $s := .Sizes}}{{if $i}} {{end}}{{$s}}{{end}}</span>{{end -}}
</a></div>
{{- end}}
</div>
`

type htmlPicks struct {
	Channel string
	Picks   []htmlPick
}

type htmlPick struct {
	ID, Title, Image, Price, Reason string
	URL                             template.URL
	Sizes                           []string
}

func newPicksTemplate() *template.Template {
	return template.Must(template.New("picks").Parse(picksHTML))
}

// writePicksHTML answers the picks as an HTML fragment. It allocates: it
// serves email opens, not the ads hot path.
func (s *Server) writePicksHTML(ctx *fasthttp.RequestCtx, q *engine.Query, picks []engine.Pick) {
	data := htmlPicks{Channel: q.Channel.String(), Picks: make([]htmlPick, 0, len(picks))}
	for _, p := range picks {
		it := p.Item
		price := strconv.FormatFloat(it.Price, 'f', 2, 64)
		if it.Currency != "" {
			price += " " + it.Currency
		}
		hp := htmlPick{ID: it.ID, Title: it.Title, Image: absoluteURL(ctx, it.Image), Price: price, Reason: p.Reason.String(), URL: safeURL(absoluteURL(ctx, it.URL))}
		for j, v := range it.Variants {
			if p.SizeMask&(1<<uint(j)) != 0 && v.Size != "" {
				hp.Sizes = append(hp.Sizes, v.Size)
			}
		}
		data.Picks = append(data.Picks, hp)
	}
	var buf bytes.Buffer
	if err := s.picksTmpl.Execute(&buf, data); err != nil {
		s.opts.Log.Error("cannot render picks html", "err", err)
		writeError(ctx, fasthttp.StatusInternalServerError, "cannot render picks", "")
		return
	}
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(buf.Bytes())
}

// safeURL passes http(s) links through as trusted and anything else (a
// javascript: URL in a hostile catalog entry) as "#".
func safeURL(u string) template.URL {
	if len(u) >= 7 && (u[:7] == "http://" || (len(u) >= 8 && u[:8] == "https://")) {
		return template.URL(u)
	}
	return "#"
}
