package jsonenc

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendString(t *testing.T) {
	f := func(s, want string) {
		t.Helper()
		got := string(AppendString([]byte("x"), s))
		if got != "x"+want {
			t.Errorf("AppendString(%q) = %s, want %s", s, got[1:], want)
		}
		var back string
		if err := json.Unmarshal([]byte(got[1:]), &back); err != nil {
			t.Errorf("AppendString(%q) = %s: not JSON: %v", s, got[1:], err)
		}
		if utf8.ValidString(s) && back != s {
			t.Errorf("AppendString(%q) round-trips to %q", s, back)
		}
	}
	f("", `""`)
	f("plain ascii", `"plain ascii"`)
	f(`q"b\s/`, `"q\"b\\s/"`)
	f("\x00\x01\n\r\t\x1f\x7f", `"\u0000\u0001\u000a\u000d\u0009\u001f`+"\x7f"+`"`)
	f("<script>&amp;</script>", `"\u003cscript\u003e\u0026amp;\u003c/script\u003e"`)
	f("café 😀 Düsseldorf 東京", `"café 😀 Düsseldorf 東京"`)
	f("a\u2028b\u2029c", `"a\u2028b\u2029c"`)
	f("bad\xffutf8\xc3", `"bad\ufffdutf8\ufffd"`)
	f("cut \xe2\x82", `"cut \ufffd\ufffd"`)
	f("\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`)
}

func TestAppendFloat(t *testing.T) {
	for _, c := range []struct {
		f    float64
		want string
	}{{0, "0"}, {59, "59"}, {12.95, "12.95"}, {-0.5, "-0.5"}, {1e21, "1000000000000000000000"}, {math.NaN(), "null"}, {math.Inf(-1), "null"}} {
		if got := string(AppendFloat(nil, c.f)); got != c.want {
			t.Errorf("AppendFloat(%v) = %s, want %s", c.f, got, c.want)
		}
	}
}

// FuzzAppendString checks that any string encodes to JSON that
// encoding/json decodes to the same string (invalid UTF-8 aside, which
// both turn into U+FFFD), and that nothing HTML or JavaScript reads
// specially is left raw.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b\\c", "\x00\n\u2028", "\xff\xfe", "Köln 🧤", "</script>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("AppendString(%q) = %s: not JSON: %v", s, enc, err)
		}
		// encoding/json is the reference, also for invalid UTF-8.
		std, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var want string
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatal(err)
		}
		if back != want {
			t.Fatalf("AppendString(%q) decodes to %q, want %q", s, back, want)
		}
		if strings.ContainsAny(string(enc), "<>&\u2028\u2029") {
			t.Fatalf("AppendString(%q) = %s: not safe in HTML", s, enc)
		}
	})
}

func BenchmarkAppendString(b *testing.B) {
	for _, c := range []struct{ name, s string }{
		{"ascii", "https://shop.example/i/P100-merino-sweater.jpg"},
		{"utf8", "Pullover aus Merinowolle, Größe 38 – Düsseldorf"},
		{"escapes", `Hat "Bobble" <b>&</b>` + "\n"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.s)))
			buf := make([]byte, 0, 256)
			for b.Loop() {
				buf = AppendString(buf[:0], c.s)
			}
		})
	}
}
