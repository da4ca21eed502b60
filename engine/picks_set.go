package engine

// slot is a picker's scratch for one product considered in a call.
type slot struct {
	p     uint32
	epoch uint32 // valid while it matches the picker's
	flags uint8
	rel   float32
}

// slotSet holds the slots of the products a call considers, a few hundred
// of a catalog of up to millions: open addressing with linear probing in
// a table sized to the call, not the catalog, so that a candidate's slot
// costs a probe in a table that stays in cache, where a slot by product
// id (the table before) cost a cache miss per candidate at a million
// products. Slots are valid while their epoch is the picker's, so a new
// call clears nothing. The table starts small, doubles when half full and
// keeps its size across the calls of a pooled picker: once warm it
// allocates nothing. (A new picker, after a GC emptied the pool, grows
// it again in a few steps of at most a few hundred KB, where the table
// by product id took 12 bytes per product, 12 MB at a million.) Starting
// small also makes every test that asks for picks grow it.
type slotSet struct {
	tab   []slot
	shift uint32 // 32 - log2(len(tab))
	n     int    // slots of the current epoch
}

const minSlotBits = 5

// reset empties the set for epoch; epoch 1 (after a wrap) clears stale
// slots that could match again.
func (s *slotSet) reset(epoch uint32) {
	if s.tab == nil {
		s.tab, s.shift = make([]slot, 1<<minSlotBits), 32-minSlotBits
	}
	if epoch == 1 {
		clear(s.tab)
	}
	s.n = 0
}

func (s *slotSet) home(p uint32) uint32 { return (p * 0x9E3779B1) >> s.shift }

// get returns product p's slot in epoch, or nil.
func (s *slotSet) get(p, epoch uint32) *slot {
	mask := uint32(len(s.tab) - 1)
	for i := s.home(p); ; i = (i + 1) & mask {
		sl := &s.tab[i]
		if sl.epoch != epoch {
			return nil
		}
		if sl.p == p {
			return sl
		}
	}
}

// put returns product p's slot in epoch, adding an empty one if there is
// none (isNew). The pointer is valid until the next put.
func (s *slotSet) put(p, epoch uint32) (sl *slot, isNew bool) {
	if 2*(s.n+1) > len(s.tab) {
		s.grow(epoch)
	}
	mask := uint32(len(s.tab) - 1)
	for i := s.home(p); ; i = (i + 1) & mask {
		sl := &s.tab[i]
		if sl.epoch != epoch {
			*sl = slot{p: p, epoch: epoch}
			s.n++
			return sl, true
		}
		if sl.p == p {
			return sl, false
		}
	}
}

// grow doubles the table, moving the slots of epoch over.
func (s *slotSet) grow(epoch uint32) {
	old := s.tab
	s.tab, s.shift, s.n = make([]slot, 2*len(old)), s.shift-1, 0
	for i := range old {
		if old[i].epoch == epoch {
			sl, _ := s.put(old[i].p, epoch)
			*sl = old[i]
		}
	}
}
