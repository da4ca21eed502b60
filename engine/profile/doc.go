// Package profile holds what Omnipick knows of each customer and anonymous
// id: a Profile (affinities, sizes, purchases, cart, views, impressions,
// exclusions, campaigns, links), and the Store that keeps every profile
// encoded in per-shard byte arenas.
//
// What it owns: the shards (a stable xxhash of the actor id picks one),
// the id dictionaries, the arenas, the profile encoding (encoding.go, the
// one format both the arenas and engine snapshots use) and the profiles
// part of a snapshot (capture.go). Its small API:
//
//   - Read decodes an actor's profile into a caller's Profile (a view
//     that outlives the lock);
//   - Edit changes the profile now holding an actor's history through a
//     callback run under the shard's lock;
//   - Resolve follows anonymous ids' links, Link moves an anonymous
//     history into another actor;
//   - Scan walks a shard's profiles for audiences; BeginCapture,
//     TakeCapture and LoadSection write and read snapshots.
//
// Profile's methods (AddView, AddCart, Exclude, ...) are the edits an
// Edit callback makes; they know nothing of locks.
//
// It may import: index (Dict, size keys), internal/binfmt and the
// standard library; never engine, which imports it.
//
// # Locks
//
// One RWMutex per shard, taken by the Store's methods and released before
// they return. They are taken one at a time, never two together (Link
// takes the anonymous id's shard, releases it, then the target's), so
// they are leaves for every caller: engine takes them under Engine.mu,
// and nothing here calls out while holding one except the Edit and Scan
// callbacks, which must take no lock and not call the Store.
package profile
