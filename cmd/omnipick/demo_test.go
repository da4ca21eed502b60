package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omnipick/omnipick/engine"
)

// engineWriter applies records straight to an engine, as the API does
// when it runs without a store.
type engineWriter struct{ e *engine.Engine }

func (w engineWriter) Write(recs []engine.Record, errs []error) error {
	for i := range recs {
		errs[i] = w.e.Apply(&recs[i])
	}
	return nil
}

// TestLoadDemoLineNumbers checks that loadDemo names the line of a bad
// record in its file, also past the first batch, whether the decoder or
// the engine refuses it.
func TestLoadDemoLineNumbers(t *testing.T) {
	const n = 2*demoBatchLines + 500
	write := func(t *testing.T, dir, name string, line func(i int) string) {
		t.Helper()
		var b strings.Builder
		for i := 1; i <= n; i++ {
			b.WriteString(line(i))
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	product := func(i int) string { return fmt.Sprintf(`{"id":"P%d","title":"T","price":1}`, i) }
	for _, tc := range []struct {
		name      string
		products  func(i int) string
		inventory func(i int) string
		want      string // "" for success
	}{
		{"all good", product, func(i int) string { return fmt.Sprintf(`{"sku":"P%d","location":"online","quantity":1}`, i) }, ""},
		{"decoder refuses, third batch", func(i int) string {
			if i == 2*demoBatchLines+17 {
				return `{"title":"no id"}`
			}
			return product(i)
		}, nil, "products.ndjson line 2017: id: is required"},
		{"blank lines counted", func(i int) string {
			switch i {
			case 3, 1200:
				return "  "
			case 1500:
				return `{"id":"P1500","price":-1}`
			}
			return product(i)
		}, nil, "products.ndjson line 1500: price: must be between"},
		{"engine refuses, second batch", product, func(i int) string {
			sku := fmt.Sprintf("P%d", i)
			if i == demoBatchLines+250 {
				sku = "no-such-sku"
			}
			return fmt.Sprintf(`{"sku":%q,"location":"online","quantity":1}`, sku)
		}, "inventory.ndjson line 1250: rejected: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "locations.ndjson"), []byte(`{"id":"online","name":"Shop"}`+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			write(t, dir, "products.ndjson", tc.products)
			inventory := tc.inventory
			if inventory == nil {
				inventory = func(i int) string { return fmt.Sprintf(`{"sku":"P%d","location":"online","quantity":1}`, i) }
			}
			write(t, dir, "inventory.ndjson", inventory)
			if err := os.WriteFile(filepath.Join(dir, "events.ndjson"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			total, err := loadDemo(dir, engineWriter{engine.New(engine.Options{})})
			if tc.want == "" {
				if err != nil || total != 1+2*n {
					t.Fatalf("loadDemo: %d records, %v; want %d", total, err, 1+2*n)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("loadDemo: %v; want an error starting %q", err, tc.want)
			}
		})
	}
}

func TestObjectLine(t *testing.T) {
	b := []byte("a\n\n  \r\nb\nc")
	for idx, want := range []int{1, 4, 5, 6} {
		if got := objectLine(b, idx); got != want {
			t.Errorf("objectLine(%d) = %d, want %d", idx, got, want)
		}
	}
}
