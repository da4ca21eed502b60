// Package load is Omnipick's load generator: it sends a realistic mix of
// picks requests and event writes to a running service over fasthttp and
// reports latency percentiles, throughput and errors per kind of request.
//
// # Closed and open loop
//
// In the closed loop (Options.Rate == 0), each of Options.Conns connections
// sends its next request as soon as the previous answer arrives; latency
// is measured from send to answer. This finds the throughput the service
// sustains with that many requests in flight, but its latencies lie when
// the service stalls: a connection stuck for 200 ms sends nothing during
// the stall, so the requests that real clients would have sent meanwhile
// (and that would all have waited) are never sent and never measured.
// This is coordinated omission (Gil Tene, "How NOT to Measure Latency").
//
// In the open loop (Options.Rate > 0), requests follow a schedule fixed in
// advance, as in wrk2: connection i of N sends request j at
// t0 + (i + j*N)/Rate. A request whose connection is still busy at its
// scheduled time leaves as soon as the connection is free, and its latency
// is measured from the scheduled time, not from when it left. A stall
// therefore shows in full: the requests due during it wait out the rest
// of it and the backlog that follows, as real users would. The report
// also gives the uncorrected service time (from the actual send) and the
// send lag (actual minus scheduled send) so the two views can be compared.
// The schedule only holds if Conns is large enough for Rate times the
// normal latency; a large send lag with a small service time means more
// connections are needed, not that the service is slow.
//
// Requests due before the end are still sent after it, for up to
// Options.Drain; those left then are reported as unsent.
//
// # Measuring
//
// Requests sent during Options.Warmup are not counted. Latencies go into
// HDR-style histograms (Histogram: log-linear buckets, under 1% error,
// exact maximum), one per kind of request. Errors are counted by HTTP
// status and by transport error class; a timeout is also counted in the
// latency histogram (at the timeout), so a stall cannot vanish. Requests
// are built into reused buffers: the client allocates nothing per request.
//
// # The ceiling
//
// StartCeiling runs a server that answers every request with the same
// 300 bytes and does nothing else. Running the same closed loop against it
// on the same machine gives the most this client can get through those
// CPUs; the target's throughput as a share of it says how much of the
// machine's request-handling capacity the service keeps for itself.
package load
