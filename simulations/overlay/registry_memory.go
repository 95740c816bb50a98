package overlay

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
	"github.com/mycelium-net/mycelium/registry"
	"github.com/mycelium-net/mycelium/simulations/des"
)

// RegistryMemory is what one registry.Machine holding Records records of
// other nodes takes on the Go heap.
type RegistryMemory struct {
	Records int `json:"records"`
	// RecordBytes is the mean encoded size of the records.
	RecordBytes float64 `json:"record_bytes"`
	// HeapBytes is the live heap the Machine gained by taking them;
	// HeapBytesPerRecord is that over Records.
	HeapBytes          float64 `json:"heap_bytes"`
	HeapBytesPerRecord float64 `json:"heap_bytes_per_record"`
}

// MeasureRegistryMemory measures the heap of one real registry.Machine
// (configured by cfg) filled with n valid signed records, one per key
// derived from seed (as the simulator derives its nodes' keys), of the
// shape the simulator publishes (sampleRecord). See measureRegistryMemory.
func MeasureRegistryMemory(n int, seed uint64, cfg registry.Config) (RegistryMemory, error) {
	return measureRegistryMemory(simKeys(seed, n), cfg, epoch)
}

// measureRegistryMemory signs one record per key, then measures the live
// heap (after a collection) before the Machine is made and after it has
// taken every record through HandleBroadcast, as a Plumtree delivery, and
// run its sweep (which builds the sorted index that digests use too). The
// signed records are kept outside the Machine throughout, and each is
// handed over as a fresh copy, so the difference is what the Machine
// holds, whether it keeps its input or a copy.
func measureRegistryMemory(keys []ed25519.PrivateKey, cfg registry.Config, now time.Time) (RegistryMemory, error) {
	var res RegistryMemory
	if len(keys) < 2 {
		return res, fmt.Errorf("overlay: registry memory needs at least 2 keys, got %d", len(keys))
	}
	ids := make([]identity.NodeID, len(keys))
	for i, k := range keys {
		copy(ids[i][:], k.Public().(ed25519.PublicKey))
	}
	// The Machine speaks for a key none of the records is signed with.
	own := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x6d}, ed25519.SeedSize))
	rng := des.NewRand(0, 0x6d656d) // "mem"
	raws := make([][]byte, len(keys))
	total := 0
	for i, k := range keys {
		var onion [32]byte
		for j := 0; j < len(onion); j += 8 {
			binary.LittleEndian.PutUint64(onion[j:], rng.Uint64())
		}
		var nbrs []identity.NodeID
		for j := 1; j <= 5 && j < len(keys); j++ {
			nbrs = append(nbrs, ids[(i+j)%len(ids)])
		}
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 4242)
		r := sampleRecord(i, addr, nbrs, onion)
		r.ID, r.Seq, r.Issued, r.Lifetime = ids[i], uint64(now.UnixMilli()), time.Unix(now.Unix(), 0).UTC(), cfg.Lifetime
		raw, err := registry.Sign(r, k)
		if err != nil {
			return res, err
		}
		raws[i] = raw
		total += len(raw)
	}

	before := heapAlloc()
	m, err := registry.New(own, cfg, des.NewRand(0, 0x6d656d))
	if err != nil {
		return res, err
	}
	var sweep registry.SetTimer
	for _, o := range m.Start(now) {
		if t, ok := o.(registry.SetTimer); ok && t.Timer.Kind == registry.TimerSweep {
			sweep = t
		}
	}
	for _, raw := range raws {
		m.HandleBroadcast(now, bytes.Clone(raw))
	}
	m.HandleTimer(sweep.At, sweep.Timer)
	after := heapAlloc()
	if got := m.Len(); got != len(keys) {
		return res, fmt.Errorf("overlay: registry holds %d of %d records (stats %+v)", got, len(keys), m.Stats())
	}
	runtime.KeepAlive(m)
	runtime.KeepAlive(raws)

	res.Records = len(keys)
	res.RecordBytes = float64(total) / float64(len(keys))
	res.HeapBytes = after - before
	res.HeapBytesPerRecord = res.HeapBytes / float64(len(keys))
	return res, nil
}
