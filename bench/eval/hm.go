package eval

import (
	"strconv"
	"strings"
	"time"

	"github.com/omnipick/omnipick/engine"
)

// hmCatalog reads articles.csv: one product per article.
func hmCatalog(c *csvFile, l *loader) error {
	col, err := c.columns("article_id", "product_code", "prod_name",
		"index_group_name", "department_name", "product_type_name",
		"colour_group_name", "graphical_appearance_name", "garment_group_name", "index_name")
	if err != nil {
		return err
	}
	const (
		cID = iota
		cCode
		cName
		cGroup
		cDept
		cType
		cColour
		cLook
		cGarment
		cIndex
	)
	in := interner{}
	return c.each(func(row []string) error {
		id := row[col[cID]]
		if id == "" {
			return c.errorf(col[cID], "empty article_id")
		}
		cat := in.get(slug(row[col[cGroup]]) + "/" + slug(row[col[cDept]]) + "/" + slug(row[col[cType]]))
		tags := make([]string, 0, 5)
		for _, t := range [...]string{
			in.slugged("colour:", row[col[cColour]]),
			in.slugged("appearance:", row[col[cLook]]),
			in.slugged("garment:", row[col[cGarment]]),
			in.slugged("index:", row[col[cIndex]]),
			in.slugged("style:", row[col[cCode]]),
		} {
			if t != "" {
				tags = append(tags, t)
			}
		}
		err = l.product(engine.Product{
			ID:       strings.Clone(id),
			Title:    strings.Clone(row[col[cName]]),
			Category: cat,
			Tags:     tags,
			Group:    in.get(row[col[cCode]]),
		})
		if err != nil {
			return err
		}
		return nil
	})
}

// hmEvents reads transactions.csv: one purchase event per row (one row is
// one unit), at 00:00 UTC of the row's date.
func hmEvents(c *csvFile, l *loader) error {
	col, err := c.columns("t_dat", "customer_id", "article_id", "price", "sales_channel_id")
	if err != nil {
		return err
	}
	const (
		cDate = iota
		cCust
		cArticle
		cPrice
		cChannel
	)
	var (
		lastDate string
		lastTS   int64
		cust     string
	)
	return c.each(func(row []string) error {
		l.stats.Rows++
		if d := row[col[cDate]]; d != lastDate {
			t, err := time.Parse(time.DateOnly, d)
			if err != nil {
				return c.errorf(col[cDate], "bad t_dat %q", d)
			}
			lastDate, lastTS = strings.Clone(d), t.UnixMilli()
		}
		price, err := strconv.ParseFloat(row[col[cPrice]], 64)
		if err != nil {
			return c.errorf(col[cPrice], "bad price %q", row[col[cPrice]])
		}
		var channel string
		switch row[col[cChannel]] {
		case "1":
			channel = "store"
		case "2":
			channel = "web"
		default:
			return c.errorf(col[cChannel], "bad sales_channel_id %q", row[col[cChannel]])
		}
		// Rows of one customer come together: share their id string.
		if id := row[col[cCust]]; id != cust {
			cust = strings.Clone(id)
		}
		article := strings.Clone(row[col[cArticle]])
		if cust == "" || article == "" {
			return c.errorf(col[cCust], "empty customer_id or article_id")
		}
		err = l.event(c, col[cDate], engine.Event{
			Type:     engine.EventPurchase,
			Customer: cust,
			Product:  article,
			SKU:      article,
			Channel:  channel,
			Price:    price,
			TS:       lastTS,
		})
		if err != nil {
			return err
		}
		return nil
	})
}
