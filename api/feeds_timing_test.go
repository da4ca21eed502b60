package api

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"testing"

	"github.com/omnipick/omnipick/engine"
)

func TestNegotiateCoding(t *testing.T) {
	f := func(header string, want contentCoding) {
		t.Helper()
		if got := negotiateCoding([]byte(header)); got != want {
			t.Errorf("negotiateCoding(%q) = %q, want %q", header, codingNames[got], codingNames[want])
		}
	}
	f("", codingIdentity)
	f("identity", codingIdentity)
	f("gzip", codingGzip)
	f("GZIP", codingGzip)
	f("x-gzip", codingGzip)
	f("gzip, deflate, br", codingGzip)
	f("zstd", codingZstd)
	f("gzip, zstd", codingZstd)
	f("br;q=1.0, gzip;q=0.8, zstd;q=0.9", codingZstd)
	f("gzip;q=0.9, zstd;q=0.8", codingGzip)
	f("gzip; q=0.5", codingGzip)
	f("gzip;q=0", codingIdentity)
	f("zstd;q=0, gzip;q=0.1", codingGzip)
	f("gzip;q=nonsense", codingIdentity)
	f("*", codingGzip)
	f("*;q=0", codingIdentity)
	f("*, gzip;q=0", codingIdentity)
	f("br", codingIdentity)
	f(",,;", codingIdentity)
}

// FuzzNegotiateCoding feeds Accept-Encoding headers to the parser: any
// header gives one of the three codings, and never a panic.
func FuzzNegotiateCoding(f *testing.F) {
	for _, h := range []string{"", "gzip", "zstd;q=0.5, gzip;q=0.4", "*;q=0", ",;=,q=1e400", "gzip;q=-1"} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if c := negotiateCoding([]byte(h)); c > codingZstd {
			t.Fatalf("negotiateCoding(%q) = %d", h, c)
		}
	})
}

// checkXMLText checks that writeXMLText writes what xml.EscapeText does.
func checkXMLText(t *testing.T, s string) {
	t.Helper()
	var got, want bytes.Buffer
	o := bufio.NewWriter(&got)
	writeXMLText(o, []byte(s))
	o.Flush()
	_ = xml.EscapeText(&want, []byte(s))
	if got.String() != want.String() {
		t.Errorf("writeXMLText(%q) = %q, want %q", s, got.String(), want.String())
	}
}

func TestWriteXMLText(t *testing.T) {
	for _, s := range []string{"", "P100-8", "https://shop.example/p/1?a=1;b=2", "59.00 EUR",
		"a&b", "<b>", "x>y", `"q"`, "it's", "Café", "☃", "tab\tnew\nline\r", "\x01", "\x7f", "\xff\xfe", "~ !#$%()*+,-./:=?@[]^_`{|}"} {
		checkXMLText(t, s)
	}
}

// FuzzWriteXMLText checks the fast path against xml.EscapeText.
func FuzzWriteXMLText(f *testing.F) {
	for _, s := range []string{"plain", "a&b", "Café", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(checkXMLText)
}

func TestAppendDescription(t *testing.T) {
	f := func(title, brand, category, want string) {
		t.Helper()
		if got := string(appendDescription(nil, title, brand, category)); got != want {
			t.Errorf("appendDescription(%q, %q, %q) = %q, want %q", title, brand, category, got, want)
		}
	}
	f("Merino sweater", "Nordic", "women/knitwear/sweaters", "Merino sweater by Nordic, in women > knitwear > sweaters")
	f("Merino sweater", "", "women", "Merino sweater, in women")
	f("Merino sweater", "Nordic", "", "Merino sweater by Nordic")
	f("Merino sweater", "", "", "Merino sweater")
}

// feedEngine returns an engine with n three-size products, the middle
// size in stock online.
func feedEngine(b testing.TB, n int) *engine.Engine {
	e := engine.New(engine.Options{})
	for i := range n {
		id := fmt.Sprintf("P%06d", i)
		p := engine.Product{
			ID: id, Title: "Merino sweater & scarf " + id, URL: "https://shop.example/p/" + id,
			Image: "https://cdn.shop.example/i/" + id + ".jpg", Price: 59, Currency: "EUR",
			Category: "women/knitwear/sweaters", Brand: "Nordic", SizeGroup: "women-numeric",
			Variants: []engine.Variant{{SKU: id + "-6", Size: "6"}, {SKU: id + "-8", Size: "8"}, {SKU: id + "-10", Size: "10"}},
		}
		if err := e.Apply(&engine.Record{Op: engine.OpProduct, Product: p}); err != nil {
			b.Fatal(err)
		}
		if err := e.Apply(&engine.Record{Op: engine.OpInventory, Inventory: engine.Inventory{SKU: id + "-8", Location: "online", Quantity: 1}}); err != nil {
			b.Fatal(err)
		}
	}
	return e
}

// BenchmarkFeedGoogle writes the Google feed of a 10k-product catalog
// (30k rows) to io.Discard: the engine walk, XML encoding and compression,
// without HTTP. rows/s is the figure to watch; Meta is the baseline.
func BenchmarkFeedGoogle(b *testing.B) {
	e := feedEngine(b, 10000)
	for _, bc := range []struct {
		name   string
		format feedFormat
		coding contentCoding
	}{
		{"google", feedGoogle, codingIdentity},
		{"google-gzip", feedGoogle, codingGzip},
		{"google-zstd", feedGoogle, codingZstd},
		{"meta", feedMeta, codingIdentity},
	} {
		b.Run(bc.name, func(b *testing.B) {
			fw := new(feedWriter)
			var cw countingWriter
			b.ReportAllocs()
			rows := 0
			for b.Loop() {
				fw.e, fw.format, fw.coding, fw.locs, fw.self, fw.where = e, bc.format, bc.coding, []uint32{0}, "http://x/", "online"
				if err := fw.prepare(); err != nil {
					b.Fatal(err)
				}
				n, err := fw.writeTo(&cw)
				if err != nil {
					b.Fatal(err)
				}
				rows += n
				fw.release()
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(cw.n)/float64(rows), "B/row")
		})
	}
}

// countingWriter counts bytes and drops them.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return io.Discard.Write(p)
}
