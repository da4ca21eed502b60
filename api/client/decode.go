package client

import (
	"fmt"

	"github.com/valyala/fastjson"
)

// decodePicks decodes a picks answer (schema Picks) into p. It is the one
// answer decoded by hand: picks are what integrators ask for on every page
// view, ad call and email open, and encoding/json spent most of the
// client's time on them (BenchmarkPicksOverhead). Unknown fields are
// ignored, as encoding/json would.
func decodePicks(parser *fastjson.Parser, b []byte, p *Picks) error {
	v, err := parser.ParseBytes(b)
	if err != nil {
		return err
	}
	o, err := v.Object()
	if err != nil {
		return err
	}
	var picks *fastjson.Value
	o.Visit(func(k []byte, v *fastjson.Value) {
		switch string(k) {
		case "customer":
			p.Customer = str(v)
		case "anonymous_id":
			p.AnonymousID = str(v)
		case "channel":
			p.Channel = str(v)
		case "took_us":
			p.TookUS = v.GetInt64()
		case "picks":
			picks = v
		}
	})
	if picks == nil {
		return nil
	}
	arr, err := picks.Array()
	if err != nil {
		return fmt.Errorf("picks: %w", err)
	}
	p.Picks = make([]Pick, len(arr))
	for i, pv := range arr {
		po, err := pv.Object()
		if err != nil {
			return fmt.Errorf("picks[%d]: %w", i, err)
		}
		pk := &p.Picks[i]
		po.Visit(func(k []byte, v *fastjson.Value) {
			switch string(k) {
			case "product":
				pk.Product = str(v)
			case "title":
				pk.Title = str(v)
			case "price":
				pk.Price = v.GetFloat64()
			case "currency":
				pk.Currency = str(v)
			case "url":
				pk.URL = str(v)
			case "image":
				pk.Image = str(v)
			case "category":
				pk.Category = str(v)
			case "brand":
				pk.Brand = str(v)
			case "sizes":
				sizes := v.GetArray()
				pk.Sizes = make([]string, len(sizes))
				for j, s := range sizes {
					pk.Sizes[j] = str(s)
				}
			case "reason":
				pk.Reason = str(v)
			case "score":
				pk.Score = v.GetFloat64()
			}
		})
	}
	return nil
}

// str copies a string value out of the parser's buffers ("" for another
// type).
func str(v *fastjson.Value) string {
	b, err := v.StringBytes()
	if err != nil {
		return ""
	}
	return string(b)
}
