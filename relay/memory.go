package relay

import "unsafe"

// The memory a circuit costs, estimated. Go does not report the heap
// held by one object graph, so the estimate adds up what a circuit
// allocates, each part rounded up; BenchmarkTableMemoryPerCircuit and
// BenchmarkEndMemory measure the real figures and TestCostCoversMeasured
// checks that the estimate is not below them.
const (
	// circuitBytes is the Circuit struct rounded up to 64 bytes, which
	// covers the allocator's size class (264 bytes on amd64, allocated
	// as 288).
	circuitBytes = (unsafe.Sizeof(Circuit{}) + 63) &^ 63
	// mapEntryBytes is one entry of byPrev, byNext or perPrev: key,
	// value and control byte (41 to 49 bytes) over the lowest load of
	// a Go swiss map (7/16, just after it doubles) is 93 to 112 bytes;
	// the maps' own groups and headers brought the worst measured
	// figure to about 121 (BenchmarkTableMemoryPerCircuit's table part,
	// at 450 circuits). Rounded up.
	mapEntryBytes = 128
	// relayKeysBytes is a circuit.RelayKeys as Peel allocates it: the
	// struct and four AES-256 ciphers (two CTR stream keys, two header
	// permutations) with their expanded keys, 2105 bytes measured
	// (go1.26, amd64), rounded up.
	relayKeysBytes = 2176
	// endBytes is a circuit.Terminal (about 1440 bytes measured) or a
	// five-hop circuit.Initiator (about 9940), whichever is larger, as
	// BenchmarkEndMemory measures, rounded up. The node holds the end;
	// the table charges it for the circuit.
	endBytes = 10240

	// relayCost is a relayed circuit: the struct, its entries in byPrev,
	// byNext and perPrev (one per circuit in the worst case, every
	// circuit from its own previous hop), and its keys.
	relayCost = int64(circuitBytes + 3*mapEntryBytes + relayKeysBytes)
	// endCost is a circuit starting or ending here: the struct, one link
	// map entry, one perPrev entry (terminals only; counted for both),
	// and the end.
	endCost = int64(circuitBytes + 2*mapEntryBytes + endBytes)
)

// costOf returns the estimated bytes a circuit of kind k holds.
func costOf(k Kind) int64 {
	if k == KindRelay {
		return relayCost
	}
	return endCost
}
