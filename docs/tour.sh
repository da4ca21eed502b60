#!/usr/bin/env bash
# The five-minute tour of README.md ("A five-minute tour: Sarah's journey"),
# step for step: every command below is the README's, with $O for
# localhost:7070. Run it against a fresh `make run` (or `omnipick serve
# -demo`); OMNIPICK=host:port points it elsewhere. cmd/omnipick's
# TestReadmeTour runs it, and the README's blocks, and checks what the
# README says they show.
set -euo pipefail
O=${OMNIPICK:-localhost:7070}
step() { printf '\n== %s\n' "$*"; }

step "1. A few products (a sweater, two leggings, a hat, gloves, a scarf), with stock"
curl -s "$O/v1/products" -H 'Content-Type: application/x-ndjson' --data-binary @- <<'EOF'
{"id":"TOUR-SW","title":"Merino sweater","price":59,"currency":"EUR","category":"women/knitwear/sweaters","brand":"Nordic","tags":["winter","wool"],"image":"/img/TOUR-SW.svg","size_group":"women-numeric","variants":[{"sku":"TOUR-SW-8","size":"8"},{"sku":"TOUR-SW-10","size":"10"}]}
{"id":"TOUR-LG","title":"Studio leggings","price":39,"currency":"EUR","category":"women/leggings","brand":"Move","tags":["sport"],"image":"/img/TOUR-LG.svg","size_group":"women-numeric","variants":[{"sku":"TOUR-LG-8","size":"8"},{"sku":"TOUR-LG-10","size":"10"}]}
{"id":"TOUR-LG2","title":"Thermal leggings","price":45,"currency":"EUR","category":"women/leggings","brand":"Move","tags":["sport","winter"],"image":"/img/TOUR-LG2.svg","size_group":"women-numeric","variants":[{"sku":"TOUR-LG2-8","size":"8"},{"sku":"TOUR-LG2-10","size":"10"}]}
{"id":"TOUR-HAT","title":"Bobble hat","price":19,"currency":"EUR","category":"women/accessories/hats","brand":"Alpen","tags":["winter"],"image":"/img/TOUR-HAT.svg","variants":[{"sku":"TOUR-HAT"}]}
{"id":"TOUR-GL","title":"Leather gloves","price":29,"currency":"EUR","category":"women/accessories/gloves","brand":"Alpen","tags":["winter"],"image":"/img/TOUR-GL.svg","variants":[{"sku":"TOUR-GL"}]}
{"id":"TOUR-SC","title":"Wool scarf","price":25,"currency":"EUR","category":"women/accessories/scarves","brand":"Nordic","tags":["winter","wool"],"image":"/img/TOUR-SC.svg","variants":[{"sku":"TOUR-SC"}]}
EOF
curl -s "$O/v1/inventory" -H 'Content-Type: application/x-ndjson' --data-binary @- <<'EOF'
{"sku":"TOUR-SW-8","location":"online","quantity":4}
{"sku":"TOUR-LG-8","location":"online","quantity":6}
{"sku":"TOUR-LG2-8","location":"online","quantity":0}
{"sku":"TOUR-LG2-10","location":"online","quantity":3}
{"sku":"TOUR-HAT","location":"online","quantity":9}
{"sku":"TOUR-GL","location":"online","quantity":5}
{"sku":"TOUR-SC","location":"online","quantity":7}
{"sku":"TOUR-GL","location":"store-berlin-1","quantity":2}
{"sku":"TOUR-SC","location":"store-berlin-1","quantity":1}
EOF

step "2. Other shoppers bought hats with gloves, and hats with scarves"
curl -s "$O/v1/events" -H 'Content-Type: application/x-ndjson' --data-binary @- <<'EOF'
{"type":"purchase","customer":"tour-a","product":"TOUR-HAT"}
{"type":"purchase","customer":"tour-a","product":"TOUR-GL"}
{"type":"purchase","customer":"tour-b","product":"TOUR-HAT"}
{"type":"purchase","customer":"tour-b","product":"TOUR-SC"}
EOF

step "3. Sarah buys a sweater in size 8 on a social shop, looks at thermal leggings, carts size-8 leggings and leaves"
curl -s "$O/v1/events" -H 'Content-Type: application/x-ndjson' --data-binary @- <<'EOF'
{"type":"purchase","customer":"sarah","sku":"TOUR-SW-8","channel":"social","order":"O1","price":59}
{"type":"view","customer":"sarah","product":"TOUR-LG2","channel":"web"}
{"type":"cart_add","customer":"sarah","sku":"TOUR-LG-8","channel":"web"}
EOF

step "4. Retargeting ads: the leggings first, reason cart; the thermal leggings are sold out online in size 8"
curl -s "$O/v1/picks?customer=sarah&channel=ads&k=5"

step "5. She buys the leggings and the hat: no channel shows them (or the sweater); gloves and scarves rise"
curl -s "$O/v1/events" -H 'Content-Type: application/x-ndjson' --data-binary @- <<'EOF'
{"type":"purchase","customer":"sarah","sku":"TOUR-LG-8","channel":"app","order":"O2"}
{"type":"purchase","customer":"sarah","product":"TOUR-HAT","channel":"app","order":"O2"}
EOF
curl -s "$O/v1/picks?customer=sarah&channel=email&k=5"

step "6. In the Berlin store: its screen knows her; a scanned hat brings up what goes with it, on this store's shelves"
curl -s "$O/v1/picks?customer=sarah&channel=screen&location=store-berlin-1&k=5"
curl -s "$O/v1/picks?channel=screen&location=store-berlin-1&context=TOUR-HAT&k=5"

step "7. What the engine knows about her"
curl -s "$O/v1/customers/sarah"

step "8. The store's kiosk (open $O/screen/store-berlin-1): a scan at the store changes it within a second"
curl -s "$O/v1/events" --data-binary '{"type":"scan","customer":"sarah","product":"TOUR-HAT","location":"store-berlin-1","channel":"store"}'
curl -s "$O/screen/store-berlin-1/picks.json?k=5"
echo
