package cluster

import (
	"testing"

	"github.com/omnipick/omnipick/engine"
)

// TestClusterEqualsSingleNode feeds the same records, in the same order, to
// a cluster node and to a single engine: a request's records keep their
// order in the stream (packing them by partition did not, and popularity
// and relations, learned across actors, came out different in the last
// digits). TestCluster shows every node equal to the stream's order.
func TestClusterEqualsSingleNode(t *testing.T) {
	global, events := smallWorld(t, 200, 100)
	c := startCluster(t, 1, 1)
	writeAll(t, c.nodes[0], global, 200)
	writeAll(t, c.nodes[0], events, 100)
	single := engine.New(testEngine())
	for i := range global {
		single.Apply(&global[i])
	}
	for i := range events {
		single.Apply(&events[i])
	}
	if n := comparePicks(t, single, actorsOf(events), c.nodes[0].Engine()); n == 0 {
		t.Fatal("no actor got picks")
	}
}
