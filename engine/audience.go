package engine

import (
	"errors"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/omnipick/omnipick/engine/profile"
	"github.com/omnipick/omnipick/index"
)

// AudienceKind names a built-in audience.
type AudienceKind uint8

const (
	// AudienceCartAbandoners holds members with a cart line added between
	// MinAge and MaxAge ago whose product they have not bought.
	AudienceCartAbandoners AudienceKind = iota + 1
	// AudienceViewers holds members who viewed a product of Category (a
	// category prefix; empty: any) within Within.
	AudienceViewers
)

var audienceNames = [...]string{AudienceCartAbandoners: "cart_abandoners", AudienceViewers: "viewers"}

func (k AudienceKind) String() string {
	if int(k) < len(audienceNames) && audienceNames[k] != "" {
		return audienceNames[k]
	}
	return "unknown"
}

// ParseAudience maps an API name to its AudienceKind.
func ParseAudience(s string) (AudienceKind, bool) {
	for i, n := range audienceNames {
		if n != "" && n == s {
			return AudienceKind(i), true
		}
	}
	return 0, false
}

// AudienceQuery selects the members of an audience.
type AudienceQuery struct {
	Kind AudienceKind

	// Cart abandoners: a cart line counts when it was added at least
	// MinAge and at most MaxAge ago. MaxAge is capped at Options.CartTTL,
	// past which the engine drops cart lines anyway; zero means CartTTL.
	MinAge, MaxAge time.Duration

	// Viewers: a view counts when it is at most Within old (zero: any
	// age) and its product lies in Category (a category prefix such as
	// "women/knitwear", normalised as the catalog does; empty: any
	// category). Only the Options.MaxViews most recent views of a profile
	// are remembered.
	Category string
	Within   time.Duration

	Now int64 // unix milliseconds; 0 means Options.Now()
}

// Member is one member of an audience: a customer id or, with Anonymous
// set, an anonymous id that was never merged into a customer.
type Member struct {
	ID        string
	Anonymous bool
}

// ErrBadAudience is returned for an AudienceQuery with an unknown Kind.
var ErrBadAudience = errors.New("engine: unknown audience")

// audienceBatch is the default batch size of Audience, and audienceScan
// bounds how many profiles one shard lock hold examines: a sparse audience
// then still releases the lock every few tens of microseconds, so writers
// to the shard wait no longer than that.
const (
	audienceBatch = 256
	audienceScan  = 4096
)

// Audience finds the members of an audience and hands them to fn in
// batches of at most cap(buf) members (256 when buf has no capacity),
// reusing buf's array. It visits one shard at a time, customers then
// anonymous ids in the order they were first seen, and holds the shard's
// lock only while it copies matching ids into the batch: fn runs with no
// engine lock held, so it may call PicksInto or block on the network. The
// batch is valid only until fn returns. Memory stays that of one batch
// whatever the audience size.
//
// The result is not a snapshot: a profile that changes during the visit
// is judged as it is when its shard is visited, and an anonymous id
// merged into a customer mid-visit may appear under both ids. Each
// profile is judged at most once.
//
// Audience stops at the first error of fn and returns it.
func (e *Engine) Audience(q *AudienceQuery, buf []Member, fn func(batch []Member) error) error {
	nowMS := q.Now
	if nowMS == 0 {
		nowMS = e.nowMS()
	}
	m, err := e.newMatcher(q, secs(nowMS))
	if err != nil {
		return err
	}
	if cap(buf) == 0 {
		buf = make([]Member, 0, audienceBatch)
	}
	batch := buf[:0]
	for si := range e.profiles.Shards() {
		for _, anon := range [2]bool{false, true} {
			for d := 0; ; {
				var more bool
				batch, d, more = e.scanShard(si, anon, d, m, batch)
				if len(batch) == cap(batch) {
					if err := fn(batch); err != nil {
						return err
					}
					batch = batch[:0]
				}
				if !more {
					break
				}
			}
		}
	}
	if len(batch) > 0 {
		return fn(batch)
	}
	return nil
}

// scanShard appends to batch the members among the customers (or
// anonymous ids) of profile shard si from dense id d on, until batch is
// full or audienceScan ids were examined. It returns the batch, the dense
// id to resume from and whether ids remain.
func (e *Engine) scanShard(si int, anon bool, d int, m *matcher, batch []Member) ([]Member, int, bool) {
	// Lock order: Engine.mu (for the catalog's category postings), then
	// the shard (inside Scan).
	e.mu.RLock()
	defer e.mu.RUnlock()
	m.load(e.idx)
	d, more := e.profiles.Scan(si, anon, d, audienceScan, &m.prof, func(id string, pr *profile.Profile) bool {
		if m.match(pr) {
			batch = append(batch, Member{ID: id, Anonymous: anon})
		}
		return len(batch) < cap(batch)
	})
	return batch, d, more
}

// matcher judges profiles for one AudienceQuery. Times are unix seconds.
type matcher struct {
	kind AudienceKind
	// Cart abandoners: a line counts when newest >= t >= oldest.
	oldest, newest uint32
	// Viewers: a view counts when t >= since and its product is in posting
	// (nil: any product). facet is the category's facet id; known says it
	// exists.
	since   uint32
	facet   uint32
	known   bool
	any     bool
	posting *roaring.Bitmap
	prof    profile.Profile // the profile being judged, decoded
}

func (e *Engine) newMatcher(q *AudienceQuery, now uint32) (*matcher, error) {
	m := &matcher{kind: q.Kind}
	switch q.Kind {
	case AudienceCartAbandoners:
		maxAge := e.opts.CartTTL
		if q.MaxAge > 0 {
			maxAge = min(q.MaxAge, maxAge)
		}
		m.oldest = sub(now, maxAge)
		m.newest = sub(now, q.MinAge)
	case AudienceViewers:
		if q.Within > 0 {
			m.since = sub(now, q.Within)
		}
		cat := index.NormalizeCategory(q.Category)
		if cat == "" {
			m.any = true
			break
		}
		e.mu.RLock()
		m.facet, m.known = e.idx.Facet(index.FacetCategory + cat)
		e.mu.RUnlock()
	default:
		return nil, ErrBadAudience
	}
	return m, nil
}

// sub returns now minus d in unix seconds, floored at 0.
func sub(now uint32, d time.Duration) uint32 {
	s := d.Seconds()
	if s <= 0 {
		return now
	}
	if s >= float64(now) {
		return 0
	}
	return now - uint32(s)
}

// load fetches what the matcher reads from the catalog; the caller holds
// Engine.mu.
func (m *matcher) load(idx *index.Index) {
	if m.kind == AudienceViewers && m.known {
		m.posting = idx.Posting(m.facet)
	}
}

// match reports whether a profile belongs to the audience; the caller
// holds its shard's lock (and Engine.mu, for the category posting).
func (m *matcher) match(pr *profile.Profile) bool {
	switch m.kind {
	case AudienceCartAbandoners:
		for _, c := range pr.Cart {
			// A product bought at any time does not count: picks leave it
			// out too, so the ad could not show it.
			if c.T >= m.oldest && c.T <= m.newest && !pr.Bought(c.P) {
				return true
			}
		}
	case AudienceViewers:
		if !m.any && !m.known {
			return false // no product was ever in that category
		}
		for i := len(pr.Views) - 1; i >= 0; i-- {
			v := pr.Views[i]
			if v.T < m.since {
				continue // views are mostly in time order, but not strictly: late events
			}
			if m.any || m.posting.Contains(v.P) {
				return true
			}
		}
	}
	return false
}
