package relay

import (
	"runtime"
	"testing"

	"github.com/mycelium-net/mycelium/circuit"
)

// heapAlloc returns the live heap after two collections.
func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// measureKeys returns n fresh RelayKeys and the heap they hold, in bytes
// per key. Each onion is peeled with its own replay cache, which is
// garbage afterwards, so only the keys stay live.
func measureKeys(tb testing.TB, n int) ([]*circuit.RelayKeys, int64) {
	m := newKeyMaker(tb, 1)
	keys := make([]*circuit.RelayKeys, n)
	before := heapAlloc()
	for i := range keys {
		m.cache = circuit.NewReplayCache(1)
		keys[i] = m.relayKeys(tb)
	}
	m.cache = nil
	return keys, (heapAlloc() - before) / int64(n)
}

// memoryResources are limits that let n circuits in, from n previous
// hops.
func memoryResources(n int) Resources {
	res := DefaultResources()
	res.MaxCircuits, res.MaxCircuitsPerPeer, res.MaxMemory = n, n, 1<<40
	return res
}

// prevOf returns the i-th of many previous hops.
func prevOf(i int) NodeID {
	var id NodeID
	id[0], id[1], id[2], id[31] = byte(i), byte(i>>8), byte(i>>16), 0xAA
	return id
}

// measureTable opens len(keys) relayed circuits, each from its own
// previous hop toward one of 16 next hops, and returns the table and
// the heap it holds per circuit, keys excluded (they were live before).
func measureTable(tb testing.TB, keys []*circuit.RelayKeys) (*Table, int64) {
	n := len(keys)
	t := newTestTable(tb, memoryResources(n), 1)
	before := heapAlloc()
	for i, k := range keys {
		if c, r := t.Open(t0, prevOf(i), uint32(i+1), node(byte(i%16+1)), k); c == nil {
			tb.Fatalf("circuit %d refused: %d", i, r)
		}
	}
	return t, (heapAlloc() - before) / int64(n)
}

// BenchmarkTableMemoryPerCircuit opens 10,000 idle relayed circuits,
// each with its own RelayKeys from a real peeled onion, and reports the
// heap per circuit: bytes/circuit includes the keys, table-bytes/circuit
// and keys-bytes/circuit split it, estimate-bytes/circuit is what the
// table charges against MaxMemory.
func BenchmarkTableMemoryPerCircuit(b *testing.B) {
	const n = 10_000
	keys, perKey := measureKeys(b, n)
	var perCircuit int64
	for b.Loop() {
		t, per := measureTable(b, keys)
		runtime.KeepAlive(t)
		perCircuit = per
	}
	runtime.KeepAlive(keys)
	b.ReportMetric(float64(perCircuit+perKey), "bytes/circuit")
	b.ReportMetric(float64(perCircuit), "table-bytes/circuit")
	b.ReportMetric(float64(perKey), "keys-bytes/circuit")
	b.ReportMetric(float64(relayCost), "estimate-bytes/circuit")
}

// BenchmarkEndMemory reports the heap one circuit.Terminal and one
// five-hop circuit.Initiator hold, which endBytes must cover.
func BenchmarkEndMemory(b *testing.B) {
	const n = 1000
	var term, init int64
	for b.Loop() {
		term, init = measureEnds(b, n)
	}
	b.ReportMetric(float64(term), "terminal-bytes")
	b.ReportMetric(float64(init), "initiator5-bytes")
	b.ReportMetric(float64(endBytes), "estimate-bytes")
}

// measureEnds returns the heap per Terminal and per five-hop Initiator,
// measured over n of each.
func measureEnds(tb testing.TB, n int) (term, init int64) {
	m := newKeyMaker(tb, 2)
	terms := make([]*circuit.Terminal, n)
	before := heapAlloc()
	for i := range terms {
		m.cache = circuit.NewReplayCache(1)
		terms[i] = m.terminal(tb)
	}
	m.cache = nil
	term = (heapAlloc() - before) / int64(n)
	inits := make([]*circuit.Initiator, n)
	before = heapAlloc()
	for i := range inits {
		inits[i] = m.initiator(tb, circuit.MaxHops)
	}
	init = (heapAlloc() - before) / int64(n)
	runtime.KeepAlive(terms)
	runtime.KeepAlive(inits)
	return term, init
}

// TestCostCoversMeasured checks the memory estimates against the heap
// real circuits hold: relay keys, the table's part at its worst size
// seen (450 circuits, just after the maps double), and both ends.
func TestCostCoversMeasured(t *testing.T) {
	keys, perKey := measureKeys(t, 200)
	if perKey > relayKeysBytes {
		t.Errorf("RelayKeys hold %d bytes, estimate %d", perKey, relayKeysBytes)
	}
	shared := make([]*circuit.RelayKeys, 450)
	for i := range shared {
		shared[i] = keys[0]
	}
	tab, perCircuit := measureTable(t, shared)
	if limit := int64(circuitBytes + 3*mapEntryBytes); perCircuit > limit {
		t.Errorf("the table holds %d bytes per circuit, estimate %d", perCircuit, limit)
	}
	if got := tab.Stats().Memory; got != 450*relayCost {
		t.Errorf("Stats.Memory = %d, want %d", got, 450*relayCost)
	}
	term, init := measureEnds(t, 100)
	if term > endBytes || init > endBytes {
		t.Errorf("a Terminal holds %d bytes, a five-hop Initiator %d; estimate %d", term, init, endBytes)
	}
	t.Logf("per circuit: keys %d, table %d (estimate %d); terminal %d, initiator %d (estimate %d)",
		perKey, perCircuit, relayCost, term, init, endBytes)
	runtime.KeepAlive(keys)
	runtime.KeepAlive(tab)
}
