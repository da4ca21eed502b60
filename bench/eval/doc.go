// Package eval measures how good Omnipick's picks are on real retail data.
//
// It replays the train split of a data set (../shared/data/<set>/train) as
// engine.Records into one or more Recommenders, asks each for picks for the
// customers of the set's holdout file, and scores the picks against what
// those customers bought after the cut.
//
// # Data sets and how they become Records
//
// Every set is streamed in the same order: one OpProduct per catalog item,
// then one OpInventory per SKU (each product has a single one-size variant
// whose SKU is the product id, stocked at location "online" with Stock
// units: the sets carry no sizes or stock), then the events in time order.
//
//   - hm: products are H&M articles (product × colour), because purchases
//     and holdout are per article. The product_code that groups colour
//     variants is the tag "style:<product_code>". Category is
//     index_group/department/product_type, slugged; Brand is empty (H&M has
//     no brands, and index names such as "Divided" are kept as tag
//     "index:<name>"); tags also carry colour, appearance and garment group.
//     Prices are left 0: the catalog has none (transactions do; events carry
//     them). Each transaction row is one unit bought, so repeated rows are
//     repeated purchase events. Rows carry a date only: an event's TS is
//     00:00 UTC of its day, and the source order is kept within a day.
//     sales_channel_id 1 is channel "store", 2 is "web".
//   - online_retail: products are stock codes from train/items.csv, except
//     the 16 non-product codes (postage, fees, vouchers: is_product = 0),
//     whose lines are skipped. Category is "giftware/<kind>", kind being the
//     last word of the description that names a thing (see productKind);
//     tags are "style:<base_code>" for codes with variants and colour words.
//     Invoice lines become purchase events (Order = invoice number); lines
//     of a cancellation invoice (C…) become return events; other lines with
//     quantity <= 0 (stock adjustments) and exact duplicate lines within an
//     invoice are skipped. Guest lines (no customer id) are purchases by the
//     anonymous visitor "invoice:<invoice_no>": they count for popularity and
//     co-occurrence but are never scored. Times are UK local time without a
//     zone and are read as UTC. Channel is "web".
//   - taobao: products are the item ids of train/items.csv, category is the
//     category id. Behaviours map pv -> view, cart -> cart_add,
//     fav -> cart_add, buy -> purchase. A favourite is mapped to cart_add
//     because it is an intent signal much closer to a cart than to a view:
//     among holdout customers, favourited-only (customer, item) pairs are
//     bought after the cut 5 times as often as viewed-only ones (1.2 % vs
//     0.24 %; carted: 3.3 %). Channel is "web".
//
// # Holdout and metrics
//
// A holdout customer's targets are the distinct items they bought after the
// cut that they did not buy in the (whole) train split; customers left with
// no target are not scored. Targets missing from the catalog stay in the
// denominators: no method can hit them, and Report says how many there are
// (TargetsInCatalog, MaxHitRate). Picks are asked for as of the cut.
//
// Nothing in this package is safe for concurrent use unless it says so.
package eval
