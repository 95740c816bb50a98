package registry

import (
	"slices"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// Component is what the records say of the overlay around one node: the
// component of the active-view graph that holds it, as far as the records
// show, and the largest other one.
type Component struct {
	// Size counts the nodes of our component, ourselves included.
	Size int
	// Mapped counts the nodes whose records name at least one neighbour,
	// and ourselves: the part of the overlay the records map.
	Mapped int
	// Largest counts the nodes of the largest component other than ours
	// (0 if there is none). A node that died without a tombstone keeps a
	// record until it expires, which its neighbours' newer records
	// disown: it is a component of one, never the rest of the overlay.
	Largest int
	// Outside lists the inbound-capable nodes (Record.Inbound) of that
	// largest other component, in the order of recs: where to rejoin.
	Outside []identity.NodeID
}

// Split reports whether the records show our part of an overlay of at
// least minMapped mapped nodes cut off: another component of two or more
// nodes is at least as large as ours. Halves of equal size both report
// it, so both reach out.
func (c Component) Split(minMapped int) bool {
	return c.Mapped >= minMapped && c.Largest >= 2 && c.Largest >= c.Size
}

// ComponentOf finds self's component in the graph of the neighbour lists
// of recs (Record.Neighbors), with active, self's live active view, in
// place of self's own record.
//
// A link that only one end names counts when that end's record is the
// newer of the two: the other end has not re-published since the link
// came up (a node re-publishes a minute after its view changes). When the
// silent end's record is the newer one, the link is taken as gone. That
// is the point: a part of the overlay that broadcasts no longer reach
// still holds the records the rest published before the cut, which name
// its members as neighbours, while its members' records, newer, name
// only each other. Self's live view is the newest of all.
//
// It is a pure function of its arguments; tombstones and first records
// (no neighbours) add no edge and are not counted as mapped.
func ComponentOf(recs []Record, self identity.NodeID, active []identity.NodeID) Component {
	type entry struct {
		nbrs   []identity.NodeID
		issued time.Time
		live   bool // self's live view: newer than any record
	}
	byID := make(map[identity.NodeID]entry, len(recs)+1)
	inbound := make(map[identity.NodeID]bool, len(recs))
	var order []identity.NodeID
	for _, r := range recs {
		if r.ID == self {
			continue
		}
		if len(r.Neighbors) > 0 {
			byID[r.ID] = entry{nbrs: r.Neighbors, issued: r.Issued}
			order = append(order, r.ID)
		}
		inbound[r.ID] = r.Inbound
	}
	// Our own view is always the newest picture, empty or not: an empty
	// one disowns the links stale records give us.
	byID[self] = entry{nbrs: active, live: true}
	names := func(a, b identity.NodeID) bool {
		return slices.Contains(byID[a].nbrs, b)
	}
	// newer reports whether a's picture is newer than b's.
	newer := func(a, b identity.NodeID) bool {
		ea, eb := byID[a], byID[b]
		return ea.live || (!eb.live && ea.issued.After(eb.issued))
	}
	// linked: x names y (the caller checked); does the link count?
	linked := func(x, y identity.NodeID) bool {
		if _, mapped := byID[y]; !mapped {
			return false
		}
		return names(y, x) || newer(x, y)
	}
	// Links are followed both ways: y may name x without x naming y.
	// The rule is symmetric, so the components are well defined.
	namedBy := make(map[identity.NodeID][]identity.NodeID, len(byID))
	for id, e := range byID {
		for _, y := range e.nbrs {
			namedBy[y] = append(namedBy[y], id)
		}
	}
	comp := make(map[identity.NodeID]int, len(byID))
	label := func(root identity.NodeID, c int) int {
		comp[root] = c
		size, stack := 1, []identity.NodeID{root}
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			add := func(y identity.NodeID) {
				if _, done := comp[y]; !done {
					comp[y] = c
					size++
					stack = append(stack, y)
				}
			}
			for _, y := range byID[x].nbrs {
				if linked(x, y) {
					add(y)
				}
			}
			for _, y := range namedBy[x] {
				if !names(x, y) && newer(y, x) {
					add(y)
				}
			}
		}
		return size
	}
	c := Component{Size: label(self, 0), Mapped: len(byID)}
	// Label the rest in recs order, so ties between equal components go
	// the same way on every run.
	largest, sizes := -1, []int{c.Size}
	for _, id := range order {
		if _, done := comp[id]; done {
			continue
		}
		k := len(sizes)
		sizes = append(sizes, label(id, k))
		if largest < 0 || sizes[k] > sizes[largest] {
			largest = k
		}
	}
	if largest < 0 {
		return c
	}
	c.Largest = sizes[largest]
	for _, id := range order {
		if comp[id] == largest && inbound[id] {
			c.Outside = append(c.Outside, id)
		}
	}
	return c
}
