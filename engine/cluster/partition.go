package cluster

import (
	"strconv"

	"github.com/cespare/xxhash/v2"

	"github.com/omnipick/omnipick/engine"
)

// DefaultPartitions is the partition count of a new cluster. It is fixed
// when the stream is created (stored in its metadata): changing it would
// move actors between partitions.
const DefaultPartitions = 64

// Partition returns the partition of an actor (customer or anonymous id).
func Partition(actor string, partitions int) int {
	return int(xxhash.Sum64String(actor) % uint64(partitions))
}

// actorOf returns the actor a record belongs to; "" for records every node
// holds alike (catalog, stock, locations, global exclusions, the expiry of
// anonymous profiles).
func actorOf(r *engine.Record) string {
	switch r.Op {
	case engine.OpEvent:
		return first(r.Event.Customer, r.Event.AnonymousID)
	case engine.OpIdentify:
		// The anonymous id's partition: the record reads that profile and
		// links it into the customer's. Every node applies every record
		// today, so the one record reaches both partitions' holders.
		return r.Identify.AnonymousID
	case engine.OpExclusion:
		return first(r.Exclusion.Customer, r.Exclusion.AnonymousID)
	case engine.OpCampaign:
		return first(r.Campaign.Customer, r.Campaign.AnonymousID)
	case engine.OpErase:
		return first(r.Erase.Customer, r.Erase.AnonymousID)
	}
	return ""
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// subjectOf is the subject of a record: prefix.p.<n> for an actor's
// partition, prefix.b for the broadcast records (a message mixing several
// goes to prefix.m).
func subjectOf(prefix string, r *engine.Record, partitions int) string {
	a := actorOf(r)
	if a == "" {
		return prefix + ".b"
	}
	return prefix + ".p." + strconv.Itoa(Partition(a, partitions))
}
