package registry

import "github.com/mycelium-net/mycelium/internal/identity"

// Component is what the records say of the overlay around one node: the
// component of the active-view graph that holds it, as far as the records
// show, and what lies outside.
type Component struct {
	// Size counts the nodes of our component, ourselves included.
	Size int
	// Mapped counts the nodes whose records name at least one neighbour
	// (ourselves included): the part of the overlay the records map.
	Mapped int
	// Outside lists the inbound-capable nodes (Record.Inbound) of the
	// mapped part that are not in our component, in the order of recs.
	Outside []identity.NodeID
}

// Split reports whether our component holds at most half the mapped
// nodes of an overlay of at least minMapped of them: the sign of a part
// cut off from the rest. A split in two halves makes both sides report
// it, so both reach out.
func (c Component) Split(minMapped int) bool {
	return c.Mapped >= minMapped && 2*c.Size <= c.Mapped
}

// ComponentOf finds self's component in the graph of the neighbour lists
// of recs (Record.Neighbors), with active, self's live active view, in
// place of self's own record. An edge counts only when both ends name each
// other. That is the point: a part of the overlay that broadcasts no
// longer reach still holds the records the rest published before the cut,
// which name its members as neighbours, while its members' fresh records
// name only each other. A one-sided edge is also what a link younger than
// the re-publication delay looks like, so a healthy overlay shows a few;
// they rarely split a large component.
//
// It is a pure function of its arguments; tombstones (records with no
// neighbours) simply add no edge.
func ComponentOf(recs []Record, self identity.NodeID, active []identity.NodeID) Component {
	names := make(map[identity.NodeID][]identity.NodeID, len(recs)+1)
	inbound := make(map[identity.NodeID]bool, len(recs))
	var order []identity.NodeID
	for _, r := range recs {
		if r.ID == self {
			continue
		}
		if len(r.Neighbors) > 0 {
			names[r.ID] = r.Neighbors
			order = append(order, r.ID)
		}
		inbound[r.ID] = r.Inbound
	}
	if len(active) > 0 {
		names[self] = active
	}
	names2 := func(a, b identity.NodeID) bool {
		for _, x := range names[a] {
			if x == b {
				return true
			}
		}
		return false
	}
	seen := map[identity.NodeID]bool{self: true}
	stack := []identity.NodeID{self}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, y := range names[x] {
			if !seen[y] && names2(y, x) {
				seen[y] = true
				stack = append(stack, y)
			}
		}
	}
	c := Component{Size: len(seen), Mapped: len(names)}
	if len(active) == 0 {
		c.Mapped++ // ourselves, mapped or not
	}
	for _, id := range order {
		if !seen[id] && inbound[id] {
			c.Outside = append(c.Outside, id)
		}
	}
	return c
}
