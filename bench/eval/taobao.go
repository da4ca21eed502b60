package eval

import (
	"strconv"
	"strings"

	"github.com/omnipick/omnipick/engine"
)

// taobaoCatalog reads taobao's items.csv: one product per item, its
// category id as category.
func taobaoCatalog(c *csvFile, l *loader) error {
	col, err := c.columns("item_id", "category_id")
	if err != nil {
		return err
	}
	in := interner{}
	return c.each(func(row []string) error {
		id, cat := row[col[0]], row[col[1]]
		if id == "" || cat == "" {
			return c.errorf(col[0], "empty item_id or category_id")
		}
		err = l.product(engine.Product{ID: strings.Clone(id), Category: in.get(cat)})
		if err != nil {
			return err
		}
		return nil
	})
}

// taobaoBehaviours maps the source's behavior_type to event types; see the
// package doc for why a favourite is a cart_add.
var taobaoBehaviours = map[string]engine.EventType{
	"pv":   engine.EventView,
	"cart": engine.EventCartAdd,
	"fav":  engine.EventCartAdd,
	"buy":  engine.EventPurchase,
}

// taobaoEvents reads taobao's events.csv.
func taobaoEvents(c *csvFile, l *loader) error {
	col, err := c.columns("user_id", "item_id", "behavior_type", "timestamp")
	if err != nil {
		return err
	}
	const (
		cUser = iota
		cItem
		cBehaviour
		cTS
	)
	// Users are few (814): share one string per user.
	users := interner{}
	return c.each(func(row []string) error {
		l.stats.Rows++
		typ, ok := taobaoBehaviours[row[col[cBehaviour]]]
		if !ok {
			return c.errorf(col[cBehaviour], "unknown behavior_type %q", row[col[cBehaviour]])
		}
		sec, err := strconv.ParseInt(row[col[cTS]], 10, 64)
		if err != nil {
			return c.errorf(col[cTS], "bad timestamp %q", row[col[cTS]])
		}
		user, item := row[col[cUser]], row[col[cItem]]
		if user == "" || item == "" {
			return c.errorf(col[cUser], "empty user_id or item_id")
		}
		item = strings.Clone(item)
		err = l.event(c, col[cTS], engine.Event{
			Type:     typ,
			Customer: users.get(user),
			Product:  item,
			SKU:      item,
			Channel:  "web",
			TS:       sec * 1000,
		})
		if err != nil {
			return err
		}
		return nil
	})
}
