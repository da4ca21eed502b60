package engine

import (
	"errors"
	"strings"

	"github.com/omnipick/omnipick/engine/profile"
)

// ErrProfilesFull is Apply's error for a record that needs a new profile
// in a shard holding Options.MaxProfiles/Shards profiles, every one of
// them a customer's: nothing can make room without dropping a known
// customer, which the engine never does. Writers answer 503.
var ErrProfilesFull = errors.New("the profile limit is reached and only known customers' profiles are left")

// profilesFull maps the profile store's ErrFull to ErrProfilesFull.
func profilesFull(err error) error {
	if errors.Is(err, profile.ErrFull) {
		return ErrProfilesFull
	}
	return err
}

// applyErase forgets an actor: its profile, the anonymous ids whose links
// lead to it (their histories were merged into it), its impressions,
// campaigns and exclusions (all in the profile; see profile.Store.Erase),
// and its part in the stores' last scans.
func (e *Engine) applyErase(x *Erase, index int) error {
	id, anon, err := checkedActor(x.Customer, x.AnonymousID)
	if err != nil {
		return err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.opts.Holds != nil {
		// A partial engine may hold no entry of an actor it does not
		// hold: only holders know the actor unknown. The actor's part in
		// the global signals (scans, baskets) is forgotten where its
		// holders' signal records put it: through a derived OpForget,
		// after the signal records of the actor's earlier events (one
		// published after this erasure reached the stream would bring
		// the actor back into a store's last scan otherwise).
		// The forget goes with the signal records of the actor's events:
		// those of a linked anonymous id go to the partition of the
		// actor it links to (resolved before the erasure unlinks it).
		target, _ := e.profiles.Resolve(id, anon)
		found := e.profiles.Erase(id, anon)
		if found && e.opts.Holds(target) {
			e.derived.add(index, strings.Clone(target), Record{Op: OpForget, Erase: Erase{Customer: strings.Clone(x.Customer), AnonymousID: strings.Clone(x.AnonymousID)}})
		}
		if !found && e.opts.Holds(id) {
			return fieldErr("id", ErrUnknownActor)
		}
		return nil
	}
	if !e.profiles.Erase(id, anon) {
		return fieldErr("id", ErrUnknownActor)
	}
	e.forgetTraces(id, anon)
	return nil
}

// applyForget applies an erased actor's derived OpForget: its part in the
// stores' last scans and, a customer's, in the baskets.
func (e *Engine) applyForget(x *Erase) error {
	id, anon, err := checkedActor(x.Customer, x.AnonymousID)
	if err != nil {
		return err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	e.forgetTraces(id, anon)
	return nil
}

// forgetTraces takes an erased actor out of the global signals: the last
// scans and, a customer, the baskets. The caller holds Engine.mu shared.
func (e *Engine) forgetTraces(id string, anon bool) {
	e.scans.forget(id, anon)
	if !anon {
		e.nb.forget(id)
	}
}

// forget takes an erased actor out of the last scans: the screen keeps
// the scanned product, no longer personalised.
func (s *scans) forget(id string, anon bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for loc, sc := range s.latest {
		if (!anon && sc.Customer == id) || (anon && sc.AnonymousID == id) {
			sc.Customer, sc.AnonymousID = "", ""
			s.latest[loc] = sc
		}
	}
}

// applyExpire drops every anonymous profile unused since x.Before (see
// profile.Store.Expire). A partial engine drops those it holds, and
// derives, for each that others were linked into, an Expire naming it:
// the engines that do not hold it keep its links (its Links alone), not
// knowing when it was last active, until that record tells them to drop
// them too, so that every node keeps the same links.
func (e *Engine) applyExpire(x *Expire, index int) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if x.AnonymousID != "" {
		if e.opts.Holds != nil && !e.opts.Holds(x.AnonymousID) {
			e.profiles.DropLinks(x.AnonymousID)
		}
		return nil
	}
	_, linked := e.profiles.ExpireHeld(secs(x.Before), e.opts.Holds)
	for _, id := range linked {
		e.derived.add(index, id, Record{Op: OpExpire, Expire: Expire{Before: x.Before, AnonymousID: id}})
	}
	e.nb.expire(secs(x.Before))
	return nil
}
