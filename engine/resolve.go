package engine

// Resolve follows an anonymous id's links (cookie -> device -> customer)
// to the actor that holds its history now: a customer, or an anonymous id
// (anon). A customer resolves to itself. On a partial engine (Options.Holds)
// the links are whole on every node, so a node that does not hold an
// actor still knows where its history lives: a partitioned cluster routes
// requests by the resolved actor.
func (e *Engine) Resolve(id string, anon bool) (string, bool) {
	return e.profiles.Resolve(id, anon)
}
