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
//     variants is the product's Group and the tag "style:<product_code>". Category is
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
//     tags are "style:<base_code>" for codes with variants (whose Group is
//     the base code) and colour words.
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
// # Splits: validation to decide, dev to confirm
//
// Run scores one of two splits (Options.Split, omnipick eval -split):
//
//   - SplitValidation is carved from train by time: the methods learn from
//     the train events before the set's validation cut (hm 2020-09-18: two
//     days learned, two validated, as train holds four; online_retail
//     2011-09-01, the last train month; taobao 2017-12-01 00:00 UTC+8, the
//     last train day) and are asked as of it. The targets are built as the
//     holdout files were: train purchases at or after the cut, by customers
//     present before it (hm, online_retail: with a purchase; taobao: with any
//     event), of items they did not buy before it. For online_retail and
//     taobao, whose catalog files list the items seen in train, only the
//     items seen before the cut are fed. Tuning and every "does it help?"
//     decision use this split.
//   - SplitDev learns from all of train and scores holdout_dev: read once
//     per candidate change, to confirm it.
//
// Every metric comes with a 95% bootstrap interval (resampling the scored
// customers, DefaultBootstrap times, a fixed seed), and every method that is
// not a baseline with its difference to the best baseline of the run, each
// metric against the baseline best at it, with a paired bootstrap interval.
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
