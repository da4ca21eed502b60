package eval

import (
	"fmt"
	"time"

	"github.com/omnipick/omnipick/engine"
)

// Engine evaluates an *engine.Engine. Apply hands every record to
// (*engine.Engine).Apply, the path HTTP writes and WAL replay take, and
// Recommend asks PicksInto for picks on the web channel at location
// "online" (the query's default), as of the given time.
//
// Unless the options say otherwise, the engine's clock (Options.Now) is the
// replay clock: the time of the newest event applied so far, so a record
// without a time would be stamped with replay time, not with the wall
// clock. The data sets' events all carry a time.
//
// An Engine is not safe for concurrent use: Recommend reuses one query and
// one picks buffer.
type Engine struct {
	name    string
	e       *engine.Engine
	clock   int64 // newest event time applied, unix ms
	q       engine.Query
	picks   []engine.Pick
	applied map[engine.Op]int
}

// NewEngine returns a Recommender named name over a new engine.Engine with
// opts.
func NewEngine(name string, opts engine.Options) *Engine {
	m := &Engine{name: name, applied: map[engine.Op]int{}}
	if opts.Now == nil {
		opts.Now = func() time.Time { return time.UnixMilli(m.clock) }
	}
	m.e = engine.New(opts)
	return m
}

// Name returns the name NewEngine was given.
func (m *Engine) Name() string { return m.name }

// Engine returns the engine being evaluated, for inspection.
func (m *Engine) Engine() *engine.Engine { return m.e }

// Applied returns how many records of op Apply has passed to the engine
// and the engine accepted.
func (m *Engine) Applied(op engine.Op) int { return m.applied[op] }

// Apply applies r to the engine. Every record of the data sets is valid, so
// a rejection is an error of the loader or the engine: it is returned, and
// Run stops there.
func (m *Engine) Apply(r *engine.Record) error {
	if r.Op == engine.OpEvent && r.Event.TS > m.clock {
		m.clock = r.Event.TS
	}
	if err := m.e.Apply(r); err != nil {
		return fmt.Errorf("engine rejected a record after %d accepted: %w", m.total(), err)
	}
	m.applied[r.Op]++
	return nil
}

func (m *Engine) total() int {
	n := 0
	for _, c := range m.applied {
		n += c
	}
	return n
}

// Recommend appends the ids of the engine's k web picks for customer, as of
// asOf.
func (m *Engine) Recommend(customer string, k int, asOf int64, dst []string) []string {
	m.q.Reset()
	m.q.Customer, m.q.Channel, m.q.K, m.q.Now = customer, engine.ChannelWeb, k, asOf
	m.picks = m.e.PicksInto(m.picks[:0], &m.q)
	for i := range m.picks {
		dst = append(dst, m.picks[i].Item.ID)
		m.picks[i] = engine.Pick{} // do not pin old catalog items
	}
	return dst
}
