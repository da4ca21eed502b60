// Package cluster runs omnipick on several machines over NATS JetStream:
// the stream is the log. A write is published, as the same records the
// write-ahead log holds, to one JetStream stream with replicas, and
// acknowledged once JetStream acknowledged every message of the batch;
// every node consumes the stream in its one order and applies each record
// through engine.Apply, so every node holds the same state as a single
// node fed the same records in stream order.
//
// Subjects carry the partition: <stream>.p.<n> for a message of one
// actor's partition (n = xxhash(actor) mod the partition count, fixed in
// the stream's metadata when the cluster is created), <stream>.b for
// catalog, stock, locations and global exclusions, <stream>.m for a
// request's message that mixes several (a request keeps its order). Today every node consumes every
// subject (each node is a full replica: any node answers any request, a
// lost node costs no failover); the subjects are in place so a node can
// later consume only its partitions once global signals travel on their
// own (see docs/cluster.md).
//
// A node keeps no write-ahead log: its snapshot records the stream
// sequence it covers, and a restart consumes the stream from the next one.
//
// It owns a node's engine, its snapshots and its stream consumer; it may
// import engine and internal packages, never api or engine/store.
//
// # Lock order
//
// applyMu -> the engine's locks. mu (waiters) is taken alone. A snapshot
// begins under applyMu and is written out after it is released.
package cluster
