package eval

import (
	"strconv"
	"strings"
	"time"

	"github.com/omnipick/omnipick/engine"
)

// retailCatalog reads online_retail's items.csv: one product per stock code
// except the non-product codes (postage, fees, vouchers).
func retailCatalog(c *csvFile, l *loader) error {
	col, err := c.columns("stock_code", "base_code", "n_variants_of_base",
		"description", "is_product", "median_unit_price")
	if err != nil {
		return err
	}
	const (
		cCode = iota
		cBase
		cVariants
		cDesc
		cIsProduct
		cPrice
	)
	in := interner{}
	return c.each(func(row []string) error {
		code := row[col[cCode]]
		if code == "" {
			return c.errorf(col[cCode], "empty stock_code")
		}
		if row[col[cIsProduct]] != "1" {
			l.skip("non-product code")
			return nil
		}
		var price float64
		if s := row[col[cPrice]]; s != "" {
			if price, err = strconv.ParseFloat(s, 64); err != nil {
				return c.errorf(col[cPrice], "bad median_unit_price %q", s)
			}
		}
		desc := strings.TrimSpace(row[col[cDesc]])
		var tags []string
		group := ""
		if row[col[cVariants]] != "1" {
			tags = append(tags, in.slugged("style:", row[col[cBase]]))
			group = in.get(row[col[cBase]])
		}
		for w := range strings.FieldsSeq(desc) {
			if colourWords[w] {
				if t := in.slugged("colour:", w); !containsString(tags, t) {
					tags = append(tags, t)
				}
			}
		}
		title := desc
		if title == "" {
			title = code
		}
		err = l.product(engine.Product{
			ID:       strings.Clone(code),
			Title:    strings.Clone(title),
			Price:    price,
			Currency: "GBP",
			Category: in.get("giftware/" + productKind(desc)),
			Tags:     tags,
			Group:    group,
		})
		if err != nil {
			return err
		}
		return nil
	})
}

// colourWords are description words naming a colour.
var colourWords = map[string]bool{
	"BLACK": true, "BLUE": true, "BROWN": true, "CREAM": true, "GOLD": true,
	"GREEN": true, "GREY": true, "IVORY": true, "LILAC": true, "ORANGE": true,
	"PINK": true, "PURPLE": true, "RED": true, "SILVER": true, "TURQUOISE": true,
	"WHITE": true, "YELLOW": true,
}

// notKinds are description words that do not name the kind of thing sold:
// colours (colourWords), sizes, patterns, quantities, joiners.
var notKinds = map[string]bool{
	"&": true, "AND": true, "ANTIQUE": true, "ASSORTED": true, "COLOUR": true,
	"COLOURS": true, "DESIGN": true, "DESIGNS": true, "FLORAL": true,
	"GINGHAM": true, "IN": true, "JUMBO": true, "LARGE": true, "MEDIUM": true,
	"MINI": true, "OF": true, "PACK": true, "PAISLEY": true, "POLKADOT": true,
	"RETRO": true, "RETROSPOT": true, "SET": true, "SMALL": true, "SPOT": true,
	"SPOTS": true, "STRIPE": true, "STRIPES": true, "VINTAGE": true, "W": true,
	"WITH": true, "XMAS": true, "CHRISTMAS": true,
}

// productKind guesses what a product is from its description: the last word
// that is not a colour, size, pattern, quantity or joiner, slugged and
// naively singularised ("SET OF 3 CAKE TINS PANTRY DESIGN" -> "pantry",
// "WHITE HANGING HEART T-LIGHT HOLDER" -> "holder", "PACK OF 12 RED
// CANDLES" -> "candle"). "other" if no word is left.
func productKind(desc string) string {
	words := strings.Fields(desc)
	for i := len(words) - 1; i >= 0; i-- {
		w := strings.ToUpper(words[i])
		if notKinds[w] || colourWords[w] || strings.ContainsAny(w, "0123456789") {
			continue
		}
		s := slug(w)
		if len(s) < 2 {
			continue
		}
		return singular(s)
	}
	return "other"
}

// singular strips an English plural ending: "boxes" -> "box",
// "candles" -> "candle", "glass" stays.
func singular(s string) string {
	switch {
	case len(s) <= 3 || strings.HasSuffix(s, "ss") || strings.HasSuffix(s, "us"):
		return s
	case strings.HasSuffix(s, "sses"), strings.HasSuffix(s, "xes"),
		strings.HasSuffix(s, "ches"), strings.HasSuffix(s, "shes"):
		return s[:len(s)-2]
	case strings.HasSuffix(s, "s"):
		return s[:len(s)-1]
	}
	return s
}

// retailEvents reads online_retail's transactions.csv. See the package doc
// for which lines become which events.
func retailEvents(c *csvFile, l *loader) error {
	col, err := c.columns("invoice_no", "invoice_ts", "customer_id", "stock_code",
		"quantity", "unit_price", "is_cancellation", "is_product")
	if err != nil {
		return err
	}
	const (
		cInvoice = iota
		cTS
		cCust
		cCode
		cQty
		cPrice
		cCancel
		cIsProduct
	)
	var (
		lastStamp string
		lastTS    int64
		invoice   string              // current invoice number
		guest     string              // its anonymous visitor id
		lines     = map[uint64]bool{} // hashes of the current invoice's lines
		cust      string
	)
	return c.each(func(row []string) error {
		l.stats.Rows++
		if row[col[cIsProduct]] != "1" {
			l.skip("non-product line")
			return nil
		}
		if inv := row[col[cInvoice]]; inv != invoice {
			invoice = strings.Clone(inv)
			guest = ""
			clear(lines)
		}
		sum := uint64(fnvOffset)
		for _, f := range row {
			sum = fnvString(sum, f)
			sum = fnvString(sum, "\x00")
		}
		if lines[sum] {
			l.skip("duplicate line in invoice")
			return nil
		}
		lines[sum] = true
		qty, err := strconv.Atoi(row[col[cQty]])
		if err != nil {
			return c.errorf(col[cQty], "bad quantity %q", row[col[cQty]])
		}
		cancel := row[col[cCancel]] == "1"
		if !cancel && qty <= 0 {
			l.skip("adjustment (quantity <= 0)")
			return nil
		}
		if id := row[col[cCust]]; id != cust {
			cust = strings.Clone(id)
		}
		if cancel && cust == "" {
			l.skip("guest cancellation")
			return nil
		}
		if s := row[col[cTS]]; s != lastStamp {
			t, err := time.Parse("2006-01-02T15:04:05", s)
			if err != nil {
				return c.errorf(col[cTS], "bad invoice_ts %q", s)
			}
			lastStamp, lastTS = strings.Clone(s), t.UnixMilli()
		}
		price, err := strconv.ParseFloat(row[col[cPrice]], 64)
		if err != nil {
			return c.errorf(col[cPrice], "bad unit_price %q", row[col[cPrice]])
		}
		code := strings.Clone(row[col[cCode]])
		if code == "" {
			return c.errorf(col[cCode], "empty stock_code")
		}
		e := engine.Event{
			Type:     engine.EventPurchase,
			Customer: cust,
			Product:  code,
			SKU:      code,
			Channel:  "web",
			Order:    invoice,
			Price:    price,
			TS:       lastTS,
		}
		if cancel {
			e.Type = engine.EventReturn
		}
		if cust == "" {
			if guest == "" {
				guest = "invoice:" + invoice
			}
			e.AnonymousID = guest
		}
		if err := l.event(c, col[cTS], e); err != nil {
			return err
		}
		return nil
	})
}
