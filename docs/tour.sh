#!/usr/bin/env bash
# The five-minute tour from README.md, as a script: Sarah's journey against a
# running server (make run). OMNIPICK=http://host:port to point elsewhere.
set -euo pipefail
O=${OMNIPICK:-http://127.0.0.1:7070}
j() { curl -sS -H 'Content-Type: application/x-ndjson' --data-binary @- "$O$1"; echo; }

# 1. A few products (a sweater, leggings, a hat, gloves, a scarf), with stock.
j /v1/products <<'NDJSON'
{"id":"TOUR-SW","title":"Merino sweater","price":59,"currency":"EUR","category":"women/knitwear/sweaters","brand":"Nordic","tags":["winter","wool"],"size_group":"women-numeric","variants":[{"sku":"TOUR-SW-8","size":"8"},{"sku":"TOUR-SW-10","size":"10"}]}
{"id":"TOUR-LG","title":"Studio leggings","price":39,"currency":"EUR","category":"women/leggings","brand":"Move","tags":["sport"],"size_group":"women-numeric","variants":[{"sku":"TOUR-LG-8","size":"8"},{"sku":"TOUR-LG-10","size":"10"}]}
{"id":"TOUR-LG2","title":"Thermal leggings","price":45,"currency":"EUR","category":"women/leggings","brand":"Move","tags":["sport","winter"],"size_group":"women-numeric","variants":[{"sku":"TOUR-LG2-8","size":"8"},{"sku":"TOUR-LG2-10","size":"10"}]}
{"id":"TOUR-HAT","title":"Bobble hat","price":19,"currency":"EUR","category":"women/accessories/hats","brand":"Alpen","tags":["winter"],"variants":[{"sku":"TOUR-HAT"}]}
{"id":"TOUR-GL","title":"Leather gloves","price":29,"currency":"EUR","category":"women/accessories/gloves","brand":"Alpen","tags":["winter"],"variants":[{"sku":"TOUR-GL"}]}
{"id":"TOUR-SC","title":"Wool scarf","price":25,"currency":"EUR","category":"women/accessories/scarves","brand":"Nordic","tags":["winter","wool"],"variants":[{"sku":"TOUR-SC"}]}
NDJSON
j /v1/inventory <<'NDJSON'
{"sku":"TOUR-SW-8","location":"online","quantity":4}
{"sku":"TOUR-LG-8","location":"online","quantity":6}
{"sku":"TOUR-LG2-8","location":"online","quantity":0}
{"sku":"TOUR-LG2-10","location":"online","quantity":3}
{"sku":"TOUR-HAT","location":"online","quantity":9}
{"sku":"TOUR-GL","location":"online","quantity":5}
{"sku":"TOUR-SC","location":"online","quantity":7}
{"sku":"TOUR-GL","location":"store-berlin-1","quantity":2}
{"sku":"TOUR-SC","location":"store-berlin-1","quantity":1}
NDJSON

# 2. Other shoppers bought hats with gloves and scarves.
j /v1/events <<'NDJSON'
{"type":"purchase","customer":"tour-a","product":"TOUR-HAT"}
{"type":"purchase","customer":"tour-a","product":"TOUR-GL"}
{"type":"purchase","customer":"tour-b","product":"TOUR-HAT"}
{"type":"purchase","customer":"tour-b","product":"TOUR-SC"}
NDJSON

# 3. Sarah buys a sweater in size 8 on a social shop, then carts size-8
#    leggings and leaves.
j /v1/events <<'NDJSON'
{"type":"purchase","customer":"sarah","sku":"TOUR-SW-8","channel":"social","order":"O1","price":59}
{"type":"view","customer":"sarah","product":"TOUR-LG2","channel":"web"}
{"type":"cart_add","customer":"sarah","sku":"TOUR-LG-8","channel":"web"}
NDJSON

# 4. Retargeting ads: the leggings first (reason "cart"); the thermal
#    leggings are sold out online in size 8, so they never show.
curl -sS "$O/v1/picks?customer=sarah&channel=ads&k=5"; echo

# 5. She buys the leggings and the hat: neither shows again, on any channel;
#    gloves and scarves (bought with hats by others) rise.
j /v1/events <<'NDJSON'
{"type":"purchase","customer":"sarah","sku":"TOUR-LG-8","channel":"app","order":"O2"}
{"type":"purchase","customer":"sarah","product":"TOUR-HAT","channel":"app","order":"O2"}
NDJSON
curl -sS "$O/v1/picks?customer=sarah&channel=email&k=5"; echo

# 6. In the Berlin store, the screen shows what is on its shelves; a scanned
#    hat brings up related items in stock there.
curl -sS "$O/v1/picks?customer=sarah&channel=screen&location=store-berlin-1&k=5"; echo
curl -sS "$O/v1/picks?channel=screen&location=store-berlin-1&context=TOUR-HAT&k=5"; echo

# 7. What the engine knows about her.
curl -sS "$O/v1/customers/sarah"; echo
